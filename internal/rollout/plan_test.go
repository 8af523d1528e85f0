package rollout

import (
	"fmt"
	"slices"
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

// dev is a device with its reports, by rollout UID.
type dev struct {
	fleet.Device
	reports map[string]fleet.Report
}

// devices makes one online device of model m, version 1.0.0, online since
// an hour before t0, in each given cohort.
func devices(cohorts ...int) []dev {
	var out []dev
	for i, c := range cohorts {
		out = append(out, dev{Device: fleet.Device{
			ID: fmt.Sprintf("d%03d", i), Model: "m", FirmwareVersion: "1.0.0", HasInventory: true,
			Online: true, SeenPresence: true, PresenceSince: t0.Add(-time.Hour).Unix(), Cohort: uint8(c),
		}})
	}
	return out
}

// reported gives d a report on rollout u, received at seen.
func (d *dev) reported(u string, s protocol.State, seen time.Time) {
	if d.reports == nil {
		d.reports = map[string]fleet.Report{}
	}
	d.reports[u] = fleet.Report{Rollout: u, State: s, Seen: seen.Unix(), Time: seen.Unix()}
}

func ours(topics ...string) map[string]fleet.NoticeRef {
	m := map[string]fleet.NoticeRef{}
	for _, t := range topics {
		m[t] = fleet.NoticeRef{RolloutUID: uid, SeenAt: t0}
	}
	return m
}

type planCase struct {
	ro      *v1.FirmwareRollout
	devices []dev
	notices map[string]fleet.NoticeRef
	budget  int
	// devices is the device budget; 0 means no limit.
	devBudget int
	now       time.Time
	super     bool
	snapshot  Snapshot
	// sizeHint is Input.SizeHint, the fleet's size, as the controller
	// passes it.
	sizeHint int
}

func (c planCase) run(t testing.TB) Output {
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
	if c.devBudget == 0 {
		c.devBudget = -1
	}
	return Plan(Input{
		Rollout: c.ro,
		Devices: func(u string, fn func(*fleet.Device, *fleet.Report)) {
			for i := range c.devices {
				d := &c.devices[i]
				var rep *fleet.Report
				if r, ok := d.reports[u]; ok {
					rep = &r
				}
				fn(&d.Device, rep)
			}
		},
		Notices: c.notices, Topics: topics, Now: c.now, OfflineGrace: time.Minute,
		SupersededModels: map[string]bool{"m": c.super}, NoticeBudget: c.budget, DeviceBudget: c.devBudget,
		Snapshot: c.snapshot, SizeHint: c.sizeHint,
	})
}

func published(out Output) []string {
	var s []string
	for _, a := range out.Actions {
		if !a.Withdraw {
			s = append(s, a.Topic)
		}
	}
	return s
}

func withdrawn(out Output) []string {
	var s []string
	for _, a := range out.Actions {
		if a.Withdraw {
			s = append(s, a.Topic)
		}
	}
	return s
}

func condition(st *v1.FirmwareRolloutStatus, typ string) *metav1.Condition {
	for i := range st.Conditions {
		if st.Conditions[i].Type == typ {
			return &st.Conditions[i]
		}
	}
	return nil
}

func eventReasons(out Output) []string {
	var r []string
	for _, e := range out.Events {
		r = append(r, e.Reason)
	}
	return r
}

// TestPlan runs the campaign rules as a table: each case is a rollout, a
// fleet and the broker's notices at one moment, and what the plan must
// decide. check, when set, asserts what the common fields cannot say.
func TestPlan(t *testing.T) {
	started := metav1.NewTime(t0.Add(-5 * time.Minute))
	tests := map[string]struct {
		c             planCase
		wantPhase     v1.RolloutPhase
		wantPublished []string // nil: not checked; empty: nothing
		wantWithdrawn []string
		wantTotals    *v1.DeviceTotals
		check         func(t *testing.T, out Output)
	}{
		"first wave uses one group notice per cohort": {
			c:             planCase{ro: testRollout(percent(10), percent(100)), devices: devices(3, 3, 9, 10, 55)},
			wantPhase:     v1.PhaseProgressing,
			wantPublished: []string{"root/notices/m/03", "root/notices/m/09"},
			check: func(t *testing.T, out Output) {
				if w := out.Status.Waves; w[0].Targeted != 3 || w[1].Targeted != 2 || w[0].StartTime == nil || w[1].StartTime != nil {
					t.Fatalf("waves %+v", w)
				}
				if got := eventReasons(out); !slices.Equal(got, []string{"WaveStarted", "RolloutProgressing"}) {
					t.Fatalf("events %v", got)
				}
				if !strings.Contains(out.Events[0].Message, "wave 1 of 2 started: 3 devices") {
					t.Fatalf("event %+v", out.Events[0])
				}
			},
		},
		"a label selector uses per-device notices only": {
			// A retained group notice would reach devices provisioned
			// later with other labels (issue 12 item 1).
			c: func() planCase {
				ro := testRollout(percent(100))
				ro.Spec.Selector = &v1.DeviceSelector{Labels: &metav1.LabelSelector{MatchLabels: map[string]string{"ring": "canary"}}}
				d := devices(7, 7, 8)
				d[0].Labels = map[string]string{"ring": "canary"}
				d[2].Labels = map[string]string{"ring": "canary"}
				return planCase{ro: ro, devices: d}
			}(),
			wantPhase:     v1.PhaseProgressing,
			wantPublished: []string{"root/devices/d000/notice", "root/devices/d002/notice"},
			wantTotals:    &v1.DeviceTotals{Targeted: 2, Waiting: 2},
		},
		"an empty label selector still uses group notices": {
			c: func() planCase {
				ro := testRollout(percent(100))
				ro.Spec.Selector = &v1.DeviceSelector{Labels: &metav1.LabelSelector{}}
				return planCase{ro: ro, devices: devices(7)}
			}(),
			wantPublished: []string{"root/notices/m/07"},
		},
		"a label selector withdraws an old group notice": {
			c: func() planCase {
				ro := testRollout(percent(100))
				ro.Spec.Selector = &v1.DeviceSelector{Labels: &metav1.LabelSelector{MatchLabels: map[string]string{"ring": "canary"}}}
				d := devices(7)
				d[0].Labels = map[string]string{"ring": "canary"}
				return planCase{ro: ro, devices: d, notices: ours("root/notices/m/07")}
			}(),
			wantPublished: []string{"root/devices/d000/notice"},
			wantWithdrawn: []string{"root/notices/m/07"},
		},
		"an approval gate holds the next wave": {
			c: func() planCase {
				ro := testRollout(percent(10), v1.Wave{Percent: ptr.To[int32](100), RequireApproval: true})
				ro.Status.Waves = []v1.WaveStatus{{StartTime: &started}, {}}
				d := devices(1, 50)
				d[0].reported(uid, protocol.StateSucceeded, t0)
				return planCase{ro: ro, devices: d, notices: ours("root/notices/m/01")}
			}(),
			wantPhase:     v1.PhaseWaitingForApproval,
			wantPublished: []string{},
			check: func(t *testing.T, out Output) {
				if !strings.Contains(out.Status.Message, "spec.approvedWaves to 1") {
					t.Fatalf("message %q", out.Status.Message)
				}
				if got := eventReasons(out); !slices.Equal(got, []string{"WaveCompleted", v1.ReasonWaitingForApproval}) {
					t.Fatalf("events %v", got)
				}
				if !strings.Contains(out.Events[0].Message, "wave 1 of 2 completed: 1 succeeded of 1 devices") {
					t.Fatalf("event %+v", out.Events[0])
				}
			},
		},
		"approval starts the gated wave": {
			c: func() planCase {
				ro := testRollout(percent(10), v1.Wave{Percent: ptr.To[int32](100), RequireApproval: true})
				ro.Spec.ApprovedWaves = 1
				ro.Status.Waves = []v1.WaveStatus{{StartTime: &started}, {}}
				d := devices(1, 50)
				d[0].reported(uid, protocol.StateSucceeded, t0)
				return planCase{ro: ro, devices: d, notices: ours("root/notices/m/01")}
			}(),
			wantPhase:     v1.PhaseProgressing,
			wantPublished: []string{"root/notices/m/50"},
		},
		"maxInProgress lets the first group out alone": {
			c: func() planCase {
				ro := testRollout(percent(100))
				ro.Spec.Strategy.MaxInProgress = 2
				return planCase{ro: ro, devices: devices(1, 1, 2, 3)}
			}(),
			wantPublished: []string{"root/notices/m/01"},
		},
		"the rate limit cuts the list and comes back": {
			c:             planCase{ro: testRollout(percent(100)), devices: devices(1, 2, 3), budget: 2},
			wantPublished: []string{"root/notices/m/01", "root/notices/m/02"},
			check: func(t *testing.T, out Output) {
				if out.RequeueAfter != rateLimitRetry {
					t.Fatalf("requeue %v", out.RequeueAfter)
				}
			},
		},
		"the device rate sends a large group device by device": {
			c:             planCase{ro: testRollout(percent(100)), devices: devices(1, 1, 1, 1, 1, 2), devBudget: 2},
			wantPublished: []string{"root/devices/d000/notice", "root/devices/d001/notice"},
			check: func(t *testing.T, out Output) {
				if out.RequeueAfter != rateLimitRetry {
					t.Fatalf("requeue %v, want %v: devices were held back", out.RequeueAfter, rateLimitRetry)
				}
				for _, a := range out.Actions {
					if a.Devices != 1 {
						t.Fatalf("action %+v reaches %d new devices, want 1", a, a.Devices)
					}
				}
			},
		},
		"a group within the device rate goes as one": {
			c:             planCase{ro: testRollout(percent(100)), devices: devices(1, 1, 1, 2), devBudget: 3},
			wantPublished: []string{"root/notices/m/01"},
			check: func(t *testing.T, out Output) {
				if len(out.Actions) != 1 || out.Actions[0].Devices != 3 {
					t.Fatalf("actions %+v, want one group notice reaching 3 devices", out.Actions)
				}
			},
		},
		"cancel withdraws only our notices, cancel first": {
			c: func() planCase {
				ro := testRollout(percent(100))
				ro.Spec.Canceled = true
				n := ours("root/notices/m/01", "root/devices/d9/notice")
				n["root/notices/m/02"] = fleet.NoticeRef{RolloutUID: "someone-else"}
				return planCase{ro: ro, devices: devices(1, 2), notices: n}
			}(),
			wantPhase:     v1.PhaseCanceled,
			wantPublished: []string{},
			wantWithdrawn: []string{"root/devices/d9/notice", "root/notices/m/01"},
			check: func(t *testing.T, out Output) {
				if !out.CancelNotice || !out.WithdrawAll {
					t.Fatalf("cancelNotice %v withdrawAll %v", out.CancelNotice, out.WithdrawAll)
				}
			},
		},
		"a canceled rollout counts the cancels devices report": {
			c: func() planCase {
				ro := testRollout(percent(100))
				ro.Spec.Canceled = true
				ro.Status.Phase = v1.PhaseCanceled
				ro.Status.Waves = []v1.WaveStatus{{StartTime: &started, State: v1.WaveProgressing}}
				d := devices(1, 1, 1)
				d[0].reported(uid, protocol.StateCanceled, t0)
				d[1].reported(uid, protocol.StateSucceeded, t0) // finished its install after the cancel
				d[2].reported(uid, protocol.StateInstalling, t0)
				return planCase{ro: ro, devices: d}
			}(),
			wantPhase:     v1.PhaseCanceled,
			wantPublished: []string{},
			wantTotals:    &v1.DeviceTotals{Targeted: 3, Canceled: 1, Succeeded: 1, InProgress: 1},
			check: func(t *testing.T, out Output) {
				if len(out.Events) != 0 {
					t.Fatalf("events %v: the end was announced when it happened", out.Events)
				}
				if c := condition(&out.Status, v1.ConditionFinished); c == nil || c.Status != metav1.ConditionTrue {
					t.Fatalf("Finished = %+v", c)
				}
			},
		},
		"superseded": {
			c:             planCase{ro: testRollout(percent(100)), devices: devices(1), notices: ours("root/notices/m/01"), super: true},
			wantPhase:     v1.PhaseCanceled,
			wantWithdrawn: []string{"root/notices/m/01"},
			check: func(t *testing.T, out Output) {
				if c := condition(&out.Status, v1.ConditionReady); c.Reason != v1.ReasonSuperseded || c.Status != metav1.ConditionTrue {
					t.Fatalf("Ready = %+v", c)
				}
				if out.CancelNotice {
					t.Fatal("a superseded rollout's devices move to the newer notice; no cancel")
				}
			},
		},
		"device timeout runs on the operator's clock": {
			c: func() planCase {
				ro := testRollout(percent(100))
				ro.Spec.DeviceTimeout = &metav1.Duration{Duration: time.Minute}
				d := devices(1, 1, 1, 1)
				d[0].reported(uid, protocol.StateDownloading, t0.Add(-2*time.Minute))
				d[1].reported(uid, protocol.StateInstalling, t0.Add(-30*time.Second))
				d[2].FirmwareVersion = "2.0.0"
				// A device whose clock is in year 9999: its ts is ignored.
				d[3].reported(uid, protocol.StateDownloading, t0.Add(-2*time.Minute))
				r := d[3].reports[uid]
				r.Time = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
				d[3].reports[uid] = r
				return planCase{ro: ro, devices: d, notices: ours("root/notices/m/01")}
			}(),
			wantTotals: &v1.DeviceTotals{Targeted: 4, Failed: 2, TimedOut: 2, InProgress: 1, Succeeded: 1},
			check: func(t *testing.T, out Output) {
				if s := out.Status.FailureSample; len(s) != 2 || !strings.HasPrefix(s[0].Reason, "timeout") {
					t.Fatalf("sample %+v", s)
				}
				// Back when the installing device's deadline passes.
				if out.RequeueAfter > 32*time.Second || out.RequeueAfter < 30*time.Second {
					t.Fatalf("requeue %v, want about 31s", out.RequeueAfter)
				}
			},
		},
		"a silent device times out and the wave completes": {
			c: func() planCase {
				ro := testRollout(percent(10), percent(100))
				ro.Spec.ResponseTimeout = &metav1.Duration{Duration: 5 * time.Minute}
				ro.Status.Waves = []v1.WaveStatus{{StartTime: &started}, {}}
				d := devices(1, 1, 50)
				d[0].reported(uid, protocol.StateSucceeded, t0)
				n := ours("root/notices/m/01")
				n["root/notices/m/01"] = fleet.NoticeRef{RolloutUID: uid, SeenAt: t0.Add(-6 * time.Minute)}
				return planCase{ro: ro, devices: d, notices: n}
			}(),
			wantPhase:     v1.PhaseProgressing,
			wantPublished: []string{"root/notices/m/50"},
			check: func(t *testing.T, out Output) {
				tot := out.Status.Totals
				if tot.Failed != 1 || tot.TimedOut != 1 || out.Status.Waves[0].State != v1.WaveCompleted {
					t.Fatalf("totals %+v wave 1 %s", tot, out.Status.Waves[0].State)
				}
				if s := out.Status.FailureSample; len(s) != 1 || s[0].Device != "d001" || !strings.HasPrefix(s[0].Reason, "no answer") {
					t.Fatalf("sample %+v", s)
				}
			},
		},
		"a silent device's clock starts when it comes online": {
			c: func() planCase {
				ro := testRollout(percent(100))
				ro.Spec.ResponseTimeout = &metav1.Duration{Duration: 5 * time.Minute}
				d := devices(1, 1)
				d[0].PresenceSince = t0.Add(-280 * time.Second).Unix() // came online 4m40s ago
				d[1].Online, d[1].PresenceSince = false, t0.Add(-time.Hour).Unix()
				n := ours("root/notices/m/01")
				n["root/notices/m/01"] = fleet.NoticeRef{RolloutUID: uid, SeenAt: t0.Add(-time.Hour)}
				return planCase{ro: ro, devices: d, notices: n}
			}(),
			wantTotals: &v1.DeviceTotals{Targeted: 2, Notified: 2, Offline: 1},
			check: func(t *testing.T, out Output) {
				if out.RequeueAfter != 21*time.Second {
					t.Fatalf("requeue %v, want 21s (the online device's response deadline)", out.RequeueAfter)
				}
			},
		},
		"skipped devices stop holding their wave": {
			c: func() planCase {
				ro := testRollout(percent(100))
				ro.Spec.SkipDevices = []string{"d001", "d002"}
				d := devices(1, 1, 1)
				d[0].reported(uid, protocol.StateSucceeded, t0)
				d[2].reported(uid, protocol.StateFailed, t0) // finished: keeps its outcome
				return planCase{ro: ro, devices: d, notices: ours("root/notices/m/01")}
			}(),
			wantPhase:  v1.PhaseSucceeded,
			wantTotals: &v1.DeviceTotals{Targeted: 3, Succeeded: 1, Failed: 1, Skipped: 1},
		},
		"a report on another rollout changes nothing here": {
			c: func() planCase {
				d := devices(1, 1)
				d[0].reported(uid, protocol.StateInstalling, t0)
				d[0].reported("other", protocol.StateRejected, t0)
				return planCase{ro: testRollout(percent(100)), devices: d, notices: ours("root/notices/m/01")}
			}(),
			wantTotals: &v1.DeviceTotals{Targeted: 2, InProgress: 1, Notified: 1},
		},
		"the soak holds the next wave": {
			c: func() planCase {
				ro := testRollout(v1.Wave{Percent: ptr.To[int32](10), PauseAfter: &metav1.Duration{Duration: 10 * time.Minute}}, percent(100))
				completed := metav1.NewTime(t0.Add(-10*time.Minute + 10*time.Second))
				ro.Status.Waves = []v1.WaveStatus{{StartTime: &started, CompletionTime: &completed}, {}}
				d := devices(1, 50)
				d[0].reported(uid, protocol.StateSucceeded, t0)
				return planCase{ro: ro, devices: d, notices: ours("root/notices/m/01")}
			}(),
			wantPhase:     v1.PhaseProgressing,
			wantPublished: []string{},
			check: func(t *testing.T, out Output) {
				if out.Status.Waves[0].State != v1.WaveSoaking || out.RequeueAfter != 10*time.Second {
					t.Fatalf("wave 1 %s, requeue %v", out.Status.Waves[0].State, out.RequeueAfter)
				}
			},
		},
		"the next wave starts after the soak": {
			c: func() planCase {
				ro := testRollout(v1.Wave{Percent: ptr.To[int32](10), PauseAfter: &metav1.Duration{Duration: 10 * time.Minute}}, percent(100))
				completed := metav1.NewTime(t0.Add(-4 * time.Minute))
				ro.Status.Waves = []v1.WaveStatus{{StartTime: &started, CompletionTime: &completed}, {}}
				d := devices(1, 50)
				d[0].reported(uid, protocol.StateSucceeded, t0)
				return planCase{ro: ro, devices: d, notices: ours("root/notices/m/01"), now: t0.Add(6 * time.Minute)}
			}(),
			wantPublished: []string{"root/notices/m/50"},
		},
		"notices are republished half-way to expiry": {
			c: planCase{ro: testRollout(percent(100)), devices: devices(1), notices: map[string]fleet.NoticeRef{
				"root/notices/m/01": {RolloutUID: uid, SeenAt: t0.Add(-NoticeExpiry/2 - time.Hour)}}},
			wantPublished: []string{"root/notices/m/01"},
		},
		"fresh notices are not republished": {
			c: planCase{ro: testRollout(percent(100)), devices: devices(1), notices: map[string]fleet.NoticeRef{
				"root/notices/m/01": {RolloutUID: uid, SeenAt: t0.Add(-time.Hour)}}},
			wantPublished: []string{},
		},
		"devices this rollout updated stay targeted": {
			// They run the target version, which the constraint excludes;
			// they must still count, as successes the policy sees.
			c: func() planCase {
				ro := testRollout(percent(100))
				ro.Spec.Selector = &v1.DeviceSelector{CurrentVersion: "<2.0.0"}
				ro.Spec.FailurePolicy = &v1.FailurePolicy{MaxFailedPercent: ptr.To[int32](40), Action: v1.FailurePause}
				d := devices(1, 1, 1)
				d[0].FirmwareVersion = "2.0.0"
				d[0].reported(uid, protocol.StateSucceeded, t0)
				d[1].FirmwareVersion = "2.0.0"
				d[1].reported(uid, protocol.StateSucceeded, t0)
				d[2].reported(uid, protocol.StateFailed, t0)
				return planCase{ro: ro, devices: d}
			}(),
			wantPhase:  v1.PhaseSucceeded,
			wantTotals: &v1.DeviceTotals{Targeted: 3, Succeeded: 2, Failed: 1},
		},
		"an invalid constraint fails the rollout": {
			c: func() planCase {
				ro := testRollout(percent(100))
				ro.Spec.Selector = &v1.DeviceSelector{CurrentVersion: ">=banana"}
				return planCase{ro: ro, devices: devices(1)}
			}(),
			wantPhase:     v1.PhaseFailed,
			wantPublished: []string{},
			check: func(t *testing.T, out Output) {
				if c := condition(&out.Status, v1.ConditionStalled); c == nil || c.Status != metav1.ConditionTrue {
					t.Fatalf("Stalled = %+v", c)
				}
			},
		},
		"a dry run publishes nothing and previews each wave": {
			c: func() planCase {
				ro := testRollout(percent(10), percent(100))
				ro.Spec.DryRun = true
				return planCase{ro: ro, devices: devices(3, 3, 9, 10, 55)}
			}(),
			wantPhase:     v1.PhaseDryRun,
			wantPublished: []string{},
			wantTotals:    &v1.DeviceTotals{Targeted: 5, Waiting: 5},
			check: func(t *testing.T, out Output) {
				p := out.Status.Preview
				want := []v1.PreviewWave{
					{Targeted: 3, GroupNotices: 2, Sample: []string{"d000", "d001", "d002"}},
					{Targeted: 2, GroupNotices: 2, Sample: []string{"d003", "d004"}},
				}
				if p == nil || fmt.Sprint(p.Waves) != fmt.Sprint(want) {
					t.Fatalf("preview %+v, want %+v", p, want)
				}
				if out.Status.Waves[0].StartTime != nil {
					t.Fatal("a dry run started a wave")
				}
				if c := condition(&out.Status, v1.ConditionReady); c.Status != metav1.ConditionTrue || c.Reason != v1.ReasonDryRun {
					t.Fatalf("Ready = %+v", c)
				}
			},
		},
		"a dry run on a started rollout pauses it": {
			c: func() planCase {
				ro := testRollout(percent(10), percent(100))
				ro.Spec.DryRun = true
				ro.Status.Waves = []v1.WaveStatus{{StartTime: &started}, {}}
				d := devices(1, 50)
				d[0].reported(uid, protocol.StateSucceeded, t0)
				return planCase{ro: ro, devices: d, notices: ours("root/notices/m/01")}
			}(),
			wantPhase:     v1.PhasePaused,
			wantPublished: []string{},
		},
		"a scheduled start holds the first wave": {
			c: func() planCase {
				ro := testRollout(percent(100))
				at := metav1.NewTime(t0.Add(10 * time.Second))
				ro.Spec.Schedule = &v1.Schedule{StartTime: &at}
				return planCase{ro: ro, devices: devices(1)}
			}(),
			wantPhase:     v1.PhasePending,
			wantPublished: []string{},
			check: func(t *testing.T, out Output) {
				if out.RequeueAfter != 10*time.Second || !strings.Contains(out.Status.Message, "scheduled to start at") {
					t.Fatalf("requeue %v message %q", out.RequeueAfter, out.Status.Message)
				}
				if c := condition(&out.Status, v1.ConditionReady); c.Reason != v1.ReasonScheduled {
					t.Fatalf("Ready = %+v", c)
				}
			},
		},
		"the scheduled start passed": {
			c: func() planCase {
				ro := testRollout(percent(100))
				at := metav1.NewTime(t0.Add(-time.Second))
				ro.Spec.Schedule = &v1.Schedule{StartTime: &at}
				return planCase{ro: ro, devices: devices(1)}
			}(),
			wantPhase:     v1.PhaseProgressing,
			wantPublished: []string{"root/notices/m/01"},
		},
		"the schedule's end withdraws without a cancel": {
			c: func() planCase {
				ro := testRollout(percent(100))
				end := metav1.NewTime(t0)
				ro.Spec.Schedule = &v1.Schedule{EndTime: &end}
				ro.Status.Waves = []v1.WaveStatus{{StartTime: &started}}
				d := devices(1, 1)
				d[0].reported(uid, protocol.StateInstalling, t0)
				return planCase{ro: ro, devices: d, notices: ours("root/notices/m/01")}
			}(),
			wantPhase:     v1.PhaseCanceled,
			wantWithdrawn: []string{"root/notices/m/01"},
			check: func(t *testing.T, out Output) {
				if out.CancelNotice {
					t.Fatal("devices at work must finish: no cancel notice")
				}
				if c := condition(&out.Status, v1.ConditionReady); c.Reason != v1.ReasonScheduleEnded {
					t.Fatalf("Ready = %+v", c)
				}
			},
		},
		"a succeeded rollout keeps its result": {
			c: func() planCase {
				ro := testRollout(percent(100))
				ro.Status.Phase, ro.Status.Message = v1.PhaseSucceeded, "done"
				d := devices(1)
				d[0].reported(uid, protocol.StateFailed, t0)
				return planCase{ro: ro, devices: d}
			}(),
			wantPhase:     v1.PhaseSucceeded,
			wantPublished: []string{},
			wantTotals:    &v1.DeviceTotals{},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			out := tt.c.run(t)
			if tt.wantPhase != "" && out.Status.Phase != tt.wantPhase {
				t.Errorf("phase %s (%s), want %s", out.Status.Phase, out.Status.Message, tt.wantPhase)
			}
			if tt.wantPublished != nil && !slices.Equal(published(out), tt.wantPublished) && (len(tt.wantPublished) > 0 || len(published(out)) > 0) {
				t.Errorf("published %v, want %v", published(out), tt.wantPublished)
			}
			if tt.wantWithdrawn != nil && !slices.Equal(withdrawn(out), tt.wantWithdrawn) {
				t.Errorf("withdrew %v, want %v", withdrawn(out), tt.wantWithdrawn)
			}
			if tt.wantTotals != nil && out.Status.Totals != *tt.wantTotals {
				t.Errorf("totals %+v, want %+v", out.Status.Totals, *tt.wantTotals)
			}
			if tt.check != nil && !t.Failed() {
				tt.check(t, out)
			}
		})
	}
}

// TestPlanFailurePolicy: the policy's arithmetic, rejections included
// unless the policy says to ignore them.
func TestPlanFailurePolicy(t *testing.T) {
	pct := func(p int32) *int32 { return &p }
	tests := map[string]struct {
		policy               v1.FailurePolicy
		failed, rejected, ok int
		want                 v1.RolloutPhase
	}{
		"below minFinished":        {v1.FailurePolicy{MaxFailedPercent: pct(10), MinFinished: 10, Action: v1.FailurePause}, 3, 0, 2, v1.PhaseProgressing},
		"over percent":             {v1.FailurePolicy{MaxFailedPercent: pct(10), MinFinished: 5, Action: v1.FailurePause}, 3, 0, 7, v1.PhasePaused},
		"at percent":               {v1.FailurePolicy{MaxFailedPercent: pct(30), Action: v1.FailurePause}, 3, 0, 7, v1.PhaseProgressing},
		"over count aborts":        {v1.FailurePolicy{MaxFailed: pct(2), Action: v1.FailureAbort}, 3, 0, 0, v1.PhaseAborted},
		"all rejected trips":       {v1.FailurePolicy{MaxFailedPercent: pct(50), Action: v1.FailureAbort}, 0, 20, 0, v1.PhaseAborted},
		"rejections count":         {v1.FailurePolicy{MaxFailed: pct(2), Action: v1.FailurePause}, 1, 2, 5, v1.PhasePaused},
		"rejections ignored":       {v1.FailurePolicy{MaxFailed: pct(2), Action: v1.FailurePause, Rejections: v1.RejectionsIgnore}, 1, 2, 5, v1.PhaseProgressing},
		"ignored, all rejected ok": {v1.FailurePolicy{MaxFailedPercent: pct(50), Action: v1.FailureAbort, Rejections: v1.RejectionsIgnore}, 0, 20, 0, v1.PhaseSucceeded},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			ro := testRollout(percent(100))
			ro.Spec.FailurePolicy = &tt.policy
			d := devices(make([]int, 20)...)
			i := 0
			for range tt.failed {
				d[i].reported(uid, protocol.StateFailed, t0)
				i++
			}
			for range tt.rejected {
				d[i].reported(uid, protocol.StateRejected, t0)
				i++
			}
			for range tt.ok {
				d[i].reported(uid, protocol.StateSucceeded, t0)
				i++
			}
			// The rest have not answered yet (a fresh notice).
			out := planCase{ro: ro, devices: d, notices: ours("root/notices/m/00")}.run(t)
			if out.Status.Phase != tt.want {
				t.Fatalf("phase %s (%s), want %s", out.Status.Phase, out.Status.Message, tt.want)
			}
			if tt.rejected > 0 && len(out.Status.FailureSample) == 0 {
				t.Fatal("rejections missing from the failure sample")
			}
		})
	}
}

func TestDeviceRate(t *testing.T) {
	ramp := &v1.Ramp{StartPerMinute: 10, Factor: 3, SuccessesPerStep: 20}
	tests := []struct {
		limit     int32
		ramp      *v1.Ramp
		succeeded int
		want      int
	}{
		{0, nil, 500, 0},
		{100, nil, 0, 100},
		{0, ramp, 0, 10},
		{0, ramp, 19, 10},
		{0, ramp, 20, 30},
		{0, ramp, 45, 90},
		{200, ramp, 60, 200},
		{200, ramp, 1 << 30, 200},
	}
	for _, tt := range tests {
		s := &v1.RolloutStrategy{MaxDevicesPerMinute: tt.limit, Ramp: tt.ramp}
		if got := DeviceRate(s, tt.succeeded); got != tt.want {
			t.Errorf("DeviceRate(limit %d, %d succeeded) = %d, want %d", tt.limit, tt.succeeded, got, tt.want)
		}
	}
	// Without a limit the ramp stops growing long before it overflows.
	if got := DeviceRate(&v1.RolloutStrategy{Ramp: ramp}, 1<<30); got < 1<<40 || got > 1<<45 {
		t.Errorf("unlimited ramp after 2^30 successes = %d", got)
	}
}

// TestPlanEventsOncePerTransition: planning again from the status a plan
// produced announces nothing new.
func TestPlanEventsOncePerTransition(t *testing.T) {
	ro := testRollout(percent(10), percent(100))
	d := devices(1, 50)
	c := planCase{ro: ro, devices: d}
	out := c.run(t)
	if len(out.Events) == 0 {
		t.Fatal("no events for the first wave's start")
	}
	ro.Status = out.Status
	c.notices = ours("root/notices/m/01")
	if again := c.run(t); len(again.Events) != 0 {
		t.Fatalf("events on a plan without transitions: %+v", again.Events)
	}
}

// BenchmarkPlan100k measures one reconcile's planning over a 100,000-device
// fleet in the middle of a rollout.
func BenchmarkPlan100k(b *testing.B) {
	topics, _ := protocol.NewTopics("root")
	devs := make([]dev, 100_000)
	for i := range devs {
		id := fmt.Sprintf("dev-%06d", i)
		devs[i] = dev{Device: fleet.Device{ID: id, Model: "m", FirmwareVersion: "1.0.0", HasInventory: true, Online: true,
			SeenPresence: true, Cohort: uint8(protocol.Cohort(id))}}
		if i%3 == 0 {
			devs[i].reported(uid, protocol.StateSucceeded, t0)
		}
	}
	ro := testRollout(percent(10), percent(50), percent(100))
	notices := map[string]fleet.NoticeRef{}
	for c := range 50 {
		notices[topics.GroupNotice("m", c)] = fleet.NoticeRef{RolloutUID: uid, SeenAt: t0}
	}
	start := metav1.NewTime(t0)
	ro.Status.Waves = []v1.WaveStatus{{StartTime: &start, CompletionTime: &start}, {StartTime: &start}, {}}
	// The controller passes the fleet's size, as here: without it the
	// targets grow by appending, which allocates about five times over.
	c := planCase{ro: ro, devices: devs, notices: notices, sizeHint: len(devs)}
	b.ReportAllocs()
	for b.Loop() {
		c.run(b)
	}
}
