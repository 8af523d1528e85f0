package controllers

import (
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/internal/fleet"
	"github.com/heraldiot/herald/protocol"
)

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

const uid = "uid-1"

func testRollout(waves ...v1.Wave) *v1.FirmwareRollout {
	return &v1.FirmwareRollout{
		ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: "ns", UID: types.UID(uid), Generation: 1},
		Spec: v1.FirmwareRolloutSpec{
			Firmware: v1.FirmwareSpec{Version: "2.0.0", Models: []string{"m"}},
			Strategy: v1.RolloutStrategy{Waves: waves},
		},
	}
}

func percent(p int32) v1.Wave { return v1.Wave{Percent: ptr.To(p)} }

// devicesWithCohorts makes one online device of model m, version 1.0.0,
// in each given cohort.
func devicesWithCohorts(cohorts ...int) []fleet.Device {
	var out []fleet.Device
	for i, c := range cohorts {
		out = append(out, fleet.Device{
			ID: fmt.Sprintf("d%03d", i), Model: "m", FirmwareVersion: "1.0.0", HasInventory: true,
			Online: true, SeenPresence: true, Cohort: uint8(c),
		})
	}
	return out
}

type planCase struct {
	ro      *v1.FirmwareRollout
	devices []fleet.Device
	notices map[string]fleet.NoticeRef
	budget  int
	now     time.Time
	super   bool
}

func (c planCase) run(t *testing.T) planOutput {
	t.Helper()
	topics, err := protocol.NewTopics("root")
	if err != nil {
		t.Fatal(err)
	}
	if c.notices == nil {
		c.notices = map[string]fleet.NoticeRef{}
	}
	if c.now.IsZero() {
		c.now = t0
	}
	if c.budget == 0 {
		c.budget = -1
	}
	out, err := plan(planInput{
		rollout: c.ro,
		devices: func(fn func(*fleet.Device)) {
			for i := range c.devices {
				fn(&c.devices[i])
			}
		},
		notices: c.notices, topics: topics, now: c.now, offlineGrace: time.Minute,
		supersededModels: map[string]bool{"m": c.super}, noticeBudget: c.budget,
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func published(out planOutput) []string {
	var s []string
	for _, a := range out.actions {
		if !a.withdraw {
			s = append(s, a.topic)
		}
	}
	return s
}

func withdrawn(out planOutput) []string {
	var s []string
	for _, a := range out.actions {
		if a.withdraw {
			s = append(s, a.topic)
		}
	}
	return s
}

func TestPlanFirstWaveUsesGroupNoticesByCohort(t *testing.T) {
	out := planCase{ro: testRollout(percent(10), percent(100)), devices: devicesWithCohorts(3, 3, 9, 10, 55)}.run(t)
	want := []string{"root/notices/m/03", "root/notices/m/09"}
	if got := published(out); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("published %v, want %v: one notice per group, only cohorts below 10", got, want)
	}
	if out.status.Phase != v1.PhaseProgressing || out.status.CurrentWave != 1 {
		t.Fatalf("phase %s wave %d", out.status.Phase, out.status.CurrentWave)
	}
	if w := out.status.Waves; w[0].Targeted != 3 || w[1].Targeted != 2 || w[0].StartTime == nil || w[1].StartTime != nil {
		t.Fatalf("waves %+v", w)
	}
}

func TestPlanApprovalGateHoldsWave(t *testing.T) {
	ro := testRollout(percent(10), v1.Wave{Percent: ptr.To[int32](100), RequireApproval: true})
	devs := devicesWithCohorts(1, 50)
	// Wave 1's device has finished.
	devs[0].StatusRollout, devs[0].StatusState, devs[0].StatusTime = uid, protocol.StateSucceeded, t0.Unix()
	start := metav1.NewTime(t0.Add(-time.Minute))
	ro.Status.Waves = []v1.WaveStatus{{StartTime: &start}, {}}
	notices := map[string]fleet.NoticeRef{"root/notices/m/01": {RolloutUID: uid, SeenAt: t0}}

	out := planCase{ro: ro, devices: devs, notices: notices}.run(t)
	if out.status.Phase != v1.PhaseWaitingForApproval || len(published(out)) != 0 {
		t.Fatalf("phase %s published %v: the gate must hold wave 2", out.status.Phase, published(out))
	}
	if !strings.Contains(out.status.Message, "spec.approvedWaves to 1") {
		t.Fatalf("message %q", out.status.Message)
	}

	ro.Spec.ApprovedWaves = 1
	out = planCase{ro: ro, devices: devs, notices: notices}.run(t)
	if got := published(out); len(got) != 1 || got[0] != "root/notices/m/50" {
		t.Fatalf("after approval published %v", got)
	}
}

func TestPlanLabelSelectorFallsBackToDeviceNotices(t *testing.T) {
	ro := testRollout(percent(100))
	ro.Spec.Selector = &v1.DeviceSelector{Labels: &metav1.LabelSelector{MatchLabels: map[string]string{"ring": "canary"}}}
	devs := devicesWithCohorts(7, 7, 8)
	devs[0].Labels = map[string]string{"ring": "canary"}
	devs[2].Labels = map[string]string{"ring": "canary"}
	out := planCase{ro: ro, devices: devs}.run(t)
	// Cohort 7 holds a device the selector excludes, so a group notice
	// would reach it: per-device there. Cohort 8 is clean.
	want := []string{"root/devices/d000/notice", "root/notices/m/08"}
	if got := published(out); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("published %v, want %v", got, want)
	}
	if out.status.Totals.Targeted != 2 {
		t.Fatalf("targeted %d, want 2", out.status.Totals.Targeted)
	}
}

func TestPlanMaxInProgressAndRateLimit(t *testing.T) {
	ro := testRollout(percent(100))
	ro.Spec.Strategy.MaxInProgress = 2
	out := planCase{ro: ro, devices: devicesWithCohorts(1, 1, 2, 3)}.run(t)
	// The first group goes out even though it alone fills the cap.
	if got := published(out); len(got) != 1 || got[0] != "root/notices/m/01" {
		t.Fatalf("with maxInProgress 2 published %v, want only the first group", got)
	}

	ro = testRollout(percent(100))
	out = planCase{ro: ro, devices: devicesWithCohorts(1, 2, 3), budget: 2}.run(t)
	if got := published(out); len(got) != 2 || out.requeueAfter != 5*time.Second {
		t.Fatalf("budget 2: published %v, requeue %v", got, out.requeueAfter)
	}
}

func TestPlanFailurePolicy(t *testing.T) {
	finish := func(devs []fleet.Device, n int, s protocol.State) {
		for i := range devs[:n] {
			devs[i].StatusRollout, devs[i].StatusState, devs[i].StatusTime = uid, s, t0.Unix()
		}
	}
	tests := []struct {
		name       string
		policy     v1.FailurePolicy
		failed, ok int
		want       v1.RolloutPhase
	}{
		{"below minFinished", v1.FailurePolicy{MaxFailedPercent: ptr.To[int32](10), MinFinished: 10, Action: v1.FailurePause}, 3, 2, v1.PhaseProgressing},
		{"over percent", v1.FailurePolicy{MaxFailedPercent: ptr.To[int32](10), MinFinished: 5, Action: v1.FailurePause}, 3, 7, v1.PhasePaused},
		{"at percent", v1.FailurePolicy{MaxFailedPercent: ptr.To[int32](30), Action: v1.FailurePause}, 3, 7, v1.PhaseProgressing},
		{"over count aborts", v1.FailurePolicy{MaxFailed: ptr.To[int32](2), Action: v1.FailureAbort}, 3, 0, v1.PhaseAborted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ro := testRollout(percent(100))
			ro.Spec.FailurePolicy = &tt.policy
			devs := devicesWithCohorts(make([]int, 20)...)
			finish(devs, tt.failed, protocol.StateFailed)
			finish(devs[tt.failed:], tt.ok, protocol.StateSucceeded)
			out := planCase{ro: ro, devices: devs}.run(t)
			if out.status.Phase != tt.want {
				t.Fatalf("phase %s (%s), want %s", out.status.Phase, out.status.Message, tt.want)
			}
		})
	}
}

func TestPlanWithdrawsOnlyOwnNotices(t *testing.T) {
	ro := testRollout(percent(100))
	ro.Spec.Canceled = true
	notices := map[string]fleet.NoticeRef{
		"root/notices/m/01":      {RolloutUID: uid, SeenAt: t0},
		"root/devices/d9/notice": {RolloutUID: uid, SeenAt: t0},
		"root/notices/m/02":      {RolloutUID: "someone-else"},
	}
	out := planCase{ro: ro, devices: devicesWithCohorts(1, 2), notices: notices}.run(t)
	want := []string{"root/devices/d9/notice", "root/notices/m/01"}
	if got := withdrawn(out); fmt.Sprint(got) != fmt.Sprint(want) || len(published(out)) != 0 {
		t.Fatalf("withdrew %v published %v, want %v only", got, published(out), want)
	}
	if out.status.Phase != v1.PhaseCanceled || !out.cancelNotice {
		t.Fatalf("phase %s cancelNotice %v", out.status.Phase, out.cancelNotice)
	}
}

func TestPlanSuperseded(t *testing.T) {
	notices := map[string]fleet.NoticeRef{"root/notices/m/01": {RolloutUID: uid, SeenAt: t0}}
	out := planCase{ro: testRollout(percent(100)), devices: devicesWithCohorts(1), notices: notices, super: true}.run(t)
	if out.status.Phase != v1.PhaseCanceled || len(withdrawn(out)) != 1 {
		t.Fatalf("phase %s withdrawn %v", out.status.Phase, withdrawn(out))
	}
	ready := out.status.Conditions[0]
	if ready.Type != v1.ConditionReady || ready.Reason != v1.ReasonSuperseded {
		t.Fatalf("Ready = %+v", ready)
	}
}

func TestPlanDeviceTimeoutAndAlreadyCurrent(t *testing.T) {
	ro := testRollout(percent(100))
	ro.Spec.DeviceTimeout = &metav1.Duration{Duration: time.Minute}
	devs := devicesWithCohorts(1, 1, 1)
	devs[0].StatusRollout, devs[0].StatusState, devs[0].StatusTime = uid, protocol.StateDownloading, t0.Add(-2*time.Minute).Unix()
	devs[1].StatusRollout, devs[1].StatusState, devs[1].StatusTime = uid, protocol.StateInstalling, t0.Add(-30*time.Second).Unix()
	devs[2].FirmwareVersion = "2.0.0"
	out := planCase{ro: ro, devices: devs}.run(t)
	tot := out.status.Totals
	if tot.Failed != 1 || tot.InProgress != 1 || tot.Succeeded != 1 {
		t.Fatalf("totals %+v, want 1 timed out, 1 in progress, 1 already current", tot)
	}
	if out.status.FailureSample[0].Device != "d000" || !strings.HasPrefix(out.status.FailureSample[0].Reason, "timeout") {
		t.Fatalf("sample %+v", out.status.FailureSample)
	}
	// Come back when the installing device's deadline passes, not in 30s.
	if out.requeueAfter > 32*time.Second || out.requeueAfter < 30*time.Second {
		t.Fatalf("requeue %v, want about 31s (the installing device's deadline)", out.requeueAfter)
	}
}

func TestPlanSoakBetweenWaves(t *testing.T) {
	ro := testRollout(v1.Wave{Percent: ptr.To[int32](10), PauseAfter: &metav1.Duration{Duration: 10 * time.Minute}}, percent(100))
	devs := devicesWithCohorts(1, 50)
	devs[0].StatusRollout, devs[0].StatusState, devs[0].StatusTime = uid, protocol.StateSucceeded, t0.Unix()
	started, completed := metav1.NewTime(t0.Add(-5*time.Minute)), metav1.NewTime(t0.Add(-4*time.Minute))
	ro.Status.Waves = []v1.WaveStatus{{StartTime: &started, CompletionTime: &completed}, {}}
	out := planCase{ro: ro, devices: devs, notices: map[string]fleet.NoticeRef{"root/notices/m/01": {RolloutUID: uid, SeenAt: t0}}}.run(t)
	if len(published(out)) != 0 || out.status.Waves[0].State != v1.WaveSoaking {
		t.Fatalf("during soak published %v, wave 1 %s", published(out), out.status.Waves[0].State)
	}
	if out.requeueAfter <= 0 || out.requeueAfter > 6*time.Minute {
		t.Fatalf("requeue %v, want a check no later than the soak's end in 6 minutes", out.requeueAfter)
	}
	out = planCase{ro: ro, devices: devs, now: t0.Add(6 * time.Minute), notices: map[string]fleet.NoticeRef{"root/notices/m/01": {RolloutUID: uid, SeenAt: t0}}}.run(t)
	if got := published(out); len(got) != 1 || got[0] != "root/notices/m/50" {
		t.Fatalf("after soak published %v", got)
	}
}

func TestPlanRepublishesBeforeExpiry(t *testing.T) {
	fresh := map[string]fleet.NoticeRef{"root/notices/m/01": {RolloutUID: uid, SeenAt: t0.Add(-time.Hour)}}
	if got := published(planCase{ro: testRollout(percent(100)), devices: devicesWithCohorts(1), notices: fresh}.run(t)); len(got) != 0 {
		t.Fatalf("fresh notice republished: %v", got)
	}
	old := map[string]fleet.NoticeRef{"root/notices/m/01": {RolloutUID: uid, SeenAt: t0.Add(-noticeExpiry/2 - time.Hour)}}
	if got := published(planCase{ro: testRollout(percent(100)), devices: devicesWithCohorts(1), notices: old}.run(t)); len(got) != 1 {
		t.Fatalf("notice half-way to expiry not republished: %v", got)
	}
}

// BenchmarkPlan100k measures one reconcile's planning over a 100,000-device
// fleet in the middle of a rollout.
func BenchmarkPlan100k(b *testing.B) {
	topics, _ := protocol.NewTopics("root")
	devs := make([]fleet.Device, 100_000)
	for i := range devs {
		id := fmt.Sprintf("dev-%06d", i)
		devs[i] = fleet.Device{ID: id, Model: "m", FirmwareVersion: "1.0.0", HasInventory: true, Online: true,
			SeenPresence: true, Cohort: uint8(protocol.Cohort(id))}
		if i%3 == 0 {
			devs[i].StatusRollout, devs[i].StatusState, devs[i].StatusTime = uid, protocol.StateSucceeded, t0.Unix()
		}
	}
	ro := testRollout(percent(10), percent(50), percent(100))
	notices := map[string]fleet.NoticeRef{}
	for c := range 50 {
		notices[topics.GroupNotice("m", c)] = fleet.NoticeRef{RolloutUID: uid, SeenAt: t0}
	}
	start := metav1.NewTime(t0)
	ro.Status.Waves = []v1.WaveStatus{{StartTime: &start, CompletionTime: &start}, {StartTime: &start}, {}}
	in := planInput{
		rollout: ro, notices: notices, topics: topics, now: t0, offlineGrace: time.Minute, noticeBudget: -1,
		devices: func(fn func(*fleet.Device)) {
			for i := range devs {
				fn(&devs[i])
			}
		},
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := plan(in); err != nil {
			b.Fatal(err)
		}
	}
}

// TestPlanUpdatedDevicesStayTargeted: a device this rollout updated runs the
// target version, which the version constraint excludes; it must still
// count, as a success the failure policy sees.
func TestPlanUpdatedDevicesStayTargeted(t *testing.T) {
	ro := testRollout(percent(100))
	ro.Spec.Selector = &v1.DeviceSelector{CurrentVersion: "<2.0.0"}
	ro.Spec.FailurePolicy = &v1.FailurePolicy{MaxFailedPercent: ptr.To[int32](40), Action: v1.FailurePause}
	devs := devicesWithCohorts(1, 1, 1)
	devs[0].FirmwareVersion, devs[0].StatusRollout, devs[0].StatusState = "2.0.0", uid, protocol.StateSucceeded
	devs[1].FirmwareVersion, devs[1].StatusRollout, devs[1].StatusState = "2.0.0", uid, protocol.StateSucceeded
	devs[2].StatusRollout, devs[2].StatusState = uid, protocol.StateFailed
	out := planCase{ro: ro, devices: devs}.run(t)
	if tot := out.status.Totals; tot.Targeted != 3 || tot.Succeeded != 2 || tot.Failed != 1 {
		t.Fatalf("totals %+v, want 3 targeted, 2 succeeded, 1 failed", tot)
	}
	if out.status.Phase == v1.PhasePaused {
		t.Fatalf("paused: 1 failure in 3 finished devices is within 40%%; %s", out.status.Message)
	}
}
