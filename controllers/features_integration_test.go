package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/internal/devicesim"
	"github.com/heraldiot/herald/protocol"
)

// TestRetriesRecoverFailedDevices: devices whose first download fails are
// notified again with the next attempt and succeed on it; the operator is
// restarted while retries are under way, and they survive it, because the
// attempt lives in the retained notices and statuses. A failure policy of
// zero failures never trips: a device waiting for its retry is no failure.
func TestRetriesRecoverFailedDevices(t *testing.T) {
	ns := newNamespace(t)
	root := "plant/" + ns
	stop := startManager(t)
	b := devicesim.Behavior{FailProbability: 0.4, FailReasons: []string{protocol.ReasonDownloadFailed}, SucceedOnAttempt: 2}
	fl := simFleet(t, root, 20, "sensor", "1.0.0", b, nil)
	failing := 0
	for _, d := range fl.Devices {
		if devicesim.FirstOutcome(d.ID(), b).State == protocol.StateFailed {
			failing++
		}
	}
	if failing == 0 || failing == len(fl.Devices) {
		t.Fatalf("%d of %d devices fail their first attempt; the test needs some of each", failing, len(fl.Devices))
	}
	createFleet(t, ns, "fleet", root)
	ro := rollout(ns, "r", "fleet", pct(100))
	ro.Spec.RetryPolicy = &v1.RetryPolicy{Download: 1, Backoff: &metav1.Duration{Duration: 2 * time.Second}}
	ro.Spec.FailurePolicy = &v1.FailurePolicy{MaxFailed: ptr.To[int32](0), Action: v1.FailureAbort}
	if err := k8s.Create(context.Background(), ro); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "a first failure seen", func() (bool, string) {
		tot := getRollout(t, ns, "r").Status.Totals
		return tot.Retrying+tot.Retries > 0, fmt.Sprintf("%+v", tot)
	})
	stop()
	startManager(t)
	got := waitPhase(t, ns, "r", v1.PhaseSucceeded, 90*time.Second)
	tot := got.Status.Totals
	if tot.Succeeded != int32(len(fl.Devices)) || tot.Failed != 0 || tot.Retries != int32(failing) || tot.RetriesExhausted != 0 {
		t.Fatalf("totals %+v, want all %d succeeded after exactly %d retries", tot, len(fl.Devices), failing)
	}
	for _, d := range fl.Devices {
		if v := d.FirmwareVersion(); v != "2.0.0" {
			t.Errorf("device %s on %s", d.ID(), v)
		}
	}
}

// TestRetriesExhausted: a device that fails every attempt is retried as
// often as the policy allows, then counted failed and exhausted.
func TestRetriesExhausted(t *testing.T) {
	ns := newNamespace(t)
	root := "plant/" + ns
	startManager(t)
	b := devicesim.Behavior{FailProbability: 1, FailReasons: []string{protocol.ReasonInstallFailed}}
	fl := simFleet(t, root, 3, "sensor", "1.0.0", b, nil)
	createFleet(t, ns, "fleet", root)
	ro := rollout(ns, "r", "fleet", pct(100))
	ro.Spec.RetryPolicy = &v1.RetryPolicy{Install: 2, Backoff: &metav1.Duration{Duration: time.Second}}
	if err := k8s.Create(context.Background(), ro); err != nil {
		t.Fatal(err)
	}
	got := waitPhase(t, ns, "r", v1.PhaseSucceeded, 90*time.Second) // every wave completed
	n := int32(len(fl.Devices))
	if tot := got.Status.Totals; tot.Failed != n || tot.RetriesExhausted != n || tot.Retries != 2*n || tot.Retrying != 0 {
		t.Fatalf("totals %+v, want %d failed and exhausted after 2 retries each", tot, n)
	}
}

// TestSnapshotLeavesLateJoinersAlone: a Snapshot rollout freezes its
// targets when the first wave starts. A device provisioned afterwards gets
// nothing, even in a cohort a later wave covers, and an operator restart
// in between reloads the same set from its ConfigMaps.
func TestSnapshotLeavesLateJoinersAlone(t *testing.T) {
	ns := newNamespace(t)
	root := "plant/" + ns
	stop := startManager(t)
	fl := simFleet(t, root, 10, "sensor", "1.0.0", devicesim.Behavior{}, nil)
	createFleet(t, ns, "fleet", root)
	ro := rollout(ns, "r", "fleet", pct(50), v1.Wave{Percent: ptr.To[int32](100), RequireApproval: true})
	ro.Spec.Targeting = v1.TargetingSnapshot
	if err := k8s.Create(context.Background(), ro); err != nil {
		t.Fatal(err)
	}
	got := waitPhase(t, ns, "r", v1.PhaseWaitingForApproval, 60*time.Second)
	snap := got.Status.Snapshot
	if snap == nil || snap.Devices != int32(len(fl.Devices)) || len(snap.ConfigMaps) == 0 {
		t.Fatalf("status.snapshot %+v, want all %d devices", snap, len(fl.Devices))
	}
	var cm corev1.ConfigMap
	if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: snap.ConfigMaps[0]}, &cm); err != nil {
		t.Fatal(err)
	}
	if cm.Immutable == nil || !*cm.Immutable || len(cm.OwnerReferences) != 1 || cm.OwnerReferences[0].UID != got.UID {
		t.Fatalf("snapshot ConfigMap %s: immutable %v, owners %+v", cm.Name, cm.Immutable, cm.OwnerReferences)
	}

	// A stranger device in a cohort of the second wave, provisioned now.
	late := newStranger(t, root, idInCohort("late", 100), "")
	stop()
	startManager(t)
	patchRollout(t, ro, func(r *v1.FirmwareRollout) { r.Spec.ApprovedWaves = 1 })
	got = waitPhase(t, ns, "r", v1.PhaseSucceeded, 60*time.Second)
	if tot := got.Status.Totals; tot.Targeted != int32(len(fl.Devices)) || tot.Succeeded != tot.Targeted {
		t.Fatalf("totals %+v, want exactly the %d snapshot devices", tot, len(fl.Devices))
	}
	// A marker published after everything else: once it arrives, any
	// notice for the late device would have arrived before it.
	late.publish(root+"/devices/"+late.id+"/notice", "")
	late.awaitNotice(10 * time.Second)
	for _, m := range late.received() {
		if len(m.Payload) > 0 {
			t.Fatalf("the late device got a notice on %s: %s", m.Topic, m.Payload)
		}
	}
}

// TestMaintenanceWindowGatesNotices: outside its maintenance window a
// rollout publishes nothing and says when the window opens; once the
// window covers now, it runs, and every notice carries the window for
// devices to honour.
func TestMaintenanceWindowGatesNotices(t *testing.T) {
	ns := newNamespace(t)
	root := "plant/" + ns
	startManager(t)
	fl := simFleet(t, root, 10, "sensor", "1.0.0", devicesim.Behavior{}, nil)
	createFleet(t, ns, "fleet", root)
	// A window that opens an hour from now, in UTC: closed for the
	// whole test however slow the machine.
	soon := time.Now().UTC().Add(time.Hour)
	ro := rollout(ns, "r", "fleet", pct(100))
	ro.Spec.MaintenanceWindows = []v1.MaintenanceWindow{{
		Schedule: fmt.Sprintf("%d %d * * *", soon.Minute(), soon.Hour()), Duration: metav1.Duration{Duration: 30 * time.Minute},
	}}
	if err := k8s.Create(context.Background(), ro); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "held for the window", func() (bool, string) {
		got := getRollout(t, ns, "r")
		c := apimeta.FindStatusCondition(got.Status.Conditions, v1.ConditionReconciling)
		return c != nil && c.Reason == v1.ReasonOutsideMaintenanceWindow && got.Status.Totals.Targeted == int32(len(fl.Devices)),
			fmt.Sprintf("phase %s, conditions %+v", got.Status.Phase, got.Status.Conditions)
	})
	assertNoRetainedNotices(t, root)

	// Every minute, for a minute: open now and always.
	patchRollout(t, ro, func(r *v1.FirmwareRollout) {
		r.Spec.MaintenanceWindows = []v1.MaintenanceWindow{{Schedule: "* * * * *", Duration: metav1.Duration{Duration: time.Minute}, TimeZone: "Europe/Berlin"}}
	})
	// A device written by strangers reads the notice and declines it.
	watcher := newStranger(t, root, idInCohort("watcher", 100), "")
	watcher.awaitNotice(60 * time.Second)
	var notice *protocol.Notice
	for _, m := range watcher.received() {
		if n, err := protocol.ParseNotice(m.Payload); err == nil && n.Action == protocol.ActionUpdate {
			notice = &n
		}
	}
	if notice == nil || len(notice.MaintenanceWindows) != 1 || notice.MaintenanceWindows[0] !=
		(protocol.MaintenanceWindow{Schedule: "* * * * *", DurationSeconds: 60, TimeZone: "Europe/Berlin"}) {
		t.Fatalf("notice %+v, want the window in it", notice)
	}
	watcher.report(notice.Rollout.UID, notice.Rollout.String(), "rejected", time.Now())
	got := waitPhase(t, ns, "r", v1.PhaseSucceeded, 60*time.Second)
	if tot := got.Status.Totals; tot.Succeeded != int32(len(fl.Devices)) || tot.Rejected != 1 {
		t.Fatalf("totals %+v, want the %d simulated devices updated inside the window and the stranger's rejection", tot, len(fl.Devices))
	}
}

// TestInvalidWindowStalls: a schedule the API schema cannot check (an hour
// of 25) fails the rollout with a message naming the field, and nothing is
// published.
func TestInvalidWindowStalls(t *testing.T) {
	ns := newNamespace(t)
	root := "plant/" + ns
	startManager(t)
	simFleet(t, root, 3, "sensor", "1.0.0", devicesim.Behavior{}, nil)
	createFleet(t, ns, "fleet", root)
	ro := rollout(ns, "r", "fleet", pct(100))
	ro.Spec.MaintenanceWindows = []v1.MaintenanceWindow{{Schedule: "0 25 * * *", Duration: metav1.Duration{Duration: time.Hour}}}
	if err := k8s.Create(context.Background(), ro); err != nil {
		t.Fatal(err)
	}
	got := waitPhase(t, ns, "r", v1.PhaseFailed, 60*time.Second)
	if !strings.Contains(got.Status.Message, `maintenanceWindows[0].schedule "0 25 * * *"`) {
		t.Fatalf("message %q does not name the window", got.Status.Message)
	}
	assertNoRetainedNotices(t, root)
}
