package mqtt_test

import (
	"errors"
	"testing"
	"time"

	"github.com/heraldiot/herald/internal/testenv"
	"github.com/heraldiot/herald/mqtt"
)

// TestKeepAliveDetectsSilentLink blackholes the link under a connected
// client, over TCP and over WebSocket: the keepalive must notice within
// 1.5× the interval.
func TestKeepAliveDetectsSilentLink(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{WebSockets: true})
	transports := []struct {
		name   string
		target string
		url    func(proxyAddr string) string
	}{
		{"tcp", b.Addr, func(a string) string { return "tcp://" + a }},
		{"ws", b.WSAddr, func(a string) string { return "ws://" + a + "/mqtt" }},
	}
	for _, tr := range transports {
		for _, v := range versions {
			t.Run(tr.name+"/v"+v.String(), func(t *testing.T) {
				proxy := testenv.StartProxy(t, tr.target)
				lost := make(chan error, 1)
				const ka = time.Second
				dial(t, b, mqtt.Options{Version: v, ClientID: "ka", Servers: []string{tr.url(proxy.Addr)},
					KeepAlive: ka, DisableAutoReconnect: true,
					OnConnectionLost: func(_ *mqtt.Client, err error) { lost <- err }})
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
}
