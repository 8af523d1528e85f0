package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/internal/view"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// golden compares got with testdata/name.golden, or rewrites the file
// with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the output (go test -update rewrites it); got:\n%s", path, got)
	}
}

// now is the fixed clock of the golden views.
var now = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

func at(d time.Duration) *metav1.Time { return &metav1.Time{Time: now.Add(-d)} }

func cond(typ string, status metav1.ConditionStatus, reason, msg string, since time.Duration) metav1.Condition {
	return metav1.Condition{Type: typ, Status: status, Reason: reason, Message: msg, LastTransitionTime: *at(since)}
}

// rolloutFixture is a three-wave rollout of 300 devices whose second wave
// is running; the tests change its status to each situation.
func rolloutFixture() *v1.FirmwareRollout {
	return &v1.FirmwareRollout{
		ObjectMeta: metav1.ObjectMeta{Namespace: "factory-7", Name: "sensor-2.1.0", UID: "6f1c2a3e-9b4d-4e8a-a1f2-3c4d5e6f7a8b"},
		Spec: v1.FirmwareRolloutSpec{
			FleetRef: corev1.LocalObjectReference{Name: "sensors"},
			Firmware: v1.FirmwareSpec{Version: "2.1.0", Models: []string{"sensor-a", "sensor-b"}},
			Strategy: v1.RolloutStrategy{Waves: []v1.Wave{
				{Percent: ptr.To[int32](10), PauseAfter: &metav1.Duration{Duration: 30 * time.Minute}},
				{Percent: ptr.To[int32](50), RequireApproval: true},
				{Percent: ptr.To[int32](100), RequireApproval: true},
			}},
			ApprovedWaves: 1,
			SkipDevices:   []string{"sensor-0099"},
		},
		Status: v1.FirmwareRolloutStatus{
			Phase:       v1.PhaseProgressing,
			Message:     "wave 2 of 3 progressing: 42 of 120 devices finished",
			CurrentWave: 2,
			Progress:    "68/300",
			StartTime:   at(75 * time.Minute),
			Waves: []v1.WaveStatus{
				{State: v1.WaveCompleted, Targeted: 30, Notified: 30, Succeeded: 27, Failed: 2, Rejected: 1, StartTime: at(75 * time.Minute), CompletionTime: at(50 * time.Minute)},
				{State: v1.WaveProgressing, Targeted: 120, Notified: 90, Succeeded: 41, Failed: 0, Rejected: 0, Skipped: 1, StartTime: at(15 * time.Minute)},
				{State: v1.WavePending, Targeted: 150},
			},
			Totals: v1.DeviceTotals{
				Targeted: 300, Waiting: 180, Notified: 12, InProgress: 36, Succeeded: 68, Failed: 2, TimedOut: 1, Rejected: 1, Skipped: 1, Offline: 3,
			},
			FailureSample: []v1.DeviceFailure{
				{Device: "sensor-0007", State: "failed", Reason: "no answer: 10m0s after the notice", Time: *at(55 * time.Minute)},
				{Device: "sensor-0012", State: "rejected", Reason: "low-battery", Time: *at(60 * time.Minute)},
				{Device: "sensor-0003", State: "failed", Reason: "checksum-mismatch", Time: *at(70 * time.Minute)},
			},
			Conditions: []metav1.Condition{
				cond(v1.ConditionReady, metav1.ConditionFalse, v1.ReasonWaveProgressing, "wave 2 of 3 progressing", 15*time.Minute),
				cond(v1.ConditionReconciling, metav1.ConditionTrue, v1.ReasonWaveProgressing, "wave 2 of 3 progressing", 15*time.Minute),
				cond(v1.ConditionProgressing, metav1.ConditionTrue, v1.ReasonWaveProgressing, "wave 2 of 3 progressing", 15*time.Minute),
				cond(v1.ConditionDegraded, metav1.ConditionFalse, v1.ReasonWithinPolicy, "3 of 71 finished devices failed (4.2%), within 5%", 50*time.Minute),
			},
		},
	}
}

func event(name, typ, reason, note string, ago time.Duration) eventsv1.Event {
	return eventsv1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		EventTime:  metav1.MicroTime{Time: now.Add(-ago)},
		Type:       typ, Reason: reason, Note: note,
	}
}

func rolloutEvents() []eventsv1.Event {
	evs := []eventsv1.Event{
		event("e3", "Normal", "WaveStarted", "wave 2 of 3 started: 120 devices", 15*time.Minute),
		event("e1", "Normal", "WaveStarted", "wave 1 of 3 started: 30 devices", 75*time.Minute),
		event("e2", "Normal", "WaveCompleted", "wave 1 of 3 completed: 27 succeeded, 2 failed, 1 rejected of 30 devices", 50*time.Minute),
	}
	series := event("e4", "Warning", "MalformedStatus", "a device sent\ta status\nthat does not parse", 20*time.Minute)
	series.Series = &eventsv1.EventSeries{Count: 4, LastObservedTime: metav1.MicroTime{Time: now.Add(-2 * time.Minute)}}
	return append(evs, series)
}

func TestRenderRolloutGolden(t *testing.T) {
	tests := map[string]func() view.RolloutView{
		"rollout_progressing": func() view.RolloutView {
			return view.RolloutView{Rollout: rolloutFixture(), Events: rolloutEvents(), Now: now}
		},
		"rollout_watching": func() view.RolloutView {
			// Watched for 5 minutes, during which 20 devices succeeded
			// and 25 finished.
			ro := rolloutFixture()
			base := view.SampleOf(ro, now.Add(-5*time.Minute))
			base.Succeeded -= 20
			base.Finished -= 25
			return view.RolloutView{Rollout: ro, Events: rolloutEvents(), Now: now, Baseline: &base}
		},
		"rollout_approval": func() view.RolloutView {
			ro := rolloutFixture()
			ro.Spec.ApprovedWaves = 0
			ro.Status.Phase = v1.PhaseWaitingForApproval
			ro.Status.Message = "wave 2 of 3 waits for approval: raise spec.approvedWaves to 1"
			ro.Status.CurrentWave = 1
			ro.Status.Waves[1] = v1.WaveStatus{State: v1.WaveWaitingForApproval, Targeted: 120}
			ro.Status.Conditions = ro.Status.Conditions[:1]
			ro.Status.Conditions[0].Reason = v1.ReasonWaitingForApproval
			return view.RolloutView{Rollout: ro, EventsErr: "cannot list events: forbidden; ask for list and watch on events.k8s.io events", Now: now}
		},
		"rollout_policy_paused": func() view.RolloutView {
			ro := rolloutFixture()
			ro.Status.Phase = v1.PhasePaused
			ro.Status.Message = "failure policy tripped: 9 of 80 finished devices failed (11.2%), more than 5%"
			ro.Status.Conditions[3] = cond(v1.ConditionDegraded, metav1.ConditionTrue, v1.ReasonFailureThreshold, ro.Status.Message, 3*time.Minute)
			return view.RolloutView{Rollout: ro, Now: now}
		},
		"rollout_soaking": func() view.RolloutView {
			ro := rolloutFixture()
			ro.Status.CurrentWave = 1
			ro.Status.Waves[0].State = v1.WaveSoaking
			ro.Status.Waves[0].CompletionTime = at(10 * time.Minute)
			ro.Status.Waves[1] = v1.WaveStatus{State: v1.WavePending, Targeted: 120}
			return view.RolloutView{Rollout: ro, Now: now}
		},
		"rollout_succeeded": func() view.RolloutView {
			ro := rolloutFixture()
			ro.Spec.ApprovedWaves = 2
			ro.Spec.SkipDevices = nil
			ro.Status.Phase = v1.PhaseSucceeded
			ro.Status.Message = "297 succeeded, 2 failed, 1 rejected of 300 devices"
			ro.Status.CurrentWave = 3
			ro.Status.CompletionTime = at(0)
			for i := range ro.Status.Waves {
				w := &ro.Status.Waves[i]
				w.State, w.Notified = v1.WaveCompleted, w.Targeted
				w.Succeeded = w.Targeted - w.Failed - w.Rejected
				w.Skipped = 0
			}
			ro.Status.Totals = v1.DeviceTotals{Targeted: 300, Succeeded: 297, Failed: 2, TimedOut: 1, Rejected: 1}
			ro.Status.Conditions = []metav1.Condition{
				cond(v1.ConditionReady, metav1.ConditionTrue, v1.ReasonRolloutSucceeded, "all waves completed", 0),
				cond(v1.ConditionFinished, metav1.ConditionTrue, v1.ReasonRolloutSucceeded, "all waves completed", 0),
			}
			return view.RolloutView{Rollout: ro, Now: now}
		},
		"rollout_new": func() view.RolloutView {
			ro := rolloutFixture()
			ro.Status = v1.FirmwareRolloutStatus{}
			ro.Spec.Schedule = &v1.Schedule{StartTime: &metav1.Time{Time: now.Add(2 * time.Hour)}}
			ro.Status.Phase = v1.PhasePending
			return view.RolloutView{Rollout: ro, Now: now}
		},
	}
	for name, input := range tests {
		t.Run(name, func(t *testing.T) {
			golden(t, name, view.RenderRollout(input()))
		})
	}
}

func fleetFixture() *v1.DeviceFleet {
	return &v1.DeviceFleet{
		ObjectMeta: metav1.ObjectMeta{Namespace: "factory-7", Name: "sensors"},
		Spec: v1.DeviceFleetSpec{
			Broker:    v1.BrokerSpec{URLs: []string{"tls://mqtt-0.iot.example:8883", "tls://mqtt-1.iot.example:8883"}},
			TopicRoot: "factory-7/sensors",
		},
		Status: v1.DeviceFleetStatus{
			Devices: v1.DeviceCounts{Known: 300, Online: 297, Offline: 3},
			FirmwareVersions: []v1.ValueCount{
				{Value: "2.0.3", Count: 220}, {Value: "2.1.0", Count: 68}, {Value: "1.9.9", Count: 11},
			},
			Models:            []v1.ValueCount{{Value: "sensor-a", Count: 200}, {Value: "sensor-b", Count: 100}},
			MalformedMessages: 4,
			ResyncRepairs:     1,
			LastSyncTime:      at(3 * time.Minute),
			Conditions: []metav1.Condition{
				cond(v1.ConditionReady, metav1.ConditionTrue, v1.ReasonSynced, "300 devices, 297 online", 2*time.Hour),
				cond(v1.ConditionBrokerConnected, metav1.ConditionTrue, v1.ReasonConnected, "connected to tls://mqtt-0.iot.example:8883", 2*time.Hour),
				cond(v1.ConditionDeviceLimitReached, metav1.ConditionFalse, v1.ReasonWithinDeviceLimit, "300 of at most 250000 devices", 2*time.Hour),
			},
		},
	}
}

func TestRenderFleetGolden(t *testing.T) {
	golden(t, "fleet", view.RenderFleet(fleetFixture(), now))
	empty := fleetFixture()
	empty.Spec.Broker.ProtocolVersion = v1.ProtocolV311
	empty.Status = v1.DeviceFleetStatus{}
	golden(t, "fleet_new", view.RenderFleet(empty, now))
}

// TestScreenPiped checks that a watch into a pipe prints one block per
// change, separated by blank lines, and nothing for a view that did not
// change.
func TestScreenPiped(t *testing.T) {
	var out bytes.Buffer
	s := &screen{w: &out}
	for _, v := range []string{"one\n", "one\n", "two\n"} {
		if err := s.draw(v); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := out.String(), "one\n\ntwo\n"; got != want {
		t.Errorf("piped watch wrote %q, want %q", got, want)
	}
}

// TestScreenTerminal checks the in-place redraw: every view starts at the
// cursor's home, every line erases what an earlier, longer view left, and
// the screen below the view is erased.
func TestScreenTerminal(t *testing.T) {
	var out bytes.Buffer
	s := &screen{w: &out, terminal: true}
	_ = s.draw("a long first line\nsecond\n")
	out.Reset()
	_ = s.draw("short\n")
	if got, want := out.String(), "\x1b[Hshort\x1b[K\n\x1b[J"; got != want {
		t.Errorf("redraw wrote %q, want %q", got, want)
	}
}

// TestRenderRolloutWithoutEvents: a rollout without events says so.
func TestRenderRolloutWithoutEvents(t *testing.T) {
	if !strings.Contains(view.RenderRollout(view.RolloutView{Rollout: rolloutFixture(), Now: now}), "Events: <none>") {
		t.Error("a rollout without events does not say so")
	}
}
