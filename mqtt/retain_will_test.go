package mqtt_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/heraldiot/herald/internal/testenv"
	"github.com/heraldiot/herald/mqtt"
)

func TestRetainedSetAndClear(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	for _, v := range versions {
		t.Run("v"+v.String(), func(t *testing.T) {
			ctx := testContext(t)
			topic := "retained/" + v.String()
			pub := dial(t, b, mqtt.Options{Version: v, ClientID: "pub"})
			if err := pub.Publish(ctx, &mqtt.Message{Topic: topic, QoS: 1, Retain: true, Payload: []byte("v1.2.3")}); err != nil {
				t.Fatal(err)
			}

			got := newCollector()
			late := dial(t, b, mqtt.Options{Version: v, ClientID: "late"})
			if err := late.Subscribe(ctx, got.handle, mqtt.Subscription{Filter: topic, QoS: 1}); err != nil {
				t.Fatal(err)
			}
			m := got.next(t)
			if !m.Retain || string(m.Payload) != "v1.2.3" {
				t.Fatalf("late subscriber got retain=%v payload %q, want the retained message", m.Retain, m.Payload)
			}

			// An empty retained message clears it. [MQTT-3.3.1-10]
			if err := pub.Publish(ctx, &mqtt.Message{Topic: topic, QoS: 1, Retain: true}); err != nil {
				t.Fatal(err)
			}
			// The live subscriber sees the clearing message itself...
			if m := got.next(t); len(m.Payload) != 0 {
				t.Fatalf("clearing message payload = %q", m.Payload)
			}
			// ...and a fresh subscriber sees nothing retained: a marker
			// published after the subscription is the first thing it gets.
			fresh := newCollector()
			c := dial(t, b, mqtt.Options{Version: v, ClientID: "fresh"})
			if err := c.Subscribe(ctx, fresh.handle, mqtt.Subscription{Filter: topic, QoS: 1}); err != nil {
				t.Fatal(err)
			}
			if err := pub.Publish(ctx, &mqtt.Message{Topic: topic, QoS: 1, Payload: []byte("marker")}); err != nil {
				t.Fatal(err)
			}
			if m := fresh.next(t); string(m.Payload) != "marker" || m.Retain {
				t.Fatalf("fresh subscriber first got %q (retain=%v); the retained message was not cleared", m.Payload, m.Retain)
			}
		})
	}
}

// cuttableDialer records the connections a client opens so a test can cut
// them the way a crash or a network failure would: no DISCONNECT.
type cuttableDialer struct {
	mu    sync.Mutex
	conns []net.Conn
}

func (d *cuttableDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err == nil {
		d.mu.Lock()
		d.conns = append(d.conns, c)
		d.mu.Unlock()
	}
	return c, err
}

func (d *cuttableDialer) cut() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.conns {
		c.Close()
	}
}

func TestWillOnSocketDeathNotOnDisconnect(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	for _, v := range versions {
		t.Run("v"+v.String(), func(t *testing.T) {
			ctx := testContext(t)
			willTopic := "presence/" + v.String()
			got := newCollector()
			watcher := dial(t, b, mqtt.Options{Version: v, ClientID: "watcher"})
			if err := watcher.Subscribe(ctx, got.handle, mqtt.Subscription{Filter: willTopic, QoS: 1}); err != nil {
				t.Fatal(err)
			}
			will := &mqtt.Will{Topic: willTopic, Payload: []byte("offline"), QoS: 1}

			// A clean DISCONNECT discards the will. [MQTT-3.1.2-10]
			polite := dial(t, b, mqtt.Options{Version: v, ClientID: "polite", Will: will})
			if err := polite.Disconnect(ctx); err != nil {
				t.Fatal(err)
			}
			// A dying socket publishes it. [MQTT-3.1.2-8]
			d := &cuttableDialer{}
			crashing := dial(t, b, mqtt.Options{Version: v, ClientID: "crashing", Will: will, Dialer: d.dial, DisableAutoReconnect: true})
			_ = crashing
			d.cut()
			m := got.next(t)
			if string(m.Payload) != "offline" {
				t.Fatalf("will payload = %q", m.Payload)
			}
			// Had the polite client's will been published, it would have
			// arrived before the crashing client's: the queue is ordered.
			got.none(t, 200*time.Millisecond)
		})
	}
}

func TestWillDelay(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	ctx := testContext(t)
	got := newCollector()
	watcher := dial(t, b, mqtt.Options{ClientID: "watcher"})
	if err := watcher.Subscribe(ctx, got.handle, mqtt.Subscription{Filter: "presence/+", QoS: 1}); err != nil {
		t.Fatal(err)
	}
	const delay = 2 * time.Second
	opts := func(id string, d *cuttableDialer) mqtt.Options {
		return mqtt.Options{
			ClientID: id, Dialer: d.dial, DisableAutoReconnect: true, SessionExpiry: time.Minute,
			Will: &mqtt.Will{Topic: "presence/" + id, Payload: []byte("offline"), QoS: 1, Delay: delay},
		}
	}

	// A device that reconnects within the delay does not flap offline:
	// resuming the session cancels the will. [MQTT-3.1.3-9]
	d1 := &cuttableDialer{}
	dial(t, b, opts("quick", d1))
	d1.cut()
	dial(t, b, opts("quick", &cuttableDialer{}))

	// One that stays away gets its will, after the delay.
	d2 := &cuttableDialer{}
	dial(t, b, opts("gone", d2))
	cut := time.Now()
	d2.cut()
	m := got.next(t)
	if m.Topic != "presence/gone" {
		t.Fatalf("will on %q: the reconnecting client's will should have been cancelled", m.Topic)
	}
	if waited := time.Since(cut); waited < delay-500*time.Millisecond {
		t.Fatalf("will arrived %v after the cut, before the %v delay", waited, delay)
	}
}
