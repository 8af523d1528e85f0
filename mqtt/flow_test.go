package mqtt_test

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/heraldiot/herald/internal/testenv"
	"github.com/heraldiot/herald/mqtt"
)

// TestFlowControlLowReceiveMaximum pipelines many publishes against a server
// that allows only a few in flight, and a subscriber that allows only a few
// unacknowledged deliveries. Exceeding either makes mosquitto or our client
// drop the connection, which the test would see.
func TestFlowControlLowReceiveMaximum(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{Config: []string{"max_inflight_messages 3"}})
	ctx := testContext(t)
	got := newCollector()
	sub := dial(t, b, mqtt.Options{ClientID: "slow-sub", ReceiveMaximum: 2})
	if err := sub.Subscribe(ctx, got.handle, mqtt.Subscription{Filter: "flow/#", QoS: 1}); err != nil {
		t.Fatal(err)
	}
	pub := dial(t, b, mqtt.Options{ClientID: "fast-pub"})
	if rm := pub.ServerInfo().ReceiveMaximum; rm != 3 {
		t.Fatalf("server receive maximum = %d, want 3 from max_inflight_messages", rm)
	}
	const publishers, each = 20, 20
	var wg sync.WaitGroup
	errs := make(chan error, publishers)
	for p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := pub.Publish(ctx, &mqtt.Message{Topic: fmt.Sprintf("flow/%d", p), QoS: 1, Payload: []byte{byte(i)}}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for range publishers * each {
		got.next(t)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, c := range []*mqtt.Client{pub, sub} {
		if s := c.Stats(); s.ConnectionsLost != 0 {
			t.Fatalf("%s lost its connection %d times: flow control was violated", c.ClientID(), s.ConnectionsLost)
		}
	}
}

func TestMaximumPacketSizeBothWays(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{Config: []string{"max_packet_size 1000"}})
	ctx := testContext(t)
	pub := dial(t, b, mqtt.Options{ClientID: "big-pub"})
	if got := pub.ServerInfo().MaximumPacketSize; got != 1000 {
		t.Fatalf("server maximum packet size = %d, want 1000", got)
	}
	// Outbound: refused locally, before the server would disconnect us.
	err := pub.Publish(ctx, &mqtt.Message{Topic: "size", QoS: 1, Payload: make([]byte, 2000)})
	if !errors.Is(err, mqtt.ErrPacketTooLarge) {
		t.Fatalf("2000-byte publish: err = %v, want ErrPacketTooLarge", err)
	}

	// Inbound: we announce 300 bytes, so the server skips larger messages
	// for us instead of sending them. [MQTT-3.1.2-25]
	got := newCollector()
	sub := dial(t, b, mqtt.Options{ClientID: "small-sub", MaximumPacketSize: 300})
	if err := sub.Subscribe(ctx, got.handle, mqtt.Subscription{Filter: "size", QoS: 1}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{600, 10} {
		if err := pub.Publish(ctx, &mqtt.Message{Topic: "size", QoS: 1, Payload: bytes.Repeat([]byte("x"), n)}); err != nil {
			t.Fatal(err)
		}
	}
	if m := got.next(t); len(m.Payload) != 10 {
		t.Fatalf("first message has %d bytes, want the 10-byte one", len(m.Payload))
	}
	if s := sub.Stats(); s.ConnectionsLost != 0 {
		t.Fatal("subscriber lost its connection")
	}
}

// TestMaxInflightBelowServer: with Options.MaxInflight 2, at most two QoS 1
// publishes are in flight at once, though mosquitto grants 20 (and a 3.1.1
// server names no limit), counted where the client records a flow, in the
// Store; publishers beyond the cap wait, and go on as slots free up,
// across a reconnect too.
func TestMaxInflightBelowServer(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	for _, v := range versions {
		t.Run("v"+v.String(), func(t *testing.T) {
			ctx := testContext(t)
			proxy := testenv.StartProxy(t, b.Addr)
			store := &inflightStore{Store: mqtt.NewMemoryStore(), live: map[uint16]bool{}}
			c := dial(t, b, mqtt.Options{Version: v, ClientID: "capped-" + v.String(), Servers: []string{proxy.URL()},
				MaxInflight: 2, Store: store, Backoff: mqtt.Backoff{Min: time.Millisecond, Max: 10 * time.Millisecond}})
			publish := func(publishers, each int) <-chan error {
				errs := make(chan error, publishers)
				for range publishers {
					go func() {
						var err error
						for i := 0; i < each && err == nil; i++ {
							err = c.Publish(ctx, &mqtt.Message{Topic: "capped", QoS: mqtt.AtLeastOnce})
						}
						errs <- err
					}()
				}
				return errs
			}
			wait := func(errs <-chan error, publishers int) {
				t.Helper()
				for range publishers {
					if err := <-errs; err != nil {
						t.Fatal(err)
					}
				}
			}
			wait(publish(8, 10), 8)

			// With the server silent, exactly two go out and the third
			// waits; once the connection is cut, the two are resent and
			// the third follows.
			proxy.Blackhole()
			errs := publish(3, 1)
			waitFor(t, "two publishes in flight", func() bool { return c.Stats().InFlight == 2 })
			proxy.CutAll()
			proxy.Restore()
			wait(errs, 3)
			if n := store.peak(); n != 2 {
				t.Fatalf("%d publishes in flight at most, want 2", n)
			}
		})
	}
}

// inflightStore is a Store that keeps the most flows it ever held at once.
type inflightStore struct {
	mqtt.Store
	mu   sync.Mutex
	live map[uint16]bool
	most int
}

func (s *inflightStore) PutOutbound(id uint16, encoded []byte) error {
	s.mu.Lock()
	s.live[id] = true
	s.most = max(s.most, len(s.live))
	s.mu.Unlock()
	return s.Store.PutOutbound(id, encoded)
}

func (s *inflightStore) DeleteOutbound(id uint16) error {
	s.mu.Lock()
	delete(s.live, id)
	s.mu.Unlock()
	return s.Store.DeleteOutbound(id)
}

func (s *inflightStore) peak() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.most
}
