package mqtt_test

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/heraldiot/herald/internal/testenv"
	"github.com/heraldiot/herald/mqtt"
)

// An idle client is one goroutine, its reader: the writer and the
// dispatcher end when their work is done, keepalive is a timer and the
// supervisor runs only after a connection ends. Each client first uses
// both directions, so every goroutine it can start has run.
func TestIdleClientKeepsOneGoroutine(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	for _, v := range versions {
		t.Run("v"+v.String(), func(t *testing.T) {
			ctx := testContext(t)
			base := runtime.NumGoroutine()
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
			deadline := time.Now().Add(5 * time.Second)
			for {
				n := runtime.NumGoroutine() - base
				if n == clients {
					return
				}
				if time.Now().After(deadline) {
					buf := make([]byte, 1<<20)
					t.Fatalf("%d idle clients run %d goroutines, want %d:\n%s", clients, n, clients, buf[:runtime.Stack(buf, true)])
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}
