package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/internal/devicesim"
	"github.com/heraldiot/herald/mqtt"
	"github.com/heraldiot/herald/protocol"
)

// cohortCount counts the fleet's devices whose cohort is below p: the
// devices a p% wave covers.
func cohortCount(f *devicesim.Fleet, p int) int32 {
	n := int32(0)
	for _, d := range f.Devices {
		if protocol.Cohort(d.ID()) < p {
			n++
		}
	}
	return n
}

// TestThreeWaveRolloutWithApprovalGate rolls 2.0.0 out to 300 devices in
// three waves, the second behind an approval gate, and checks the counts
// at every stop.
func TestThreeWaveRolloutWithApprovalGate(t *testing.T) {
	ns := newNamespace(t)
	root := "plant/" + ns
	startManager(t)
	fl := simFleet(t, root, 300, "sensor", "1.0.0", devicesim.Behavior{}, map[string]string{"site": "a"})
	// Devices of another model are never targeted.
	simFleet(t, root, 20, "camera", "1.0.0", devicesim.Behavior{}, nil)
	createFleet(t, ns, "fleet", root)

	ro := rollout(ns, "r", "fleet", pct(10), v1.Wave{Percent: ptr.To[int32](50), RequireApproval: true}, pct(100))
	if err := k8s.Create(context.Background(), ro); err != nil {
		t.Fatal(err)
	}
	got := waitPhase(t, ns, "r", v1.PhaseWaitingForApproval, 60*time.Second)
	wave1 := cohortCount(fl, 10)
	if got.Status.Totals.Targeted != 300 || got.Status.Totals.Succeeded != wave1 {
		t.Fatalf("at the gate: totals %+v, want 300 targeted and the %d devices of wave 1 succeeded", got.Status.Totals, wave1)
	}
	if w := got.Status.Waves; w[0].State != v1.WaveCompleted || w[0].Succeeded != wave1 || w[1].State != v1.WaveWaitingForApproval || w[1].StartTime != nil {
		t.Fatalf("at the gate: waves %+v", w)
	}
	if !strings.Contains(got.Status.Message, "approvedWaves to 1") {
		t.Fatalf("message %q does not tell how to approve", got.Status.Message)
	}
	ready := apimeta.FindStatusCondition(got.Status.Conditions, v1.ConditionReady)
	if ready == nil || ready.Status != metav1.ConditionFalse || ready.Reason != v1.ReasonWaitingForApproval {
		t.Fatalf("Ready condition at the gate = %+v", ready)
	}

	patchRollout(t, ro, func(r *v1.FirmwareRollout) { r.Spec.ApprovedWaves = 1 })
	got = waitPhase(t, ns, "r", v1.PhaseSucceeded, 120*time.Second)
	tot := got.Status.Totals
	if tot.Targeted != 300 || tot.Succeeded != 300 || tot.Failed != 0 || tot.Waiting != 0 || got.Status.Progress != "300/300" {
		t.Fatalf("final totals %+v progress %q, want 300/300", tot, got.Status.Progress)
	}
	var perWave int32
	for i, w := range got.Status.Waves {
		if w.State != v1.WaveCompleted || w.StartTime == nil || w.CompletionTime == nil {
			t.Fatalf("wave %d: %+v", i+1, w)
		}
		perWave += w.Targeted
	}
	if perWave != 300 || got.Status.Waves[1].Targeted != cohortCount(fl, 50)-wave1 {
		t.Fatalf("waves %+v do not partition the 300 devices by cohort", got.Status.Waves)
	}
	if !apimeta.IsStatusConditionTrue(got.Status.Conditions, v1.ConditionReady) || got.Status.ObservedGeneration != got.Generation {
		t.Fatalf("conditions %+v at generation %d", got.Status.Conditions, got.Generation)
	}
	for _, d := range fl.Devices {
		if v := d.FirmwareVersion(); v != "2.0.0" {
			t.Fatalf("device %s runs %s after the rollout", d.ID(), v)
		}
	}
}

func failurePolicy(action v1.FailureAction) *v1.FailurePolicy {
	return &v1.FailurePolicy{MaxFailedPercent: ptr.To[int32](20), MinFinished: 10, Action: action}
}

// TestFailureThresholdPauses has a third of the devices fail: the rollout
// pauses itself, says why, and names failed devices.
func TestFailureThresholdPauses(t *testing.T) {
	ns := newNamespace(t)
	root := "plant/" + ns
	startManager(t)
	fl := simFleet(t, root, 90, "sensor", "1.0.0", devicesim.Behavior{FailProbability: 1.0 / 3, FailReason: "flash-write-error"}, nil)
	createFleet(t, ns, "fleet", root)
	ro := rollout(ns, "r", "fleet", pct(100))
	ro.Spec.FailurePolicy = failurePolicy(v1.FailurePause)
	if err := k8s.Create(context.Background(), ro); err != nil {
		t.Fatal(err)
	}
	got := waitPhase(t, ns, "r", v1.PhasePaused, 60*time.Second)
	if !apimeta.IsStatusConditionTrue(got.Status.Conditions, v1.ConditionDegraded) ||
		!apimeta.IsStatusConditionTrue(got.Status.Conditions, v1.ConditionPaused) {
		t.Fatalf("conditions %+v, want Degraded and Paused true", got.Status.Conditions)
	}
	if got.Status.Totals.Failed == 0 || len(got.Status.FailureSample) == 0 {
		t.Fatalf("totals %+v sample %+v", got.Status.Totals, got.Status.FailureSample)
	}
	ids := map[string]bool{}
	for _, d := range fl.Devices {
		ids[d.ID()] = true
	}
	for _, f := range got.Status.FailureSample {
		if !ids[f.Device] || f.Reason != "flash-write-error" {
			t.Fatalf("failure sample %+v does not name a real device with its reason", f)
		}
	}
}

// TestFailureThresholdAborts withdraws the notices when the policy says Abort.
func TestFailureThresholdAborts(t *testing.T) {
	ns := newNamespace(t)
	root := "plant/" + ns
	startManager(t)
	simFleet(t, root, 60, "sensor", "1.0.0", devicesim.Behavior{FailProbability: 1.0 / 3}, nil)
	createFleet(t, ns, "fleet", root)
	ro := rollout(ns, "r", "fleet", pct(100))
	ro.Spec.FailurePolicy = failurePolicy(v1.FailureAbort)
	if err := k8s.Create(context.Background(), ro); err != nil {
		t.Fatal(err)
	}
	got := waitPhase(t, ns, "r", v1.PhaseAborted, 60*time.Second)
	if !apimeta.IsStatusConditionTrue(got.Status.Conditions, v1.ConditionStalled) {
		t.Fatalf("conditions %+v, want Stalled", got.Status.Conditions)
	}
	assertNoRetainedNotices(t, root)
}

// assertNoRetainedNotices subscribes afresh to every notice topic and
// checks that no retained notice is delivered: a marker published after
// the subscription must be the first message.
func assertNoRetainedNotices(t *testing.T, root string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got := make(chan *mqtt.Message, 1000)
	c, err := mqtt.Dial(ctx, mqtt.Options{Servers: []string{broker.URL()}, ClientID: "checker-" + strings.ReplaceAll(root, "/", "-")})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(ctx)
	handler := func(m *mqtt.Message) { got <- m }
	if err := c.Subscribe(ctx, handler,
		mqtt.Subscription{Filter: root + "/notices/#", QoS: 1},
		mqtt.Subscription{Filter: root + "/devices/+/notice", QoS: 1}); err != nil {
		t.Fatal(err)
	}
	marker := root + "/notices/zz-marker/00"
	if err := c.Publish(ctx, &mqtt.Message{Topic: marker, QoS: 1, Payload: []byte("marker")}); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case m := <-got:
			if m.Topic == marker {
				return
			}
			t.Fatalf("retained notice still on %s: %s", m.Topic, m.Payload)
		case <-ctx.Done():
			t.Fatal("marker never arrived")
		}
	}
}

// TestCancelClearsRetainedNotices cancels a rollout held at a gate.
func TestCancelClearsRetainedNotices(t *testing.T) {
	ns := newNamespace(t)
	root := "plant/" + ns
	startManager(t)
	simFleet(t, root, 40, "sensor", "1.0.0", devicesim.Behavior{}, nil)
	createFleet(t, ns, "fleet", root)
	ro := rollout(ns, "r", "fleet", pct(50), v1.Wave{Percent: ptr.To[int32](100), RequireApproval: true})
	if err := k8s.Create(context.Background(), ro); err != nil {
		t.Fatal(err)
	}
	waitPhase(t, ns, "r", v1.PhaseWaitingForApproval, 60*time.Second)
	patchRollout(t, ro, func(r *v1.FirmwareRollout) { r.Spec.Canceled = true })
	got := waitPhase(t, ns, "r", v1.PhaseCanceled, 30*time.Second)
	if got.Status.CompletionTime == nil {
		t.Fatal("canceled rollout has no completion time")
	}
	assertNoRetainedNotices(t, root)
}

// TestDeleteClearsRetainedNotices deletes a running rollout: the finalizer
// withdraws its notices before the object goes.
func TestDeleteClearsRetainedNotices(t *testing.T) {
	ns := newNamespace(t)
	root := "plant/" + ns
	startManager(t)
	simFleet(t, root, 20, "sensor", "1.0.0", devicesim.Behavior{}, nil)
	createFleet(t, ns, "fleet", root)
	ro := rollout(ns, "r", "fleet", pct(50), v1.Wave{Percent: ptr.To[int32](100), RequireApproval: true})
	if err := k8s.Create(context.Background(), ro); err != nil {
		t.Fatal(err)
	}
	waitPhase(t, ns, "r", v1.PhaseWaitingForApproval, 60*time.Second)
	if err := k8s.Delete(context.Background(), ro); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "rollout deleted", func() (bool, string) {
		err := k8s.Get(context.Background(), client.ObjectKeyFromObject(ro), &v1.FirmwareRollout{})
		return err != nil && strings.Contains(err.Error(), "not found"), fmt.Sprint(err)
	})
	assertNoRetainedNotices(t, root)
}

// TestDeviceTimeout: a device that accepts and never finishes fails after
// spec.deviceTimeout.
func TestDeviceTimeout(t *testing.T) {
	ns := newNamespace(t)
	root := "plant/" + ns
	startManager(t)
	simFleet(t, root, 3, "sensor", "1.0.0", devicesim.Behavior{Hang: true}, nil)
	createFleet(t, ns, "fleet", root)
	ro := rollout(ns, "r", "fleet", pct(100))
	ro.Spec.DeviceTimeout = &metav1.Duration{Duration: 2 * time.Second}
	if err := k8s.Create(context.Background(), ro); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "devices timed out", func() (bool, string) {
		ro := getRollout(t, ns, "r")
		return ro.Status.Totals.Failed == 3, fmt.Sprintf("totals %+v", ro.Status.Totals)
	})
	got := getRollout(t, ns, "r")
	for _, f := range got.Status.FailureSample {
		if !strings.HasPrefix(f.Reason, "timeout") {
			t.Fatalf("failure %+v, want a timeout", f)
		}
	}
}

// TestOperatorRestartMidRollout stops the manager at a gate and starts a
// new one: it rebuilds everything from the broker and carries on.
func TestOperatorRestartMidRollout(t *testing.T) {
	ns := newNamespace(t)
	root := "plant/" + ns
	stop := startManager(t)
	fl := simFleet(t, root, 100, "sensor", "1.0.0", devicesim.Behavior{}, nil)
	createFleet(t, ns, "fleet", root)
	ro := rollout(ns, "r", "fleet", pct(30), v1.Wave{Percent: ptr.To[int32](100), RequireApproval: true})
	if err := k8s.Create(context.Background(), ro); err != nil {
		t.Fatal(err)
	}
	before := waitPhase(t, ns, "r", v1.PhaseWaitingForApproval, 60*time.Second)
	stop()

	startManager(t)
	// The new manager must report the same counts before anything moves.
	patchRollout(t, ro, func(r *v1.FirmwareRollout) { r.Spec.Paused = true })
	after := waitPhase(t, ns, "r", v1.PhasePaused, 60*time.Second)
	if after.Status.Totals != before.Status.Totals {
		t.Fatalf("after restart totals %+v, before %+v", after.Status.Totals, before.Status.Totals)
	}
	patchRollout(t, ro, func(r *v1.FirmwareRollout) { r.Spec.Paused = false; r.Spec.ApprovedWaves = 1 })
	got := waitPhase(t, ns, "r", v1.PhaseSucceeded, 120*time.Second)
	if got.Status.Totals.Succeeded != int32(len(fl.Devices)) {
		t.Fatalf("totals %+v", got.Status.Totals)
	}
}

// TestLateJoinerIncluded starts a device while the rollout waits at a gate:
// it falls in the first wave's cohorts, so it must be targeted and updated
// without anyone touching the rollout.
func TestLateJoinerIncluded(t *testing.T) {
	ns := newNamespace(t)
	root := "plant/" + ns
	startManager(t)
	simFleet(t, root, 30, "sensor", "1.0.0", devicesim.Behavior{}, nil)
	createFleet(t, ns, "fleet", root)
	ro := rollout(ns, "r", "fleet", pct(10), v1.Wave{Percent: ptr.To[int32](100), RequireApproval: true})
	if err := k8s.Create(context.Background(), ro); err != nil {
		t.Fatal(err)
	}
	before := waitPhase(t, ns, "r", v1.PhaseWaitingForApproval, 60*time.Second).Status.Totals

	// An ID in a first-wave cohort that no earlier device used.
	id := idInCohort("late", 10)
	d, err := devicesim.New(devicesim.Config{ID: id, Model: "sensor", FirmwareVersion: "1.0.0", HardwareRevision: "r2",
		Broker: broker.URL(), Version: mqtt.V5, TopicRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Stop(context.Background()) })
	eventually(t, 60*time.Second, "late joiner updated", func() (bool, string) {
		tot := getRollout(t, ns, "r").Status.Totals
		return tot.Targeted == before.Targeted+1 && tot.Succeeded == before.Succeeded+1 && d.FirmwareVersion() == "2.0.0",
			fmt.Sprintf("totals %+v (before %+v), device on %s", tot, before, d.FirmwareVersion())
	})
	if got := getRollout(t, ns, "r"); got.Status.Phase != v1.PhaseWaitingForApproval {
		t.Fatalf("phase %s: the late joiner must not open the gate", got.Status.Phase)
	}
}
