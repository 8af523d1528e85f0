package controllers_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/controllers"
	"github.com/heraldiot/herald/internal/devicesim"
)

// gauge reads one series of a replica's gauge, -1 when it has none.
func (m *shardManager) gauge(t testing.TB, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, s := range f.GetMetric() {
			for _, p := range s.GetLabel() {
				if v, ok := labels[p.GetName()]; ok && v != p.GetValue() {
					continue series
				}
			}
			return s.GetGauge().GetValue()
		}
	}
	return -1
}

// TestWarmStandbyTakesOverWithoutReplay: with warm standby, the replica
// that is not the leader keeps the fleet's state current over its own
// read-only session. When the leader dies mid-rollout (its Lease not
// released), the standby takes over with that state: the fleet's last
// sync stays the one from before the failover (no replay), and the
// rollout completes with exact counts, including devices that reported
// while no leader was running.
func TestWarmStandbyTakesOverWithoutReplay(t *testing.T) {
	ns := newNamespace(t)
	root := "plant/" + ns
	sel := controllers.ShardLabel + "=warm"
	a1 := startReplica(t, "a1", sel, "herald-warm", ns, "a1")
	fl := simFleet(t, root, 20, "sensor", "1.0.0", devicesim.Behavior{}, nil)
	f := &v1.DeviceFleet{}
	f.Name, f.Namespace = "fleet", ns
	f.Labels = map[string]string{controllers.ShardLabel: "warm"}
	f.Spec.Broker.URLs = []string{broker.URL()}
	f.Spec.TopicRoot = root
	if err := k8s.Create(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	ro := rollout(ns, "r", "fleet", pct(30), v1.Wave{Percent: ptr.To[int32](100), RequireApproval: true})
	ro.Labels = map[string]string{controllers.ShardLabel: "warm"}
	if err := k8s.Create(context.Background(), ro); err != nil {
		t.Fatal(err)
	}
	waitPhase(t, ns, "r", v1.PhaseWaitingForApproval, 60*time.Second)

	a2 := startReplica(t, "a2", sel, "herald-warm", ns, "a2")
	labels := map[string]string{"namespace": ns, "fleet": "fleet"}
	eventually(t, 60*time.Second, "the standby's warm session synced", func() (bool, string) {
		return a2.gauge(t, "herald_standby_fleet_synced", labels) == 1, fmt.Sprint(a2.gauge(t, "herald_standby_fleet_synced", labels))
	})
	// The standby's session counts in no fleet metric: Prometheus
	// scrapes every replica, and only the leader's traffic is the fleet's.
	if got := a2.gauge(t, "herald_broker_connected", labels); got != -1 {
		t.Fatalf("standby reports herald_broker_connected %v, want no series", got)
	}

	a1.stop() // a crash: the Lease stays until it expires
	killed := time.Now()
	patchRollout(t, ro, func(r *v1.FirmwareRollout) { r.Spec.ApprovedWaves = 1 })
	got := waitPhase(t, ns, "r", v1.PhaseSucceeded, 60*time.Second)
	if tot := got.Status.Totals; tot.Targeted != int32(len(fl.Devices)) || tot.Succeeded != tot.Targeted {
		t.Fatalf("totals %+v, want all %d succeeded", tot, len(fl.Devices))
	}
	for _, d := range fl.Devices {
		if v := d.FirmwareVersion(); v != "2.0.0" {
			t.Errorf("device %s on %s", d.ID(), v)
		}
	}
	if got := a2.gauge(t, "herald_broker_connected", labels); got != 1 {
		t.Fatalf("new leader reports herald_broker_connected %v, want 1", got)
	}
	if got := a2.gauge(t, "herald_standby_fleet_synced", labels); got != -1 {
		t.Fatalf("new leader still reports a standby series (%v)", got)
	}
	var cur v1.DeviceFleet
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(f), &cur); err != nil {
		t.Fatal(err)
	}
	ready := apimeta.FindStatusCondition(cur.Status.Conditions, v1.ConditionReady)
	if ready == nil || ready.Status != metav1.ConditionTrue || cur.Status.LastSyncTime == nil {
		t.Fatalf("fleet after the takeover: %+v, last sync %v", ready, cur.Status.LastSyncTime)
	}
	if !cur.Status.LastSyncTime.Time.Before(killed) {
		t.Fatalf("the fleet was synced again at %v, after the leader died at %v: the takeover replayed instead of using the warm state",
			cur.Status.LastSyncTime.Time, killed)
	}
}
