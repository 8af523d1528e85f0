package rollout

import (
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/internal/fleet"
	"github.com/heraldiot/herald/protocol"
)

// failedOn gives d a failed report on attempt n, received at seen.
func (d *dev) failedOn(n int, reason string, seen time.Time) {
	d.reported(uid, protocol.StateFailed, seen)
	r := d.reports[uid]
	r.Reason, r.Attempt = reason, uint8(n)
	d.reports[uid] = r
}

func startedRollout(waves ...v1.Wave) *v1.FirmwareRollout {
	ro := testRollout(waves...)
	started := metav1.NewTime(t0.Add(-time.Hour))
	ro.Status = v1.FirmwareRolloutStatus{Phase: v1.PhaseProgressing, StartTime: &started,
		Waves: []v1.WaveStatus{{State: v1.WaveProgressing, StartTime: &started}}}
	return ro
}

func action(out Output, topic string) (Action, bool) {
	for _, a := range out.Actions {
		if a.Topic == topic {
			return a, true
		}
	}
	return Action{}, false
}

// TestPlanRetries: a failed device with a retry left for its failure
// class is notified again, with the next attempt, once the backoff has
// passed; until it answers that attempt it is neither failed nor done.
func TestPlanRetries(t *testing.T) {
	const own = "root/devices/d000/notice"
	group := "root/notices/m/00"
	policy := func(p v1.RetryPolicy) *v1.FirmwareRollout {
		ro := startedRollout(percent(100))
		ro.Spec.RetryPolicy = &p
		return ro
	}
	fiveMin := &metav1.Duration{Duration: 5 * time.Minute}
	tests := map[string]struct {
		c           planCase
		wantAttempt int // the attempt published on own; 0: nothing published there
		wantTotals  v1.DeviceTotals
		wantPhase   v1.RolloutPhase
	}{
		"download failure retried after the backoff": {
			c: func() planCase {
				d := devices(0)
				d[0].failedOn(1, protocol.ReasonDownloadFailed, t0.Add(-10*time.Minute))
				return planCase{ro: policy(v1.RetryPolicy{Download: 2, Backoff: fiveMin}), devices: d, notices: ours(group)}
			}(),
			wantAttempt: 2,
			wantTotals:  v1.DeviceTotals{Targeted: 1, Retrying: 1},
			wantPhase:   v1.PhaseProgressing,
		},
		"not before the backoff": {
			c: func() planCase {
				d := devices(0)
				d[0].failedOn(1, protocol.ReasonDownloadFailed, t0.Add(-time.Minute))
				return planCase{ro: policy(v1.RetryPolicy{Download: 2, Backoff: fiveMin}), devices: d, notices: ours(group)}
			}(),
			wantTotals: v1.DeviceTotals{Targeted: 1, Retrying: 1},
			wantPhase:  v1.PhaseProgressing,
		},
		"the backoff doubles: the second retry waits 10m": {
			c: func() planCase {
				d := devices(0)
				d[0].failedOn(2, protocol.ReasonInstallFailed, t0.Add(-7*time.Minute))
				return planCase{ro: policy(v1.RetryPolicy{Install: 3, Backoff: fiveMin}), devices: d,
					notices: map[string]fleet.NoticeRef{group: {RolloutUID: uid, SeenAt: t0}, own: {RolloutUID: uid, SeenAt: t0, Attempt: 2}}}
			}(),
			wantTotals: v1.DeviceTotals{Targeted: 1, Retrying: 1, Retries: 1},
			wantPhase:  v1.PhaseProgressing,
		},
		"a retry notice the device has not answered: notified, not failed": {
			c: func() planCase {
				d := devices(0)
				d[0].failedOn(1, protocol.ReasonDownloadFailed, t0.Add(-10*time.Minute))
				return planCase{ro: policy(v1.RetryPolicy{Download: 2, Backoff: fiveMin}), devices: d,
					notices: map[string]fleet.NoticeRef{group: {RolloutUID: uid, SeenAt: t0}, own: {RolloutUID: uid, SeenAt: t0, Attempt: 2}}}
			}(),
			wantTotals: v1.DeviceTotals{Targeted: 1, Notified: 1, Retries: 1},
			wantPhase:  v1.PhaseProgressing,
		},
		"retries exhausted: failed for good": {
			c: func() planCase {
				d := devices(0)
				d[0].failedOn(3, protocol.ReasonDownloadFailed, t0.Add(-time.Hour))
				return planCase{ro: policy(v1.RetryPolicy{Download: 2, Backoff: fiveMin}), devices: d,
					notices: map[string]fleet.NoticeRef{group: {RolloutUID: uid, SeenAt: t0}, own: {RolloutUID: uid, SeenAt: t0, Attempt: 3}}}
			}(),
			wantAttempt: 0,
			wantTotals:  v1.DeviceTotals{Targeted: 1, Failed: 1, Retries: 2, RetriesExhausted: 1},
			wantPhase:   v1.PhaseSucceeded,
		},
		"a reason outside every class is never retried": {
			c: func() planCase {
				d := devices(0)
				d[0].failedOn(1, protocol.ReasonSignatureInvalid, t0.Add(-time.Hour))
				return planCase{ro: policy(v1.RetryPolicy{Download: 5, Install: 5, Timeout: 5, Rejection: 5}), devices: d, notices: ours(group)}
			}(),
			wantTotals: v1.DeviceTotals{Targeted: 1, Failed: 1},
			wantPhase:  v1.PhaseSucceeded,
		},
		"rejections are not retried unless asked": {
			c: func() planCase {
				d := devices(0)
				d[0].reported(uid, protocol.StateRejected, t0.Add(-time.Hour))
				return planCase{ro: policy(v1.RetryPolicy{Download: 5}), devices: d, notices: ours(group)}
			}(),
			wantTotals: v1.DeviceTotals{Targeted: 1, Rejected: 1},
			wantPhase:  v1.PhaseSucceeded,
		},
		"a rejection retried when asked": {
			c: func() planCase {
				d := devices(0)
				d[0].reported(uid, protocol.StateRejected, t0.Add(-time.Hour))
				return planCase{ro: policy(v1.RetryPolicy{Rejection: 1}), devices: d, notices: ours(group)}
			}(),
			wantAttempt: 2,
			wantTotals:  v1.DeviceTotals{Targeted: 1, Retrying: 1},
			wantPhase:   v1.PhaseProgressing,
		},
		"a silent device is retried for its timeout": {
			c: func() planCase {
				ro := policy(v1.RetryPolicy{Timeout: 1, Backoff: fiveMin})
				ro.Spec.ResponseTimeout = &metav1.Duration{Duration: 10 * time.Minute}
				return planCase{ro: ro, devices: devices(0),
					notices: map[string]fleet.NoticeRef{group: {RolloutUID: uid, SeenAt: t0.Add(-time.Hour)}}}
			}(),
			wantAttempt: 2,
			wantTotals:  v1.DeviceTotals{Targeted: 1, Retrying: 1},
			wantPhase:   v1.PhaseProgressing,
		},
		"without a policy a failure is final": {
			c: func() planCase {
				d := devices(0)
				d[0].failedOn(1, protocol.ReasonDownloadFailed, t0.Add(-time.Hour))
				return planCase{ro: startedRollout(percent(100)), devices: d, notices: ours(group)}
			}(),
			wantTotals: v1.DeviceTotals{Targeted: 1, Failed: 1},
			wantPhase:  v1.PhaseSucceeded,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			out := tc.c.run(t)
			a, ok := action(out, own)
			switch {
			case tc.wantAttempt == 0 && ok && !a.Withdraw:
				t.Errorf("published %+v on the device's topic, want nothing", a)
			case tc.wantAttempt > 0 && (!ok || a.Withdraw || a.Attempt != tc.wantAttempt || a.Devices != 1):
				t.Errorf("device topic action %+v (found %v), want attempt %d reaching 1 device", a, ok, tc.wantAttempt)
			}
			got := out.Status.Totals
			got.Offline = 0
			if got != tc.wantTotals {
				t.Errorf("totals %+v, want %+v", got, tc.wantTotals)
			}
			if out.Status.Phase != tc.wantPhase {
				t.Errorf("phase %s (%s), want %s", out.Status.Phase, out.Status.Message, tc.wantPhase)
			}
		})
	}
}

// A device waiting for its retry is no failure: the failure policy waits
// for its last attempt.
func TestRetryingIsNotAFailure(t *testing.T) {
	d := devices(0, 0)
	d[0].failedOn(1, protocol.ReasonDownloadFailed, t0.Add(-time.Minute))
	ro := startedRollout(percent(100))
	ro.Spec.RetryPolicy = &v1.RetryPolicy{Download: 1, Backoff: &metav1.Duration{Duration: time.Hour}}
	ro.Spec.FailurePolicy = &v1.FailurePolicy{MaxFailed: ptr.To[int32](0), Action: v1.FailureAbort}
	out := planCase{ro: ro, devices: d, notices: ours("root/notices/m/00")}.run(t)
	if out.Status.Phase != v1.PhaseProgressing {
		t.Fatalf("phase %s (%s), want Progressing while the retry waits", out.Status.Phase, out.Status.Message)
	}
	if out.RequeueAfter > 30*time.Second || out.RequeueAfter <= 0 {
		t.Fatalf("requeue after %v", out.RequeueAfter)
	}
	// The same failure with no retry left trips the policy.
	ro.Spec.RetryPolicy = nil
	out = planCase{ro: ro, devices: d, notices: ours("root/notices/m/00")}.run(t)
	if out.Status.Phase != v1.PhaseAborted {
		t.Fatalf("without retries: phase %s, want Aborted", out.Status.Phase)
	}
}

func TestRetryDelay(t *testing.T) {
	r := compileRetries(&v1.RetryPolicy{Backoff: &metav1.Duration{Duration: time.Minute}, MaxBackoff: &metav1.Duration{Duration: 5 * time.Minute}})
	var got []time.Duration
	for n := range 5 {
		got = append(got, r.delay(n))
	}
	want := []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 5 * time.Minute, 5 * time.Minute}
	if !slices.Equal(got, want) {
		t.Fatalf("delays %v, want %v", got, want)
	}
	if d := compileRetries(&v1.RetryPolicy{}).delay(100); d != DefaultRetryMaxBackoff {
		t.Fatalf("defaults: delay(100) = %v", d)
	}
}

// TestPlanSnapshot: with Snapshot targeting the target set is frozen when
// the first wave starts, and from then on membership alone decides.
func TestPlanSnapshot(t *testing.T) {
	snapshotRollout := func() *v1.FirmwareRollout {
		ro := testRollout(percent(100))
		ro.Spec.Targeting = v1.TargetingSnapshot
		return ro
	}
	t.Run("the start asks for the snapshot first", func(t *testing.T) {
		d := devices(5, 1, 9)
		d[2].Model = "other"
		out := planCase{ro: snapshotRollout(), devices: d}.run(t)
		if want := (Snapshot{"d000", "d001"}); !slices.Equal(out.TakeSnapshot, want) {
			t.Fatalf("TakeSnapshot %v, want %v", out.TakeSnapshot, want)
		}
		if len(out.Actions) != 0 || out.Status.CurrentWave != 0 || len(out.Events) != 0 {
			t.Fatalf("a plan asking for the snapshot acted: %+v", out)
		}
	})
	t.Run("only snapshot members, device by device", func(t *testing.T) {
		d := devices(5, 1, 9)
		d[1].Labels = map[string]string{"ring": "late"}
		ro := snapshotRollout()
		ro.Spec.Selector = &v1.DeviceSelector{Labels: &metav1.LabelSelector{MatchLabels: map[string]string{"ring": "early"}}}
		out := planCase{ro: ro, devices: d, snapshot: Snapshot{"d000", "d001"}}.run(t)
		if out.TakeSnapshot != nil {
			t.Fatal("asked for a snapshot again")
		}
		if got, want := published(out), []string{"root/devices/d000/notice", "root/devices/d001/notice"}; !slices.Equal(got, want) {
			t.Fatalf("published %v, want %v (members only, labels no longer asked)", got, want)
		}
		if out.Status.Totals.Targeted != 2 {
			t.Fatalf("targeted %d, want 2", out.Status.Totals.Targeted)
		}
	})
	t.Run("a dry run takes no snapshot", func(t *testing.T) {
		ro := snapshotRollout()
		ro.Spec.DryRun = true
		if out := (planCase{ro: ro, devices: devices(1)}).run(t); out.TakeSnapshot != nil || out.Status.Phase != v1.PhaseDryRun {
			t.Fatalf("dry run: TakeSnapshot %v, phase %s", out.TakeSnapshot, out.Status.Phase)
		}
	})
	t.Run("dynamic targeting takes none", func(t *testing.T) {
		if out := (planCase{ro: testRollout(percent(100)), devices: devices(1)}).run(t); out.TakeSnapshot != nil {
			t.Fatal("a dynamic rollout asked for a snapshot")
		}
	})
}

func TestSnapshotHas(t *testing.T) {
	s := Snapshot{"a", "b", "d"}
	for id, want := range map[string]bool{"a": true, "b": true, "c": false, "d": true, "": false, "e": false} {
		if s.Has(id) != want {
			t.Errorf("Has(%q) = %v", id, !want)
		}
	}
}

// TestPlanMaintenanceWindows: waves start and new notices go out only
// inside a window, and the device timeout counts only window time. The
// window is 02:00-06:00 UTC; t0 is 12:00.
func TestPlanMaintenanceWindows(t *testing.T) {
	nightly := []v1.MaintenanceWindow{{Schedule: "0 2 * * *", Duration: metav1.Duration{Duration: 4 * time.Hour}}}
	day := func(h, m int) time.Time { return time.Date(2026, 11, 23, h, m, 0, 0, time.UTC) }

	t.Run("outside: the first wave waits and says until when", func(t *testing.T) {
		ro := testRollout(percent(100))
		ro.Spec.MaintenanceWindows = nightly
		out := planCase{ro: ro, devices: devices(1, 2)}.run(t)
		if out.Status.Phase != v1.PhasePending || len(out.Actions) != 0 || out.Status.CurrentWave != 0 {
			t.Fatalf("phase %s, actions %v, wave %d", out.Status.Phase, out.Actions, out.Status.CurrentWave)
		}
		if c := condition(&out.Status, v1.ConditionReconciling); c == nil || c.Reason != v1.ReasonOutsideMaintenanceWindow {
			t.Fatalf("Reconciling %+v", c)
		}
		if want := "2026-11-23T02:00:00Z"; !strings.Contains(out.Status.Message, want) {
			t.Fatalf("message %q does not say the window opens at %s", out.Status.Message, want)
		}
	})
	t.Run("inside: it starts", func(t *testing.T) {
		ro := testRollout(percent(100))
		ro.Spec.MaintenanceWindows = nightly
		out := planCase{ro: ro, devices: devices(1, 2), now: day(3, 0)}.run(t)
		if out.Status.Phase != v1.PhaseProgressing || len(published(out)) != 2 {
			t.Fatalf("phase %s, published %v", out.Status.Phase, published(out))
		}
	})
	t.Run("a started wave sends nothing new outside, keeps what is out", func(t *testing.T) {
		ro := startedRollout(percent(100))
		ro.Spec.MaintenanceWindows = nightly
		ro.Spec.Selector = &v1.DeviceSelector{Labels: &metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}}}
		d := devices(1, 2)
		d[0].Labels, d[1].Labels = map[string]string{"a": "b"}, map[string]string{"a": "b"}
		notices := ours("root/devices/d000/notice")
		n := notices["root/devices/d000/notice"]
		n.Windows = protocol.WindowsKey(NoticeWindows(ro))
		notices["root/devices/d000/notice"] = n
		out := planCase{ro: ro, devices: d, notices: notices}.run(t)
		if len(out.Actions) != 0 {
			t.Fatalf("actions %+v outside the window, want none (d001 waits, d000 keeps its notice)", out.Actions)
		}
		// Windows changed in the spec: the notice out goes again, with
		// the new ones, window or not.
		n.Windows = "0 1 * * *|3600|;"
		notices["root/devices/d000/notice"] = n
		out = planCase{ro: ro, devices: d, notices: notices}.run(t)
		if got := published(out); !slices.Equal(got, []string{"root/devices/d000/notice"}) {
			t.Fatalf("published %v after the windows changed, want d000's notice again", got)
		}
	})
	t.Run("the device timeout counts window time only", func(t *testing.T) {
		ro := startedRollout(percent(100))
		ro.Spec.MaintenanceWindows = nightly
		ro.Spec.DeviceTimeout = &metav1.Duration{Duration: time.Hour}
		d := devices(1)
		// Accepted at 05:30: 30 minutes of window left tonight, the other
		// 30 from 02:00 tomorrow.
		d[0].reported(uid, protocol.StateAccepted, day(5, 30))
		for _, tc := range []struct {
			now      time.Time
			timedOut bool
		}{{day(12, 0), false}, {day(23, 59), false}, {day(2, 29).Add(24 * time.Hour), false},
			{day(2, 30).Add(24 * time.Hour), true}} {
			out := planCase{ro: ro, devices: d, now: tc.now, notices: ours("root/notices/m/01")}.run(t)
			if got := out.Status.Totals.TimedOut == 1; got != tc.timedOut {
				t.Errorf("at %v: timed out %v, want %v (%+v)", tc.now, got, tc.timedOut, out.Status.Totals)
			}
		}
	})
	t.Run("an invalid schedule fails the rollout", func(t *testing.T) {
		ro := testRollout(percent(100))
		ro.Spec.MaintenanceWindows = []v1.MaintenanceWindow{{Schedule: "0 25 * * *", Duration: metav1.Duration{Duration: time.Hour}}}
		out := planCase{ro: ro, devices: devices(1)}.run(t)
		if out.Status.Phase != v1.PhaseFailed || !strings.Contains(out.Status.Message, "maintenanceWindows[0].schedule") {
			t.Fatalf("phase %s message %q", out.Status.Phase, out.Status.Message)
		}
	})
}

// Found in review: what retries must not do.
func TestRetryEdges(t *testing.T) {
	const own = "root/devices/d000/notice"
	fiveMin := &metav1.Duration{Duration: 5 * time.Minute}
	labelled := func() (*v1.FirmwareRollout, []dev) {
		ro := startedRollout(percent(100))
		ro.Spec.Selector = &v1.DeviceSelector{Labels: &metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}}}
		ro.Spec.RetryPolicy = &v1.RetryPolicy{Timeout: 2, Download: 2, Backoff: fiveMin}
		d := devices(0, 0)
		d[0].Labels, d[1].Labels = map[string]string{"a": "b"}, map[string]string{"a": "b"}
		return ro, d
	}
	t.Run("a due retry that the cap blocks keeps the notice out, then goes", func(t *testing.T) {
		ro, d := labelled()
		ro.Spec.Strategy.MaxInProgress = 1
		ro.Spec.ResponseTimeout = &metav1.Duration{Duration: 10 * time.Minute}
		d[1].reported(uid, protocol.StateDownloading, t0.Add(-time.Minute)) // holds the one slot
		notices := map[string]fleet.NoticeRef{own: {RolloutUID: uid, SeenAt: t0.Add(-time.Hour)},
			"root/devices/d001/notice": {RolloutUID: uid, SeenAt: t0.Add(-time.Hour)}}
		out := planCase{ro: ro, devices: d, notices: notices}.run(t)
		if len(out.Actions) != 0 {
			t.Fatalf("actions %+v: the blocked retry must leave attempt 1 where it is", out.Actions)
		}
		if got := out.Status.Totals; got.Retrying != 1 {
			t.Fatalf("totals %+v, want d000 retrying", got)
		}
		d[1].reported(uid, protocol.StateSucceeded, t0)
		out = planCase{ro: ro, devices: d, notices: notices}.run(t)
		if a, ok := action(out, own); !ok || a.Attempt != 2 {
			t.Fatalf("actions %+v, want attempt 2 for d000 once the slot is free", out.Actions)
		}
	})
	t.Run("success on an attempt while the next is out counts as success", func(t *testing.T) {
		ro, d := labelled()
		d[0].reported(uid, protocol.StateSucceeded, t0.Add(-time.Minute))
		d[0].FirmwareVersion = "2.0.0"
		notices := map[string]fleet.NoticeRef{own: {RolloutUID: uid, SeenAt: t0.Add(-time.Hour), Attempt: 2}}
		out := planCase{ro: ro, devices: d[:1], notices: notices, now: t0.Add(time.Hour)}.run(t)
		if got := out.Status.Totals; got.Succeeded != 1 || got.Failed != 0 || got.Notified != 0 {
			t.Fatalf("totals %+v, want the success counted", got)
		}
	})
	t.Run("skipDevices stops retries and withdraws the retry notice", func(t *testing.T) {
		ro, d := labelled()
		ro.Spec.SkipDevices = []string{"d000"}
		d[0].failedOn(1, protocol.ReasonDownloadFailed, t0.Add(-time.Hour))
		notices := map[string]fleet.NoticeRef{own: {RolloutUID: uid, SeenAt: t0.Add(-time.Hour), Attempt: 2}}
		out := planCase{ro: ro, devices: d[:1], notices: notices}.run(t)
		if got := withdrawn(out); !slices.Equal(got, []string{own}) {
			t.Fatalf("withdrawn %v, want the retry notice", got)
		}
		if got := out.Status.Totals; got.Failed != 1 || got.Retrying != 0 || got.Notified != 0 {
			t.Fatalf("totals %+v, want d000 failed for good", got)
		}
	})
	t.Run("paused: no retry goes out", func(t *testing.T) {
		ro, d := labelled()
		ro.Spec.Paused = true
		d[0].failedOn(1, protocol.ReasonDownloadFailed, t0.Add(-time.Hour))
		out := planCase{ro: ro, devices: d[:1], notices: ours(own)}.run(t)
		if got := published(out); len(got) != 0 {
			t.Fatalf("published %v while paused", got)
		}
	})
	t.Run("an attempt no notice offered is not believed", func(t *testing.T) {
		ro := startedRollout(percent(100))
		d := devices(0)
		d[0].failedOn(7, protocol.ReasonInstallFailed, t0.Add(-time.Hour))
		out := planCase{ro: ro, devices: d, notices: ours("root/notices/m/00")}.run(t)
		if got := out.Status.Totals; got.Retries != 0 || got.Failed != 1 {
			t.Fatalf("totals %+v, want no retries counted", got)
		}
		if len(withdrawn(out)) != 0 {
			t.Fatalf("withdrew %v", withdrawn(out))
		}
	})
	t.Run("a canceled rollout counts no one as retrying and keeps its retry count", func(t *testing.T) {
		ro, d := labelled()
		ro.Status.Phase = v1.PhaseCanceled
		ro.Status.Totals.Retries = 1
		d[0].failedOn(1, protocol.ReasonDownloadFailed, t0.Add(-time.Hour))
		out := planCase{ro: ro, devices: d[:1]}.run(t)
		if got := out.Status.Totals; got.Retrying != 0 || got.Failed != 1 || got.Retries != 1 {
			t.Fatalf("totals %+v, want failed, not retrying, and the retry counted", got)
		}
	})
}

// A dry run previews what each wave will publish, whatever the window
// says now.
func TestPreviewIgnoresTheWindowNow(t *testing.T) {
	ro := testRollout(percent(100))
	ro.Spec.DryRun = true
	ro.Spec.MaintenanceWindows = []v1.MaintenanceWindow{{Schedule: "0 2 * * *", Duration: metav1.Duration{Duration: time.Hour}}}
	out := planCase{ro: ro, devices: devices(1, 2)}.run(t)
	p := out.Status.Preview
	if p == nil || p.Waves[0].GroupNotices != 2 {
		t.Fatalf("preview %+v, want 2 group notices for the wave", p)
	}
}
