package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/controllers"
	"github.com/heraldiot/herald/internal/devicesim"
)

// shardManager is one manager replica of a shard, run in-process with the
// manager's own cache and leader election settings.
type shardManager struct {
	name    string
	reg     *prometheus.Registry
	stop    func()
	elected <-chan struct{}
}

// startShardManager starts a replica serving the objects selector
// matches, electing its leader on the Lease id in ns. Stopping it does
// not release the Lease: the replicas left must wait for it to expire,
// as after a crash.
func startShardManager(t testing.TB, name, selector, id, ns string) *shardManager {
	t.Helper()
	return startReplica(t, name, selector, id, ns, "")
}

// startReplica is startShardManager with warm standby when standbyID is
// set.
func startReplica(t testing.TB, name, selector, id, ns, standbyID string) *shardManager {
	t.Helper()
	sel, err := controllers.ParseShardSelector(selector)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	lease, renew, retry := 4*time.Second, 3*time.Second, 500*time.Millisecond
	mgr, err := ctrl.NewManager(cp.Config, ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsserver.Options{BindAddress: "0"},
		Controller:              config.Controller{SkipNameValidation: ptr.To(true)},
		Cache:                   controllers.ShardCache(cache.Options{}, sel),
		LeaderElection:          true,
		LeaderElectionID:        id,
		LeaderElectionNamespace: ns,
		LeaseDuration:           &lease,
		RenewDeadline:           &renew,
		RetryPeriod:             &retry,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := controllers.Setup(ctx, mgr, controllers.Options{EventInterval: 200 * time.Millisecond, Registerer: reg, Shard: selector,
		StandbyID: standbyID}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	m := &shardManager{name: name, reg: reg, elected: mgr.Elected()}
	stopped := false
	m.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager %s: %v", name, err)
		}
	}
	t.Cleanup(m.stop)
	return m
}

// connected returns the fleets ("namespace/name") whose broker connection
// the replica reports up.
func (m *shardManager) connected(t testing.TB) []string {
	t.Helper()
	families, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range families {
		if f.GetName() != "herald_broker_connected" {
			continue
		}
		for _, s := range f.GetMetric() {
			if s.GetGauge().GetValue() != 1 {
				continue
			}
			l := map[string]string{}
			for _, p := range s.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			out = append(out, l["namespace"]+"/"+l["fleet"])
		}
	}
	return out
}

// TestShardsServeTheirFleetsAndFailOver: two shards selected by
// sharding.herald.dev/key, shard a with two replicas. Each fleet is served
// by exactly one manager, the leader of its shard; when that leader dies
// mid-rollout (its Lease not released, as in a crash), the standby
// replica takes the fleet over and the rollout completes with exact
// counts. Shard b carries on untouched.
func TestShardsServeTheirFleetsAndFailOver(t *testing.T) {
	ns := newNamespace(t)
	a1 := startShardManager(t, "a1", controllers.ShardLabel+"=a", "herald-shard-a", ns)
	b1 := startShardManager(t, "b1", controllers.ShardLabel+"=b", "herald-shard-b", ns)

	type shard struct {
		key   string
		fleet *devicesim.Fleet
	}
	shards := []*shard{{key: "a"}, {key: "b"}}
	for _, s := range shards {
		root := fmt.Sprintf("plant/%s-%s", ns, s.key)
		// Device IDs (and so client IDs) are per model: one model per shard.
		model := "sensor-" + s.key
		s.fleet = simFleet(t, root, 10, model, "1.0.0", devicesim.Behavior{}, nil)
		f := &v1.DeviceFleet{}
		f.Name, f.Namespace = "fleet-"+s.key, ns
		f.Labels = map[string]string{controllers.ShardLabel: s.key}
		f.Spec.Broker.URLs = []string{broker.URL()}
		f.Spec.TopicRoot = root
		if err := k8s.Create(context.Background(), f); err != nil {
			t.Fatal(err)
		}
		ro := rollout(ns, "r-"+s.key, "fleet-"+s.key, pct(30), v1.Wave{Percent: ptr.To[int32](100), RequireApproval: true})
		ro.Labels = map[string]string{controllers.ShardLabel: s.key}
		ro.Spec.Firmware.Models = []string{model}
		if err := k8s.Create(context.Background(), ro); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range shards {
		waitPhase(t, ns, "r-"+s.key, v1.PhaseWaitingForApproval, 60*time.Second)
	}
	// The standby of shard a starts once its leader holds the Lease.
	a2 := startShardManager(t, "a2", controllers.ShardLabel+"=a", "herald-shard-a", ns)
	served := func() map[string][]string {
		return map[string][]string{"a1": a1.connected(t), "a2": a2.connected(t), "b1": b1.connected(t)}
	}
	want := fmt.Sprint(map[string][]string{"a1": {ns + "/fleet-a"}, "a2": nil, "b1": {ns + "/fleet-b"}})
	if got := fmt.Sprint(served()); got != want {
		t.Fatalf("fleets served %s, want %s", got, want)
	}

	a1.stop() // a crash: the Lease stays until it expires
	for _, s := range shards {
		patchRollout(t, rollout(ns, "r-"+s.key, "", pct(100)), func(r *v1.FirmwareRollout) { r.Spec.ApprovedWaves = 1 })
	}
	eventually(t, 60*time.Second, "the standby serving fleet-a", func() (bool, string) {
		got := a2.connected(t)
		return len(got) == 1 && got[0] == ns+"/fleet-a", fmt.Sprint(served())
	})
	for _, s := range shards {
		got := waitPhase(t, ns, "r-"+s.key, v1.PhaseSucceeded, 60*time.Second)
		if tot := got.Status.Totals; tot.Targeted != int32(len(s.fleet.Devices)) || tot.Succeeded != tot.Targeted {
			t.Errorf("shard %s totals %+v, want all %d succeeded", s.key, tot, len(s.fleet.Devices))
		}
		for _, d := range s.fleet.Devices {
			if v := d.FirmwareVersion(); v != "2.0.0" {
				t.Errorf("shard %s: device %s on %s", s.key, d.ID(), v)
			}
		}
	}
	if got := b1.connected(t); fmt.Sprint(got) != fmt.Sprint([]string{ns + "/fleet-b"}) {
		t.Fatalf("shard b serves %v after shard a's failover", got)
	}
}

// A rollout whose fleet is in another shard says so instead of waiting
// in silence.
func TestRolloutOutsideItsFleetsShard(t *testing.T) {
	ns := newNamespace(t)
	startShardManager(t, "a", controllers.ShardLabel+"=a", "herald-shard-a2", ns)
	createFleet(t, ns, "fleet", "plant/"+ns) // unlabeled: in no shard
	ro := rollout(ns, "r", "fleet", pct(100))
	ro.Labels = map[string]string{controllers.ShardLabel: "a"}
	if err := k8s.Create(context.Background(), ro); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "a message naming the shard", func() (bool, string) {
		got := getRollout(t, ns, "r")
		for _, c := range got.Status.Conditions {
			if c.Type == v1.ConditionReady && c.Reason == v1.ReasonFleetNotFound &&
				strings.Contains(c.Message, "label the fleet like its rollouts") {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", got.Status.Conditions)
	})
}
