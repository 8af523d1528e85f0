package mqtt_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/heraldiot/herald/internal/testenv"
	"github.com/heraldiot/herald/mqtt"
	"github.com/heraldiot/herald/mqtt/packet"
)

// acksSent counts the PUBACK and PUBREC packets c has queued. The client
// counts a packet when it queues it, so the count is exact as soon as the
// Ack that queues it has returned.
func acksSent(c *mqtt.Client) (puback, pubrec uint64) {
	s := c.Stats()
	return s.Sent[packet.TypePuback].Packets, s.Sent[packet.TypePubrec].Packets
}

// TestManualAckHeldInOrder: with SubscribeRequest.ManualAck a handler's
// return acknowledges nothing; Ack does, and an acknowledgement waits for
// those of the messages that arrived before it [MQTT-4.6.0-2],
// [MQTT-4.6.0-3].
func TestManualAckHeldInOrder(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	for _, v := range versions {
		t.Run("v"+v.String(), func(t *testing.T) {
			ctx := testContext(t)
			topic := "manual/" + v.String()
			got := newCollector()
			sub := dial(t, b, mqtt.Options{Version: v, ClientID: "manual-sub-" + v.String()})
			_, err := sub.SubscribeWith(ctx, mqtt.SubscribeRequest{
				Subscriptions: []mqtt.Subscription{{Filter: topic, QoS: mqtt.ExactlyOnce}},
				Handler:       got.handle, ManualAck: true,
			})
			if err != nil {
				t.Fatal(err)
			}
			pub := dial(t, b, mqtt.Options{Version: v, ClientID: "manual-pub-" + v.String()})
			qos := []mqtt.QoS{mqtt.AtLeastOnce, mqtt.ExactlyOnce, mqtt.AtLeastOnce}
			for i, q := range qos {
				if err := pub.Publish(ctx, &mqtt.Message{Topic: topic, QoS: q, Payload: fmt.Append(nil, i)}); err != nil {
					t.Fatal(err)
				}
			}
			msgs := make([]*mqtt.Message, len(qos))
			for i := range msgs {
				msgs[i] = got.next(t)
				if string(msgs[i].Payload) != fmt.Sprint(i) {
					t.Fatalf("message %d is %q", i, msgs[i].Payload)
				}
			}
			// The handlers have returned (the collector received all
			// three), and nothing was acknowledged.
			if puback, pubrec := acksSent(sub); puback != 0 || pubrec != 0 {
				t.Fatalf("%d PUBACK and %d PUBREC before any Ack", puback, pubrec)
			}
			for _, i := range []int{2, 1} {
				if err := msgs[i].Ack(); err != nil {
					t.Fatal(err)
				}
			}
			if puback, pubrec := acksSent(sub); puback != 0 || pubrec != 0 {
				t.Fatalf("%d PUBACK and %d PUBREC sent ahead of the first message's", puback, pubrec)
			}
			if err := msgs[0].Ack(); err != nil {
				t.Fatal(err)
			}
			if puback, pubrec := acksSent(sub); puback != 2 || pubrec != 1 {
				t.Fatalf("%d PUBACK and %d PUBREC after acknowledging all three, want 2 and 1", puback, pubrec)
			}
			// Ack again is harmless and sends nothing.
			if err := msgs[0].Ack(); err != nil {
				t.Fatal(err)
			}
			// The QoS 2 flow completes with PUBCOMP.
			waitFor(t, "PUBCOMP", func() bool { return sub.Stats().Sent[packet.TypePubcomp].Packets == 1 })
		})
	}
}

// TestManualAckAcrossReconnect: messages the application holds
// unacknowledged when the connection drops come again on the resumed
// session [MQTT-4.4.0-1]. The client recognises them and does not deliver
// them twice; their acknowledgements go out on the new connection, in
// order with what follows, and the server sends them no more.
func TestManualAckAcrossReconnect(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	for _, v := range versions {
		t.Run("v"+v.String(), func(t *testing.T) {
			ctx := testContext(t)
			topic := "held/" + v.String()
			proxy := testenv.StartProxy(t, b.Addr)
			got := newCollector()
			connects := make(chan struct{}, 4)
			sub := dial(t, b, mqtt.Options{
				Version: v, ClientID: "held-sub-" + v.String(), Servers: []string{proxy.URL()},
				SessionExpiry: time.Hour, Backoff: mqtt.Backoff{Min: time.Millisecond, Max: 10 * time.Millisecond},
				OnConnect: func(*mqtt.Client, *mqtt.Connack) { connects <- struct{}{} },
				// Client-wide: every handler acknowledges by hand.
				ManualAck: true, DefaultHandler: got.handle,
			})
			<-connects
			if err := sub.Subscribe(ctx, nil, mqtt.Subscription{Filter: topic + "/#", QoS: mqtt.ExactlyOnce}); err != nil {
				t.Fatal(err)
			}
			pub := dial(t, b, mqtt.Options{Version: v, ClientID: "held-pub-" + v.String()})
			send := func(name string, q mqtt.QoS) {
				t.Helper()
				if err := pub.Publish(ctx, &mqtt.Message{Topic: topic + "/" + name, QoS: q}); err != nil {
					t.Fatal(err)
				}
			}
			// reconnect drops the connection and returns the next message
			// delivered after the new connection: a marker published then,
			// which the server sends after what it resends, so any copy
			// delivered twice would come first.
			reconnect := func(marker string) *mqtt.Message {
				t.Helper()
				proxy.CutAll()
				select {
				case <-connects:
				case <-time.After(10 * time.Second):
					t.Fatal("no reconnect")
				}
				if !sub.ServerInfo().SessionPresent {
					t.Fatal("the session was not resumed")
				}
				send(marker, mqtt.AtLeastOnce)
				m := got.next(t)
				if m.Topic != topic+"/"+marker {
					t.Fatalf("delivered %q again after reconnecting, before the marker", m.Topic)
				}
				return m
			}

			send("one", mqtt.AtLeastOnce)
			send("two", mqtt.ExactlyOnce)
			one, two := got.next(t), got.next(t)
			marker := reconnect("marker")
			if n := sub.Stats().Received[packet.TypePublish].Packets; n < 4 {
				t.Fatalf("received %d PUBLISH packets, want the two resent ones too", n)
			}
			pubacks, pubrecs := acksSent(sub)
			// The marker's acknowledgement waits for the two held ones,
			// which now go out on the new connection.
			if err := marker.Ack(); err != nil {
				t.Fatal(err)
			}
			for _, m := range []*mqtt.Message{two, one} {
				if err := m.Ack(); err != nil {
					t.Fatal(err)
				}
			}
			if puback, pubrec := acksSent(sub); puback != pubacks+2 || pubrec != pubrecs+1 {
				t.Fatalf("%d PUBACK and %d PUBREC sent on the new connection, want 2 and 1", puback-pubacks, pubrec-pubrecs)
			}
			waitFor(t, "PUBCOMP", func() bool { return sub.Stats().Sent[packet.TypePubcomp].Packets > 0 })
			// Acknowledged: another reconnect brings nothing back.
			if err := reconnect("last").Ack(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestManualAckOrderOnTheWire checks with a scripted server, which sees
// the order mosquitto does not report, that acknowledgements given in the
// reverse order go out in the order the messages arrived.
func TestManualAckOrderOnTheWire(t *testing.T) {
	type ack struct {
		t  packet.Type
		id uint16
	}
	acks := make(chan ack, 3)
	url := startPeer(t, packet.V5, func(p *peer) {
		for id, qos := range []byte{1, 2, 1} {
			p.write(&packet.Publish{QoS: qos, PacketID: uint16(id + 1), Topic: []byte("t"), Payload: []byte{byte(id)}})
		}
		for range 3 {
			a, ok := p.read().(*packet.Ack)
			if !ok {
				return
			}
			acks <- ack{a.PacketType, a.PacketID}
		}
		p.read()
	})
	got := newCollector()
	connectToPeer(t, url, mqtt.Options{ClientID: "x", ManualAck: true, DefaultHandler: got.handle})
	msgs := []*mqtt.Message{got.next(t), got.next(t), got.next(t)}
	for i := len(msgs) - 1; i >= 0; i-- {
		if err := msgs[i].Ack(); err != nil {
			t.Fatal(err)
		}
	}
	want := []ack{{packet.TypePuback, 1}, {packet.TypePubrec, 2}, {packet.TypePuback, 3}}
	for i, w := range want {
		if a := <-acks; a != w {
			t.Fatalf("acknowledgement %d: %s %d, want %s %d", i, a.t, a.id, w.t, w.id)
		}
	}
}
