package mqtt_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldiot/herald/internal/testenv"
	"github.com/heraldiot/herald/mqtt"
	"github.com/heraldiot/herald/mqtt/packet"
)

// The tests in this file check what a handler may do (docs/mqtt.md,
// "Handlers and back-pressure").

// TestDisconnectFromHandler: a handler that disconnects its own client
// must not wait for itself.
func TestDisconnectFromHandler(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	ctx := testContext(t)
	ready := make(chan struct{})
	returned := make(chan error, 1)
	var c *mqtt.Client
	c = dial(t, b, mqtt.Options{ClientID: "disconnect-in-handler", DefaultHandler: func(*mqtt.Message) {
		<-ready // c is set
		returned <- c.Disconnect(context.Background())
	}})
	close(ready)
	if err := c.Subscribe(ctx, nil, mqtt.Subscription{Filter: "bye"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, &mqtt.Message{Topic: "bye"}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-returned:
		if err != nil {
			t.Fatalf("Disconnect from a handler: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Disconnect called from a handler did not return")
	}
	if c.IsConnected() {
		t.Fatal("still connected after Disconnect")
	}
}

// TestDisconnectHonoursContextWhileHandlerRuns: Disconnect waits for a
// running handler only as long as its context allows, and then says so.
func TestDisconnectHonoursContextWhileHandlerRuns(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	ctx := testContext(t)
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock)
	// Only a client that ignores its context is still waiting here; it
	// then returns nil, which the test reports.
	safety := time.AfterFunc(10*time.Second, unblock)
	defer safety.Stop()
	c := dial(t, b, mqtt.Options{ClientID: "slow-handler", DefaultHandler: func(*mqtt.Message) {
		entered <- struct{}{}
		<-release
	}})
	if err := c.Subscribe(ctx, nil, mqtt.Subscription{Filter: "slow"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, &mqtt.Message{Topic: "slow"}); err != nil {
		t.Fatal(err)
	}
	<-entered
	dctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := c.Disconnect(dctx)
	select {
	case <-release:
		t.Fatal("Disconnect waited for the handler past its context")
	default:
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Disconnect = %v, want the context's error", err)
	}
	if c.IsConnected() {
		t.Fatal("still connected after Disconnect")
	}
}

// TestHandlerPublishesQoS1UnderQoS0Burst: a handler that answers every
// message with a QoS 1 publish (as Client.Respond does) while a QoS 0
// burst overfills the handler queue. The PUBACK it waits for is behind the
// burst on the wire, so the reader must keep reading: no publish may hang,
// and every message is either handled or counted as dropped.
func TestHandlerPublishesQoS1UnderQoS0Burst(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	ctx := testContext(t)
	const burst = 1000
	var handled, failed atomic.Int64
	gate := make(chan struct{})
	done := make(chan struct{})
	var c *mqtt.Client
	c = dial(t, b, mqtt.Options{ClientID: "responder", DefaultHandler: func(m *mqtt.Message) {
		<-gate // c is set and the queue is full
		if m.Topic == "burst/done" {
			close(done)
			return
		}
		if err := c.Publish(ctx, &mqtt.Message{Topic: "burst/answer", QoS: mqtt.AtLeastOnce}); err != nil {
			failed.Add(1)
		}
		handled.Add(1)
	}})
	if err := c.Subscribe(ctx, nil, mqtt.Subscription{Filter: "burst/req"}); err != nil {
		t.Fatal(err)
	}
	// QoS 1, so never dropped, and after the burst on the wire.
	if err := c.Subscribe(ctx, nil, mqtt.Subscription{Filter: "burst/done", QoS: mqtt.AtLeastOnce}); err != nil {
		t.Fatal(err)
	}
	pub := dial(t, b, mqtt.Options{ClientID: "burster"})
	for i := range burst {
		if err := pub.Publish(ctx, &mqtt.Message{Topic: "burst/req", Payload: fmt.Append(nil, i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Publish(ctx, &mqtt.Message{Topic: "burst/done", QoS: mqtt.AtLeastOnce}); err != nil {
		t.Fatal(err)
	}
	// One message is with the handler; the default queue (256) holds the
	// next ones, so the reader has more than it can queue.
	waitFor(t, "a full handler queue", func() bool { return c.Stats().Queued == 256 })
	close(gate)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("deadlock: %d messages handled, %d dropped", handled.Load(), c.Stats().DroppedQoS0)
	}
	st := c.Stats()
	if received := st.Received[packet.TypePublish].Packets - 1; uint64(handled.Load())+st.DroppedQoS0 != received || received != burst {
		t.Fatalf("received %d of %d, handled %d + dropped %d: messages unaccounted for", received, burst, handled.Load(), st.DroppedQoS0)
	}
	if failed.Load() != 0 || st.ConnectionsLost != 0 {
		t.Fatalf("%d publishes from the handler failed, %d connections lost", failed.Load(), st.ConnectionsLost)
	}
}

// TestOverlappingFiltersOneDeliveryPerSubscribe: one Subscribe with two
// filters that both match a topic hands each message to its handler
// once. (A v5 server may send one copy per matching subscription, as
// mosquitto does; each copy is a message of its own.)
func TestOverlappingFiltersOneDeliveryPerSubscribe(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	for _, v := range versions {
		t.Run("v"+v.String(), func(t *testing.T) {
			ctx := testContext(t)
			got, other := newCollector(), newCollector()
			sub := dial(t, b, mqtt.Options{Version: v, ClientID: "overlap-" + v.String()})
			err := sub.Subscribe(ctx, got.handle,
				mqtt.Subscription{Filter: "ovl/#", QoS: mqtt.ExactlyOnce},
				mqtt.Subscription{Filter: "ovl/+", QoS: mqtt.ExactlyOnce})
			if err != nil {
				t.Fatal(err)
			}
			pub := dial(t, b, mqtt.Options{Version: v, ClientID: "overlap-pub-" + v.String()})
			for _, topic := range []string{"ovl/x", "ovl/x/end"} { // the second matches "ovl/#" only
				if err := pub.Publish(ctx, &mqtt.Message{Topic: topic, QoS: mqtt.ExactlyOnce}); err != nil {
					t.Fatal(err)
				}
			}
			n := 0
			for m := got.next(t); m.Topic != "ovl/x/end"; m = got.next(t) {
				n++
			}
			copies := int(sub.Stats().Received[packet.TypePublish].Packets) - 1
			if n != copies {
				t.Fatalf("handler ran %d times for %d copies of the message", n, copies)
			}
			if v != mqtt.V311 {
				return
			}
			// mosquitto sends a 3.1.1 client one copy; a second Subscribe
			// with its own handler gets it once too.
			if copies != 1 {
				t.Fatalf("mosquitto sent %d copies, want 1", copies)
			}
			if err := sub.Subscribe(ctx, other.handle, mqtt.Subscription{Filter: "ovl/x", QoS: mqtt.ExactlyOnce}); err != nil {
				t.Fatal(err)
			}
			for _, topic := range []string{"ovl/x", "ovl/x/end"} {
				if err := pub.Publish(ctx, &mqtt.Message{Topic: topic, QoS: mqtt.ExactlyOnce}); err != nil {
					t.Fatal(err)
				}
			}
			if m := got.next(t); m.Topic != "ovl/x" {
				t.Fatalf("first handler got %q", m.Topic)
			}
			if m := got.next(t); m.Topic != "ovl/x/end" {
				t.Fatalf("first handler got %q after ovl/x, want ovl/x/end", m.Topic)
			}
			// Handlers run one message at a time, so the second handler's
			// calls for ovl/x are over.
			if n := len(other.ch); n != 1 {
				t.Fatalf("second handler ran %d times", n)
			}
		})
	}
}
