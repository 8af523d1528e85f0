package mqtt_test

import (
	"errors"
	"testing"
	"time"

	"github.com/heraldiot/herald/internal/testenv"
	"github.com/heraldiot/herald/mqtt"
)

func TestKeepAliveDetectsSilentLink(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	for _, v := range versions {
		t.Run("v"+v.String(), func(t *testing.T) {
			proxy := testenv.StartProxy(t, b.Addr)
			lost := make(chan error, 1)
			const ka = time.Second
			c := dial(t, b, mqtt.Options{Version: v, ClientID: "ka", Servers: []string{proxy.URL()},
				KeepAlive: ka, DisableAutoReconnect: true,
				OnConnectionLost: func(_ *mqtt.Client, err error) { lost <- err }})
			_ = c
			proxy.Blackhole()
			start := time.Now()
			select {
			case err := <-lost:
				if !errors.Is(err, mqtt.ErrKeepAliveTimeout) {
					t.Fatalf("connection lost with %v, want keepalive timeout", err)
				}
				// PINGREQ goes out after at most one quiet interval and
				// PINGRESP is due within half of one. The margin covers
				// the check's tick and scheduling.
				if d := time.Since(start); d > ka*3/2+300*time.Millisecond {
					t.Fatalf("dead link detected after %v, want within 1.5×%v", d, ka)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("dead link never detected")
			}
		})
	}
}
