package controllers_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/controllers"
	"github.com/heraldiot/herald/internal/testenv"
	"github.com/heraldiot/herald/mqtt"
	"github.com/heraldiot/herald/protocol"
)

// BenchmarkFailover100k measures a takeover of a 100,000-device fleet:
// the time from the standby replica winning the Lease to it holding a
// synced picture of the fleet, with a warm standby and with a cold one
// (which replays every retained message first). The Lease's expiry comes
// before both and is the same for both; it is left out.
func BenchmarkFailover100k(b *testing.B) {
	const n = 100_000
	big, err := testenv.NewBroker(b.TempDir(), testenv.BrokerOptions{Config: []string{"max_queued_messages 0"}})
	if err != nil {
		b.Skip(err)
	}
	defer big.Stop()
	ctx := context.Background()
	for _, mode := range []struct {
		name string
		warm bool
	}{{"warm", true}, {"cold", false}} {
		b.Run(mode.name, func(b *testing.B) {
			ns := newNamespace(b)
			root := "failover100k/" + ns
			topics, _ := protocol.NewTopics(root)
			f := &muxFleet{topics: topics, model: "sensor"}
			for c := range 4 {
				cl, err := mqtt.Dial(ctx, mqtt.Options{Servers: []string{big.URL()}, ClientID: fmt.Sprintf("%s-mux-%d", mode.name, c)})
				if err != nil {
					b.Fatal(err)
				}
				defer cl.Disconnect(ctx)
				f.clients = append(f.clients, cl)
			}
			if err := f.announce(ctx, n); err != nil {
				b.Fatal(err)
			}
			sel := controllers.ShardLabel + "=" + mode.name
			standbyID := func(s string) string {
				if mode.warm {
					return s
				}
				return ""
			}
			lease := "failover-" + mode.name
			leader := startReplica(b, "leader", sel, lease, ns, standbyID("leader"))
			fl := &v1.DeviceFleet{}
			fl.Name, fl.Namespace = "fleet", ns
			fl.Labels = map[string]string{controllers.ShardLabel: mode.name}
			fl.Spec.Broker.URLs = []string{big.URL()}
			fl.Spec.TopicRoot = root
			if err := k8s.Create(ctx, fl); err != nil {
				b.Fatal(err)
			}
			labels := map[string]string{"namespace": ns, "fleet": "fleet"}
			eventually(b, 2*time.Minute, "the leader synced", func() (bool, string) {
				return leader.gauge(b, "herald_fleet_synced", labels) == 1, ""
			})
			standby := startReplica(b, "standby", sel, lease, ns, standbyID("standby"))
			if mode.warm {
				eventually(b, 2*time.Minute, "the standby warm", func() (bool, string) {
					return standby.gauge(b, "herald_standby_fleet_synced", labels) == 1, ""
				})
			}
			leader.stop()
			select {
			case <-standby.elected:
			case <-time.After(time.Minute):
				b.Fatal("the standby was not elected within a minute")
			}
			b.ResetTimer()
			start := time.Now()
			for standby.gauge(b, "herald_fleet_synced", labels) != 1 {
				if time.Since(start) > 2*time.Minute {
					b.Fatal("the new leader did not sync within 2 minutes")
				}
				time.Sleep(5 * time.Millisecond) // polling a metric; nothing to wait on
			}
			b.ReportMetric(time.Since(start).Seconds(), "takeover-s")
		})
	}
}
