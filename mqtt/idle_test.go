package mqtt_test

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/heraldiot/herald/internal/testenv"
	"github.com/heraldiot/herald/mqtt"
)

// An idle client is one goroutine, its reader: the writer and the
// dispatcher end when their work is done, keepalive is a timer and the
// supervisor runs only after a connection ends. Each client first uses
// both directions, so every goroutine it can start has run.
//
// Goroutines are told apart by their stacks rather than by a count taken
// before the clients start: a client of the previous subtest may still be
// winding down when this one begins, which made a difference of counts
// come out one short on a slow machine.
func TestIdleClientKeepsOneGoroutine(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	for _, v := range versions {
		t.Run("v"+v.String(), func(t *testing.T) {
			ctx := testContext(t)
			awaitClientGoroutines(t, func(g []string) bool { return len(g) == 0 }, "none left from earlier tests")
			const clients = 8
			for i := range clients {
				got := newCollector()
				topic := fmt.Sprintf("test/%s/%d", t.Name(), i)
				c := dial(t, b, mqtt.Options{Version: v, ClientID: fmt.Sprintf("idle-%s-%d", v, i), KeepAlive: time.Minute})
				if err := c.Subscribe(ctx, got.handle, mqtt.Subscription{Filter: topic, QoS: mqtt.AtLeastOnce}); err != nil {
					t.Fatal(err)
				}
				if err := c.Publish(ctx, &mqtt.Message{Topic: topic, QoS: mqtt.AtLeastOnce, Payload: []byte("echo")}); err != nil {
					t.Fatal(err)
				}
				got.next(t)
			}
			awaitClientGoroutines(t, func(g []string) bool {
				if len(g) != clients {
					return false
				}
				for _, s := range g {
					if !strings.Contains(s, "mqtt.(*conn).readLoop") {
						return false
					}
				}
				return true
			}, fmt.Sprintf("%d, each a reader", clients))
		})
	}
}

// awaitClientGoroutines waits until the goroutines running the client's
// code satisfy ok. Goroutines only end or park, so polling their stacks is
// waiting for an event the runtime offers no other way to observe.
func awaitClientGoroutines(t *testing.T, ok func(stacks []string) bool, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		g := clientGoroutines()
		if ok(g) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("client goroutines: %d, want %s:\n%s", len(g), want, strings.Join(g, "\n\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// clientGoroutines returns the stacks of goroutines with a frame in
// package mqtt (not its tests).
func clientGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "\ngithub.com/heraldiot/herald/mqtt.") {
			out = append(out, g)
		}
	}
	return out
}
