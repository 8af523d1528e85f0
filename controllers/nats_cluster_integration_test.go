package controllers_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/internal/devicesim"
	"github.com/heraldiot/herald/internal/testenv"
	"github.com/heraldiot/herald/mqtt"
)

// natsFleet starts n simulated devices on one node of a NATS cluster.
// nats-server 2.9's MQTT gateway speaks MQTT 3.1.1 only, so they do.
func natsFleet(t *testing.T, node *testenv.NATSNode, root string, n int) *devicesim.Fleet {
	t.Helper()
	return simFleetOn(t, node.URL(), mqtt.V311, 8, root, n, "sensor", "1.0.0", devicesim.Behavior{}, nil)
}

// natsConnectedTo waits until node serves an accepted MQTT connection for
// every client ID in ids. A connection counts once its client has
// published: nats-server lists it from the CONNECT on, and a CONNECT can
// still be refused seconds later while JetStream recovers from a lost node.
func natsConnectedTo(t *testing.T, node *testenv.NATSNode, ids ...string) {
	t.Helper()
	eventually(t, 30*time.Second, fmt.Sprintf("%d clients on NATS node %s", len(ids), node.Name), func() (bool, string) {
		conns, err := node.MQTTConnections(context.Background())
		if err != nil {
			return false, err.Error()
		}
		var missing []string
		for _, id := range ids {
			if !slices.ContainsFunc(conns, func(c testenv.NATSMQTTConn) bool { return c.ClientID == id && c.InMsgs > 0 }) {
				missing = append(missing, id)
			}
		}
		return len(missing) == 0, fmt.Sprintf("missing %v", missing)
	})
}

// TestNATSClusterRolloutSurvivesNodeLoss rolls 2.0.0 out over a 3-node
// nats-server cluster (JetStream clustered, MQTT on every node): the
// devices on node 1, the operator on node 2 with node 3 as its fallback.
// At the approval gate node 2 is killed; the operator must fail over to
// node 3, rebuild the fleet from node 3's retained messages with the same
// counts, and finish the rollout with every device updated exactly once.
func TestNATSClusterRolloutSurvivesNodeLoss(t *testing.T) {
	started := time.Now()
	cluster := testenv.StartNATSCluster(t, 3)
	n1, n2, n3 := cluster.Nodes[0], cluster.Nodes[1], cluster.Nodes[2]
	t.Logf("3-node NATS cluster ready in %v", time.Since(started).Round(time.Millisecond))

	ns := newNamespace(t)
	root := "nats/" + ns
	startManager(t)
	step := time.Now()
	const devices = 30
	fl := natsFleet(t, n1, root, devices)
	t.Logf("%d devices connected to %s in %v", devices, n1.Name, time.Since(step).Round(time.Millisecond))

	clientID := "herald-nats-" + ns
	f := &v1.DeviceFleet{
		ObjectMeta: metav1.ObjectMeta{Name: "fleet", Namespace: ns},
		Spec: v1.DeviceFleetSpec{
			Broker: v1.BrokerSpec{
				URLs:            []string{n2.URL(), n3.URL()},
				ProtocolVersion: v1.ProtocolV311,
				ClientID:        clientID,
			},
			TopicRoot:          root,
			OfflineGracePeriod: &metav1.Duration{Duration: time.Minute},
		},
	}
	if err := k8s.Create(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "fleet synced with every device online", func() (bool, string) {
		f := getFleet(t, ns, "fleet")
		return apimeta.IsStatusConditionTrue(f.Status.Conditions, v1.ConditionReady) && f.Status.Devices.Online == devices,
			fmt.Sprintf("devices %+v conditions %+v", f.Status.Devices, f.Status.Conditions)
	})
	ids := make([]string, len(fl.Devices))
	for i, d := range fl.Devices {
		ids[i] = d.ID()
	}
	natsConnectedTo(t, n1, ids...)
	natsConnectedTo(t, n2, clientID)

	step = time.Now()
	ro := rollout(ns, "r", "fleet", pct(30), v1.Wave{Percent: ptr.To[int32](100), RequireApproval: true})
	if err := k8s.Create(context.Background(), ro); err != nil {
		t.Fatal(err)
	}
	before := waitPhase(t, ns, "r", v1.PhaseWaitingForApproval, 30*time.Second)
	wave1 := cohortCount(fl, 30)
	if tot := before.Status.Totals; tot.Targeted != devices || tot.Succeeded != wave1 || tot.Failed != 0 {
		t.Fatalf("at the gate: totals %+v, want %d targeted and the %d devices of wave 1 succeeded", tot, devices, wave1)
	}
	t.Logf("wave 1 (%d devices) done in %v", wave1, time.Since(step).Round(time.Millisecond))

	// The operator's node dies: its session must reconnect to node 3, the
	// only other node in its list, and rebuild the fleet from node 3's
	// retained messages.
	lastSync := getFleet(t, ns, "fleet").Status.LastSyncTime
	step = time.Now()
	n2.Kill()
	natsConnectedTo(t, n3, clientID)
	t.Logf("operator reconnected to %s %v after the kill", n3.Name, time.Since(step).Round(time.Millisecond))

	// Node 2 comes back at once. While a node of the JetStream cluster is
	// missing, nats-server 2.9 refuses about one QoS 1 subscription in
	// three after a 4 s timeout (each needs a JetStream consumer, whose
	// raft group includes the dead node), so the rebuild, whose SUBSCRIBE
	// carries seven filters, retries with growing backoff: 23-30 s and
	// more with node 2 left down, above this test's budget (see
	// docs/operator.md, brokers at scale). The operator stays on node 3.
	restarted := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := n2.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s restarted in %v", n2.Name, time.Since(restarted).Round(time.Millisecond))
	eventually(t, 30*time.Second, "fleet re-synced through node 3", func() (bool, string) {
		f := getFleet(t, ns, "fleet")
		s := f.Status.LastSyncTime
		return apimeta.IsStatusConditionTrue(f.Status.Conditions, v1.ConditionReady) && s != nil && !s.Equal(lastSync) &&
				f.Status.Devices.Online == devices,
			fmt.Sprintf("last sync %v (before the kill %v) devices %+v conditions %+v", s, lastSync, f.Status.Devices, f.Status.Conditions)
	})
	natsConnectedTo(t, n3, clientID)
	on2, err := n2.MQTTConnections(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(on2, func(c testenv.NATSMQTTConn) bool { return c.ClientID == clientID }) {
		t.Fatalf("operator session on the restarted %s, want it on %s alone", n2.Name, n3.Name)
	}
	t.Logf("operator re-synced through %s %v after the kill", n3.Name, time.Since(step).Round(time.Millisecond))
	// The counts rebuilt from node 3's retained messages must be those
	// the live stream through node 2 had built; pausing makes the new
	// status be written from the rebuilt state before anything moves.
	patchRollout(t, ro, func(r *v1.FirmwareRollout) { r.Spec.Paused = true })
	paused := waitPhase(t, ns, "r", v1.PhasePaused, 30*time.Second)
	if paused.Status.Totals != before.Status.Totals {
		t.Fatalf("after the failover totals %+v, before %+v", paused.Status.Totals, before.Status.Totals)
	}

	step = time.Now()
	patchRollout(t, ro, func(r *v1.FirmwareRollout) { r.Spec.Paused = false; r.Spec.ApprovedWaves = 1 })
	got := waitPhase(t, ns, "r", v1.PhaseSucceeded, 60*time.Second)
	t.Logf("wave 2 through %s done in %v", n3.Name, time.Since(step).Round(time.Millisecond))
	tot := got.Status.Totals
	if tot.Targeted != devices || tot.Succeeded != devices || tot.Failed != 0 || tot.Waiting != 0 || got.Status.Progress != fmt.Sprintf("%d/%d", devices, devices) {
		t.Fatalf("final totals %+v progress %q, want all %d succeeded", tot, got.Status.Progress, devices)
	}
	if w := got.Status.Waves; len(w) != 2 || w[0].Succeeded != wave1 || w[1].Succeeded != devices-wave1 ||
		w[0].State != v1.WaveCompleted || w[1].State != v1.WaveCompleted {
		t.Fatalf("waves %+v, want %d and %d devices succeeded", w, wave1, devices-wave1)
	}
	// What the devices did must match what the operator counted: each
	// acted on one notice and succeeded, none twice.
	st := fl.Stats()
	if st.Updates != devices || st.Succeeded != devices || st.Failed+st.Rejected+st.Canceled != 0 || st.Versions["2.0.0"] != devices {
		t.Fatalf("devices: %d updates, %d succeeded, %d failed, %d rejected, %d canceled, versions %v; want %d updates, all on 2.0.0",
			st.Updates, st.Succeeded, st.Failed, st.Rejected, st.Canceled, st.Versions, devices)
	}
	eventually(t, 30*time.Second, "fleet reports every device on 2.0.0", func() (bool, string) {
		f := getFleet(t, ns, "fleet")
		v := f.Status.FirmwareVersions
		return len(v) == 1 && v[0] == v1.ValueCount{Value: "2.0.0", Count: devices}, fmt.Sprintf("versions %+v", v)
	})
	t.Logf("whole test %v", time.Since(started).Round(time.Millisecond))
}
