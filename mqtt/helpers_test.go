package mqtt_test

import (
	"context"
	"testing"
	"time"

	"github.com/heraldiot/herald/internal/testenv"
	"github.com/heraldiot/herald/mqtt"
)

// versions are the protocol versions every behaviour is tested under.
var versions = []mqtt.Version{mqtt.V311, mqtt.V5}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// dial connects a client to b and disconnects it when the test ends.
func dial(t *testing.T, b *testenv.Broker, opts mqtt.Options) *mqtt.Client {
	t.Helper()
	if len(opts.Servers) == 0 {
		opts.Servers = []string{b.URL()}
	}
	c, err := mqtt.Dial(testContext(t), opts)
	if err != nil {
		t.Fatalf("connect %s: %v", opts.ClientID, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.Disconnect(ctx)
	})
	return c
}

// collector gathers messages a handler receives, for tests to await.
type collector struct {
	ch chan *mqtt.Message
}

func newCollector() *collector { return &collector{ch: make(chan *mqtt.Message, 10000)} }

func (c *collector) handle(m *mqtt.Message) { c.ch <- m }

// next waits for the next message.
func (c *collector) next(t *testing.T) *mqtt.Message {
	t.Helper()
	select {
	case m := <-c.ch:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message within 10s")
		return nil
	}
}

// none asserts no message arrives within d. Used only where the behaviour
// under test is an absence, which no event can signal.
func (c *collector) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case m := <-c.ch:
		t.Fatalf("unexpected message on %q: %q", m.Topic, m.Payload)
	case <-time.After(d):
	}
}

// waitFor polls cond until it holds, for conditions the client exposes
// only as state (Stats, IsConnected), failing after 20s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
