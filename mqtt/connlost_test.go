package mqtt_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/heraldiot/herald/internal/testenv"
	"github.com/heraldiot/herald/mqtt"
	"github.com/heraldiot/herald/mqtt/packet"
)

// TestConnectV311EmptyClientIDNeedsCleanStart: a 3.1.1 server must refuse
// an empty client ID without Clean Session [MQTT-3.1.3-7], so the client
// refuses it before dialing.
func TestConnectV311EmptyClientIDNeedsCleanStart(t *testing.T) {
	for _, clean := range []bool{false, true} {
		dials := 0
		c := mqtt.New(mqtt.Options{Servers: []string{"tcp://127.0.0.1:1"}, Version: mqtt.V311, CleanStart: clean,
			Dialer: func(context.Context, string, string) (net.Conn, error) {
				dials++
				return nil, errors.New("no server here")
			}})
		err := c.Connect(testContext(t))
		if clean {
			if dials != 1 || errors.Is(err, mqtt.ErrClientIDRequired) {
				t.Fatalf("CleanStart: %d dials, err %v; want one dial that fails", dials, err)
			}
			continue
		}
		if dials != 0 || !errors.Is(err, mqtt.ErrClientIDRequired) {
			t.Fatalf("without CleanStart: %d dials, err %v; want ErrClientIDRequired before dialing", dials, err)
		}
	}
}

// TestManualReconnectAfterLoss: with auto-reconnect off, a QoS 1 publish
// in flight when the connection drops returns ErrConnectionLost at once,
// new ones fail with ErrNotConnected, and Connect reconnects the same
// client, which resends the message from its session.
func TestManualReconnectAfterLoss(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	for _, v := range versions {
		t.Run("v"+v.String(), func(t *testing.T) {
			ctx := testContext(t)
			topic := "manual/" + v.String()
			got := newCollector()
			watcher := dial(t, b, mqtt.Options{Version: v, ClientID: "manual-watch-" + v.String()})
			if err := watcher.Subscribe(ctx, got.handle, mqtt.Subscription{Filter: topic, QoS: mqtt.AtLeastOnce}); err != nil {
				t.Fatal(err)
			}
			proxy := testenv.StartProxy(t, b.Addr)
			lost := make(chan error, 1)
			c := dial(t, b, mqtt.Options{Version: v, ClientID: "manual-" + v.String(), Servers: []string{proxy.URL()},
				SessionExpiry: time.Minute, DisableAutoReconnect: true,
				OnConnectionLost: func(_ *mqtt.Client, err error) { lost <- err }})

			err := inFlightAtCut(t, proxy, c, packet.TypePublish, func(ctx context.Context) error {
				return c.Publish(ctx, &mqtt.Message{Topic: topic, QoS: mqtt.AtLeastOnce, Payload: []byte("in flight")})
			})
			if !errors.Is(err, mqtt.ErrConnectionLost) {
				t.Fatalf("in-flight publish returned %v, want ErrConnectionLost", err)
			}
			awaitLost(t, lost)
			if c.IsConnected() {
				t.Fatal("IsConnected after the loss")
			}
			if err := c.Publish(ctx, &mqtt.Message{Topic: topic, QoS: mqtt.AtLeastOnce}); !errors.Is(err, mqtt.ErrNotConnected) {
				t.Fatalf("publish while disconnected = %v, want ErrNotConnected", err)
			}
			if err := c.Connect(ctx); err != nil {
				t.Fatalf("reconnect: %v", err)
			}
			if m := got.next(t); string(m.Payload) != "in flight" {
				t.Fatalf("watcher got %q, want the message resent from the session", m.Payload)
			}
			if err := c.Publish(ctx, &mqtt.Message{Topic: topic, QoS: mqtt.AtLeastOnce, Payload: []byte("after")}); err != nil {
				t.Fatal(err)
			}
			if m := got.next(t); string(m.Payload) != "after" {
				t.Fatalf("watcher got %q, want %q", m.Payload, "after")
			}
		})
	}
}

// TestRequestInFlightAtDropFails: MQTT does not resend SUBSCRIBE or
// UNSUBSCRIBE on a new connection, so one in flight when the connection
// drops fails at once with ErrConnectionLost, and the caller may retry
// once the client has reconnected.
func TestRequestInFlightAtDropFails(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	requests := map[string]struct {
		kind packet.Type
		call func(ctx context.Context, c *mqtt.Client) error
	}{
		"subscribe": {packet.TypeSubscribe, func(ctx context.Context, c *mqtt.Client) error {
			return c.Subscribe(ctx, nil, mqtt.Subscription{Filter: "drop/x"})
		}},
		"unsubscribe": {packet.TypeUnsubscribe, func(ctx context.Context, c *mqtt.Client) error {
			return c.Unsubscribe(ctx, "drop/x")
		}},
	}
	for name, rq := range requests {
		t.Run(name, func(t *testing.T) {
			ctx := testContext(t)
			proxy := testenv.StartProxy(t, b.Addr)
			connects := make(chan struct{}, 2)
			c := dial(t, b, mqtt.Options{ClientID: "drop-" + name, Servers: []string{proxy.URL()},
				Backoff:   mqtt.Backoff{Min: time.Millisecond, Max: 10 * time.Millisecond},
				OnConnect: func(*mqtt.Client, *mqtt.Connack) { connects <- struct{}{} }})
			<-connects
			err := inFlightAtCut(t, proxy, c, rq.kind, func(ctx context.Context) error { return rq.call(ctx, c) })
			if !errors.Is(err, mqtt.ErrConnectionLost) {
				t.Fatalf("%s in flight at the drop returned %v, want ErrConnectionLost", name, err)
			}
			<-connects
			if err := rq.call(ctx, c); err != nil {
				var refused *mqtt.SubscribeError
				if !errors.As(err, &refused) { // unsubscribing from nothing is refused under v5
					t.Fatalf("retry after reconnecting: %v", err)
				}
			}
		})
	}
}

// inFlightAtCut runs call, which sends one packet of type kind through
// proxy and waits for the answer, with a context longer than any test.
// The proxy swallows the packet; once it has gone out the connection is
// cut, and inFlightAtCut returns what call returned, failing the test if
// call still waits 10s later.
func inFlightAtCut(t *testing.T, proxy *testenv.Proxy, c *mqtt.Client, kind packet.Type, call func(context.Context) error) error {
	t.Helper()
	proxy.Blackhole()
	sent := c.Stats().Sent[kind].Packets
	result := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		result <- call(ctx)
	}()
	waitFor(t, kind.String()+" to go out", func() bool { return c.Stats().Sent[kind].Packets > sent })
	proxy.CutAll()
	proxy.Restore()
	select {
	case err := <-result:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("the %s in flight still waits after the connection was lost", kind)
		return nil
	}
}
