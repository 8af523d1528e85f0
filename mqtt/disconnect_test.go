package mqtt_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/heraldiot/herald/internal/testenv"
	"github.com/heraldiot/herald/mqtt"
	"github.com/heraldiot/herald/mqtt/packet"
)

// TestDisconnectWithWillMessage: DISCONNECT with reason 0x04 has mosquitto
// publish the will, which a normal DISCONNECT discards
// (TestWillOnSocketDeathNotOnDisconnect).
func TestDisconnectWithWillMessage(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	ctx := testContext(t)
	got := newCollector()
	watcher := dial(t, b, mqtt.Options{ClientID: "will-watcher"})
	if err := watcher.Subscribe(ctx, got.handle, mqtt.Subscription{Filter: "presence/+", QoS: 1}); err != nil {
		t.Fatal(err)
	}
	c := dial(t, b, mqtt.Options{ClientID: "leaving", Will: &mqtt.Will{Topic: "presence/leaving", Payload: []byte("offline"), QoS: 1}})
	err := c.DisconnectWith(ctx, mqtt.DisconnectOptions{ReasonCode: packet.DisconnectWithWillMessage, ReasonString: "going to sleep"})
	if err != nil {
		t.Fatal(err)
	}
	if m := got.next(t); m.Topic != "presence/leaving" || string(m.Payload) != "offline" {
		t.Fatalf("got %q on %q, want the will", m.Payload, m.Topic)
	}
}

// TestDisconnectSessionExpiryOverride: a session kept for an hour at
// connect ends at a DISCONNECT that sets its expiry to 0, so the next
// connect finds no session; one kept as connected is found.
func TestDisconnectSessionExpiryOverride(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	ctx := testContext(t)
	for _, tc := range []struct {
		name string
		o    mqtt.DisconnectOptions
		kept bool
	}{
		{"kept", mqtt.DisconnectOptions{}, true},
		{"ended", mqtt.DisconnectOptions{SessionExpiry: new(time.Duration(0))}, false},
	} {
		opts := mqtt.Options{ClientID: "expiry-" + tc.name, SessionExpiry: time.Hour}
		c := dial(t, b, opts)
		if err := c.DisconnectWith(ctx, tc.o); err != nil {
			t.Fatal(err)
		}
		again := dial(t, b, opts)
		if present := again.ServerInfo().SessionPresent; present != tc.kept {
			t.Errorf("%s: session present %v after the DISCONNECT, want %v", tc.name, present, tc.kept)
		}
	}
}

// TestDisconnectWithRefusesWhatItCannotSend: options 3.1.1 has no room
// for, a reason code DISCONNECT does not have, and a session expiry after a
// connect that asked for none [MQTT-3.14.2-2] are refused before anything
// is sent: the client stays connected.
func TestDisconnectWithRefusesWhatItCannotSend(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	ctx := testContext(t)
	v311 := dial(t, b, mqtt.Options{Version: mqtt.V311, ClientID: "refuse-311"})
	v5 := dial(t, b, mqtt.Options{ClientID: "refuse-5"}) // session expiry 0
	for _, tc := range []struct {
		name string
		c    *mqtt.Client
		o    mqtt.DisconnectOptions
		want error
	}{
		{"3.1.1 reason code", v311, mqtt.DisconnectOptions{ReasonCode: packet.DisconnectWithWillMessage}, packet.ErrPropertiesV311},
		{"3.1.1 user property", v311, mqtt.DisconnectOptions{UserProperties: []mqtt.UserProperty{{Key: "k", Value: "v"}}}, packet.ErrPropertiesV311},
		{"not a DISCONNECT code", v5, mqtt.DisconnectOptions{ReasonCode: packet.NoMatchingSubscribers}, packet.ErrReasonCode},
		{"expiry after none", v5, mqtt.DisconnectOptions{SessionExpiry: new(time.Minute)}, packet.ProtocolError},
	} {
		if err := tc.c.DisconnectWith(ctx, tc.o); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
		if !tc.c.IsConnected() {
			t.Fatalf("%s: disconnected by a refused DisconnectWith", tc.name)
		}
	}
}

// TestDisconnectPropertiesOnTheWire uses a scripted server, since mosquitto
// does not show what a client's DISCONNECT and UNSUBSCRIBE said: the reason
// string, user properties and session expiry arrive as given.
func TestDisconnectPropertiesOnTheWire(t *testing.T) {
	unsubscribe := make(chan *packet.Unsubscribe, 1)
	disconnect := make(chan *packet.Disconnect, 1)
	url := listenPeers(t, packet.V5, func(p *peer, _ int) {
		if p.connect() == nil {
			return
		}
		p.write(&packet.Connack{})
		for {
			switch pk := p.read().(type) {
			case nil:
				return
			case *packet.Unsubscribe:
				unsubscribe <- pk
				p.write(&packet.Unsuback{PacketID: pk.PacketID, ReasonCodes: []packet.ReasonCode{packet.NoSubscriptionExisted}})
			case *packet.Disconnect:
				disconnect <- pk
				return
			}
		}
	})
	ctx := testContext(t)
	c, _ := connectToPeer(t, url, mqtt.Options{ClientID: "props", SessionExpiry: time.Hour})
	user := []mqtt.UserProperty{{Key: "reason", Value: "rebalance"}, {Key: "reason", Value: "again"}}
	codes, err := c.UnsubscribeWith(ctx, mqtt.UnsubscribeRequest{Filters: []string{"a/#"}, UserProperties: user})
	if err != nil || len(codes) != 1 || codes[0] != packet.NoSubscriptionExisted {
		t.Fatalf("UnsubscribeWith = %v, %v; want [no subscription existed]", codes, err)
	}
	if u := <-unsubscribe; !sameUserProperties(u.Properties.User, user) {
		t.Errorf("UNSUBSCRIBE user properties %v, want %v", u.Properties.User, user)
	}
	err = c.DisconnectWith(ctx, mqtt.DisconnectOptions{
		ReasonCode: packet.DisconnectWithWillMessage, ReasonString: "battery low",
		SessionExpiry: new(10 * time.Minute), UserProperties: user,
	})
	if err != nil {
		t.Fatal(err)
	}
	d := <-disconnect
	if d.ReasonCode != packet.DisconnectWithWillMessage || string(d.Properties.ReasonString) != "battery low" ||
		!d.Properties.Has(packet.PropSessionExpiry) || d.Properties.SessionExpiry != 600 || !sameUserProperties(d.Properties.User, user) {
		t.Errorf("DISCONNECT %s %q expiry %d user %v", d.ReasonCode, d.Properties.ReasonString, d.Properties.SessionExpiry, d.Properties.User)
	}
}

func sameUserProperties(got []packet.UserProperty, want []mqtt.UserProperty) bool {
	if len(got) != len(want) {
		return false
	}
	for i, u := range got {
		if string(u.Key) != want[i].Key || string(u.Value) != want[i].Value {
			return false
		}
	}
	return true
}

// TestConnectAfterDisconnect: a client started again after Disconnect
// resumes its session with the server: the subscription and its handler
// still work, a message published meanwhile arrives, and a QoS 1 publish
// that was in flight at Disconnect (whose caller got ErrClosed) goes out
// again from the session.
func TestConnectAfterDisconnect(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	for _, v := range versions {
		t.Run("v"+v.String(), func(t *testing.T) {
			ctx := testContext(t)
			topic := "again/" + v.String()
			proxy := testenv.StartProxy(t, b.Addr)
			got := newCollector()
			c := dial(t, b, mqtt.Options{Version: v, ClientID: "again-" + v.String(), Servers: []string{proxy.URL()}, SessionExpiry: time.Hour})
			if err := c.Subscribe(ctx, got.handle, mqtt.Subscription{Filter: topic + "/#", QoS: mqtt.AtLeastOnce}); err != nil {
				t.Fatal(err)
			}
			other := dial(t, b, mqtt.Options{Version: v, ClientID: "again-other-" + v.String()})

			// A publish the server never sees: its caller gets ErrClosed
			// at Disconnect, and the message stays in the session.
			proxy.Blackhole()
			sent := c.Stats().Sent[packet.TypePublish].Packets
			published := make(chan error, 1)
			go func() {
				published <- c.Publish(context.Background(), &mqtt.Message{Topic: topic + "/in-flight", QoS: mqtt.AtLeastOnce})
			}()
			waitFor(t, "the publish to go out", func() bool { return c.Stats().Sent[packet.TypePublish].Packets > sent })
			dctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			_ = c.Disconnect(dctx) // its DISCONNECT is swallowed too
			cancel()
			if err := <-published; !errors.Is(err, mqtt.ErrClosed) {
				t.Fatalf("publish in flight at Disconnect: %v, want ErrClosed", err)
			}
			proxy.CutAll()
			proxy.Restore()

			if err := other.Publish(ctx, &mqtt.Message{Topic: topic + "/meanwhile", QoS: mqtt.AtLeastOnce}); err != nil {
				t.Fatal(err)
			}
			if err := c.Publish(ctx, &mqtt.Message{Topic: topic}); !errors.Is(err, mqtt.ErrClosed) {
				t.Fatalf("publish after Disconnect: %v, want ErrClosed", err)
			}
			if err := c.Connect(ctx); err != nil {
				t.Fatalf("Connect after Disconnect: %v", err)
			}
			if !c.ServerInfo().SessionPresent {
				t.Fatal("the server did not resume the session")
			}
			want := map[string]bool{topic + "/meanwhile": true, topic + "/in-flight": true}
			for len(want) > 0 {
				m := got.next(t)
				if !want[m.Topic] {
					t.Fatalf("unexpected message on %q", m.Topic)
				}
				delete(want, m.Topic)
			}
			if err := c.Publish(ctx, &mqtt.Message{Topic: topic + "/after", QoS: mqtt.AtLeastOnce}); err != nil {
				t.Fatal(err)
			}
			if m := got.next(t); m.Topic != topic+"/after" {
				t.Fatalf("got %q, want the message published after reconnecting", m.Topic)
			}
		})
	}
}
