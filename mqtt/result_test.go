package mqtt_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/heraldiot/herald/internal/testenv"
	"github.com/heraldiot/herald/mqtt"
	"github.com/heraldiot/herald/mqtt/packet"
)

// TestPublishWithResultReasonCode: mosquitto answers a v5 QoS 1 publish
// nobody subscribes to with PUBACK No matching subscribers (0x10): a
// success for Publish, which PublishWithResult reports. (mosquitto 2.0
// routes a QoS 2 message at PUBREL, after its PUBREC, so that says
// Success; TestPublishWithResultProperties covers a PUBREC's code.) Under
// 3.1.1 the acknowledgements carry no code.
func TestPublishWithResultReasonCode(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	ctx := testContext(t)
	sub := dial(t, b, mqtt.Options{ClientID: "result-sub"})
	if err := sub.Subscribe(ctx, nil, mqtt.Subscription{Filter: "watched", QoS: mqtt.AtLeastOnce}); err != nil {
		t.Fatal(err)
	}
	for _, v := range versions {
		c := dial(t, b, mqtt.Options{Version: v, ClientID: "result-" + v.String()})
		for _, qos := range []mqtt.QoS{mqtt.AtMostOnce, mqtt.AtLeastOnce, mqtt.ExactlyOnce} {
			for topic, code := range map[string]mqtt.ReasonCode{"unwatched": packet.NoMatchingSubscribers, "watched": packet.Success} {
				if v != mqtt.V5 || qos != mqtt.AtLeastOnce {
					code = packet.Success
				}
				res, err := c.PublishWithResult(ctx, &mqtt.Message{Topic: topic, QoS: qos})
				if err != nil || res.ReasonCode != code {
					t.Errorf("v%s QoS %d to %s: %+v, %v; want reason %s", v, qos, topic, res, err, code)
				}
				if err := c.Publish(ctx, &mqtt.Message{Topic: topic, QoS: qos}); err != nil {
					t.Errorf("v%s QoS %d to %s: Publish: %v", v, qos, topic, err)
				}
			}
		}
	}
}

// TestPublishWithResultProperties uses a scripted server, since mosquitto
// sends neither reason strings nor user properties in its
// acknowledgements: both arrive in the result, a refusal's too, beside its
// *PublishError.
func TestPublishWithResultProperties(t *testing.T) {
	url := startPeer(t, packet.V5, func(p *peer) {
		for {
			pub, ok := p.read().(*packet.Publish)
			if !ok {
				return
			}
			a := &packet.Ack{PacketType: packet.TypePuback, PacketID: pub.PacketID, ReasonCode: packet.NoMatchingSubscribers}
			if pub.QoS == 2 {
				a.PacketType = packet.TypePubrec
			}
			if string(pub.Topic) == "denied" {
				a.ReasonCode = packet.NotAuthorized
			}
			a.Properties.ReasonString = []byte("routed nowhere: " + string(pub.Topic))
			a.Properties.User = []packet.UserProperty{{Key: []byte("node"), Value: []byte("b-2")}}
			p.write(a)
			if pub.QoS == 2 && !a.ReasonCode.IsError() {
				if rel, ok := p.read().(*packet.Ack); ok {
					p.write(&packet.Ack{PacketType: packet.TypePubcomp, PacketID: rel.PacketID})
				}
			}
		}
	})
	c, _ := connectToPeer(t, url, mqtt.Options{ClientID: "x"})
	ctx := testContext(t)
	user := []mqtt.UserProperty{{Key: "node", Value: "b-2"}}
	for _, tc := range []struct {
		topic string
		qos   mqtt.QoS
		code  mqtt.ReasonCode
	}{
		{"nobody", mqtt.AtLeastOnce, packet.NoMatchingSubscribers},
		{"nobody", mqtt.ExactlyOnce, packet.NoMatchingSubscribers},
		{"denied", mqtt.AtLeastOnce, packet.NotAuthorized},
	} {
		res, err := c.PublishWithResult(ctx, &mqtt.Message{Topic: tc.topic, QoS: tc.qos})
		want := mqtt.PublishResult{ReasonCode: tc.code, ReasonString: "routed nowhere: " + tc.topic, UserProperties: user}
		if !reflect.DeepEqual(res, want) {
			t.Errorf("%s at QoS %d: result %+v, want %+v", tc.topic, tc.qos, res, want)
		}
		var pe *mqtt.PublishError
		if refused := errors.As(err, &pe); refused != tc.code.IsError() {
			t.Errorf("%s at QoS %d: error %v", tc.topic, tc.qos, err)
		}
	}
}

// TestUnsubscribeWithReasonCodes: under v5 mosquitto answers each filter
// of an UNSUBSCRIBE, Success or No subscription existed (0x11), both
// successes; a 3.1.1 UNSUBACK carries no codes, reported as Success. The
// user properties on the wire are checked by
// TestDisconnectPropertiesOnTheWire.
func TestUnsubscribeWithReasonCodes(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	ctx := testContext(t)
	for _, v := range versions {
		c := dial(t, b, mqtt.Options{Version: v, ClientID: "unsub-" + v.String()})
		if err := c.Subscribe(ctx, nil, mqtt.Subscription{Filter: "a/+"}); err != nil {
			t.Fatal(err)
		}
		codes, err := c.UnsubscribeWith(ctx, mqtt.UnsubscribeRequest{
			Filters:        []string{"a/+", "never/subscribed"},
			UserProperties: []mqtt.UserProperty{{Key: "why", Value: "test"}},
		})
		want := []mqtt.ReasonCode{packet.Success, packet.NoSubscriptionExisted}
		if v != mqtt.V5 {
			want = []mqtt.ReasonCode{packet.Success, packet.Success}
		}
		if err != nil || !reflect.DeepEqual(codes, want) {
			t.Errorf("v%s: UnsubscribeWith = %v, %v; want %v", v, codes, err, want)
		}
	}
}
