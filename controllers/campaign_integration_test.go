package controllers_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/internal/devicesim"
	"github.com/heraldiot/herald/mqtt"
	"github.com/heraldiot/herald/protocol"
)

// stranger is a device written from docs/protocol.md by someone else: its
// own JSON, its own MQTT session, and only what a test tells it to say.
type stranger struct {
	t       *testing.T
	id      string
	root    string
	c       *mqtt.Client
	mu      sync.Mutex
	notices []*mqtt.Message
	arrived chan struct{}
}

// newStranger connects a device of model sensor on version 1.0.0 with the
// given labels, announces it (presence, inventory) and subscribes to the
// notices that can reach it.
func newStranger(t *testing.T, root, id string, labels string) *stranger {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := &stranger{t: t, id: id, root: root, arrived: make(chan struct{}, 100)}
	dev := root + "/devices/" + id
	c, err := mqtt.Dial(ctx, mqtt.Options{
		Servers: []string{broker.URL()}, ClientID: "stranger-" + id, Version: mqtt.V311,
		Will: &mqtt.Will{Topic: dev + "/presence", Payload: []byte(`{"v":1,"state":"offline"}`), Retain: true, QoS: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	s.c = c
	t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	handler := func(m *mqtt.Message) {
		s.mu.Lock()
		s.notices = append(s.notices, m)
		s.mu.Unlock()
		s.arrived <- struct{}{}
	}
	if err := c.Subscribe(ctx, handler,
		mqtt.Subscription{Filter: dev + "/notice", QoS: 1},
		mqtt.Subscription{Filter: fmt.Sprintf("%s/notices/sensor/%02d", root, protocol.Cohort(id)), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	s.publish(dev+"/presence", `{"v":1,"state":"online"}`)
	s.publish(dev+"/inventory", fmt.Sprintf(`{"v":1,"deviceId":%q,"model":"sensor","hardwareRevision":"r1","firmwareVersion":"1.0.0","labels":{%s}}`, id, labels))
	return s
}

func (s *stranger) publish(topic, payload string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.c.Publish(ctx, &mqtt.Message{Topic: topic, Payload: []byte(payload), Retain: true, QoS: 1}); err != nil {
		s.t.Fatal(err)
	}
}

// report publishes a status on the rollout with the given UID and
// namespace/name, with the device's own clock ts.
func (s *stranger) report(uid, name, state string, ts time.Time) {
	s.t.Helper()
	reason := ""
	if state == "failed" || state == "rejected" {
		reason = `"reason":"test",`
	}
	s.publish(s.root+"/devices/"+s.id+"/status", fmt.Sprintf(
		`{"v":1,"rolloutUID":%q,"rollout":%q,"targetVersion":"2.0.0","state":%q,%s"ts":%q}`,
		uid, name, state, reason, ts.UTC().Format(time.RFC3339)))
}

// received returns the notices (and withdrawals) the device got so far.
func (s *stranger) received() []*mqtt.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.notices)
}

// awaitPayload waits until the device got n notices (nonEmpty) or n
// withdrawals (empty payloads).
func (s *stranger) awaitPayload(timeout time.Duration, n int, nonEmpty bool) {
	s.t.Helper()
	deadline := time.After(timeout)
	for {
		got := 0
		for _, m := range s.received() {
			if (len(m.Payload) > 0) == nonEmpty {
				got++
			}
		}
		if got >= n {
			return
		}
		select {
		case <-s.arrived:
		case <-deadline:
			s.t.Fatalf("device %s: %d of %d messages (notices: %v) within %v", s.id, got, n, nonEmpty, timeout)
		}
	}
}

// awaitNotice waits for a notice of any kind to arrive.
func (s *stranger) awaitNotice(timeout time.Duration) {
	s.t.Helper()
	select {
	case <-s.arrived:
	case <-time.After(timeout):
		s.t.Fatalf("device %s: no notice within %v", s.id, timeout)
	}
}

// idInCohort returns an unused device ID with the given prefix whose cohort
// is below limit.
func idInCohort(prefix string, limit int) string {
	for i := 0; ; i++ {
		if id := fmt.Sprintf("%s-%d", prefix, i); protocol.Cohort(id) < limit {
			return id
		}
	}
}

// TestLabelSelectorNeverReachesOtherDevices: a device provisioned after a
// rollout started, into a cohort with targeted devices but with labels the
// selector excludes, receives no notice; the targeted devices update.
func TestLabelSelectorNeverReachesOtherDevices(t *testing.T) {
	ns := newNamespace(t)
	root := "plant/" + ns
	startManager(t)
	beta := simFleet(t, root, 30, "sensor", "1.0.0", devicesim.Behavior{}, map[string]string{"ring": "beta"})
	createFleet(t, ns, "fleet", root)
	ro := rollout(ns, "r", "fleet", pct(100))
	ro.Spec.Selector = &v1.DeviceSelector{Labels: &metav1.LabelSelector{MatchLabels: map[string]string{"ring": "beta"}}}
	if err := k8s.Create(context.Background(), ro); err != nil {
		t.Fatal(err)
	}
	got := waitPhase(t, ns, "r", v1.PhaseSucceeded, 60*time.Second)
	if got.Status.Totals.Succeeded != int32(len(beta.Devices)) {
		t.Fatalf("totals %+v", got.Status.Totals)
	}
	// A ga device in the cohort of a beta device that was notified.
	late := newStranger(t, root, "ga-"+beta.Devices[0].ID(), `"ring":"ga"`)
	// The marker is published after the device subscribed: whatever
	// retained notice could reach it arrives before it.
	late.publish(fmt.Sprintf("%s/notices/sensor/%02d", root, protocol.Cohort(late.id)), "")
	late.awaitNotice(10 * time.Second)
	for _, m := range late.received() {
		if len(m.Payload) > 0 {
			t.Fatalf("a device the selector excludes received %s: %s", m.Topic, m.Payload)
		}
	}
}

// TestPerDeviceNoticesFollowTheBroker: under a label selector each
// targeted device has its own retained notice. Someone clears one while
// the device works on it: the operator publishes it again (a device that
// reboots mid-install finds it there). Someone copies
// one onto a device the selector excludes: the operator withdraws it.
func TestPerDeviceNoticesFollowTheBroker(t *testing.T) {
	ns := newNamespace(t)
	root := "plant/" + ns
	startManager(t)
	beta := []*stranger{newStranger(t, root, "b1", `"ring":"beta"`), newStranger(t, root, "b2", `"ring":"beta"`)}
	ga := newStranger(t, root, "g1", `"ring":"ga"`)
	createFleet(t, ns, "fleet", root)
	ro := rollout(ns, "r", "fleet", pct(100))
	ro.Spec.Selector = &v1.DeviceSelector{Labels: &metav1.LabelSelector{MatchLabels: map[string]string{"ring": "beta"}}}
	// The devices never answer: their notices must stay out.
	ro.Spec.ResponseTimeout = &metav1.Duration{Duration: time.Hour}
	if err := k8s.Create(context.Background(), ro); err != nil {
		t.Fatal(err)
	}
	for _, d := range beta {
		d.awaitPayload(30*time.Second, 1, true)
	}
	notice := beta[0].received()[0].Payload

	// b1 is at work on it when its notice goes; b2 has not answered.
	cur := getRollout(t, ns, "r")
	beta[0].report(string(cur.UID), ns+"/r", "accepted", time.Now())
	eventually(t, 30*time.Second, "b1 in progress", func() (bool, string) {
		tot := getRollout(t, ns, "r").Status.Totals
		return tot.InProgress == 1, fmt.Sprintf("totals %+v", tot)
	})
	beta[0].publish(root+"/devices/b1/notice", "")
	beta[0].awaitPayload(10*time.Second, 1, false) // the clearing itself
	beta[0].awaitPayload(30*time.Second, 2, true)

	ga.publish(root+"/devices/g1/notice", string(notice))
	ga.awaitPayload(10*time.Second, 1, true) // the copy itself
	ga.awaitPayload(30*time.Second, 1, false)
	eventually(t, 30*time.Second, "b1 at work and b2 notified", func() (bool, string) {
		tot := getRollout(t, ns, "r").Status.Totals
		return tot.Targeted == 2 && tot.InProgress == 1 && tot.Notified == 1, fmt.Sprintf("totals %+v", tot)
	})
	// Nothing else reached the excluded device.
	if got := len(ga.received()); got != 2 {
		t.Fatalf("the excluded device got %d messages, want the copy and its withdrawal", got)
	}
}

// TestSilentDeviceTimesOut: a device that a notice reaches and that never
// answers counts as failed after spec.responseTimeout, and its wave
// completes without it.
func TestSilentDeviceTimesOut(t *testing.T) {
	ns := newNamespace(t)
	root := "plant/" + ns
	startManager(t)
	fl := simFleet(t, root, 5, "sensor", "1.0.0", devicesim.Behavior{}, nil)
	silent := newStranger(t, root, "silent-1", "")
	createFleet(t, ns, "fleet", root)
	ro := rollout(ns, "r", "fleet", pct(100))
	ro.Spec.ResponseTimeout = &metav1.Duration{Duration: 3 * time.Second}
	if err := k8s.Create(context.Background(), ro); err != nil {
		t.Fatal(err)
	}
	silent.awaitNotice(30 * time.Second)
	got := waitPhase(t, ns, "r", v1.PhaseSucceeded, 60*time.Second)
	tot := got.Status.Totals
	if tot.Succeeded != int32(len(fl.Devices)) || tot.Failed != 1 || tot.TimedOut != 1 {
		t.Fatalf("totals %+v, want %d succeeded and the silent device failed by timeout", tot, len(fl.Devices))
	}
	if s := got.Status.FailureSample; len(s) != 1 || s[0].Device != "silent-1" || !strings.HasPrefix(s[0].Reason, "no answer") {
		t.Fatalf("failure sample %+v", s)
	}
}

// TestFutureDatedStatusTimesOut: a device whose clock is in the year 9999
// accepts and goes quiet; it times out on the operator's clock.
func TestFutureDatedStatusTimesOut(t *testing.T) {
	ns := newNamespace(t)
	root := "plant/" + ns
	startManager(t)
	d := newStranger(t, root, "skewed-1", "")
	createFleet(t, ns, "fleet", root)
	ro := rollout(ns, "r", "fleet", pct(100))
	ro.Spec.DeviceTimeout = &metav1.Duration{Duration: 3 * time.Second}
	if err := k8s.Create(context.Background(), ro); err != nil {
		t.Fatal(err)
	}
	d.awaitNotice(30 * time.Second)
	cur := getRollout(t, ns, "r")
	d.report(string(cur.UID), cur.Namespace+"/"+cur.Name, "accepted", time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC))
	got := waitPhase(t, ns, "r", v1.PhaseSucceeded, 60*time.Second)
	if tot := got.Status.Totals; tot.Failed != 1 || tot.TimedOut != 1 {
		t.Fatalf("totals %+v, want the skewed device timed out", tot)
	}
	if s := got.Status.FailureSample; len(s) != 1 || !strings.HasPrefix(s[0].Reason, "timeout") {
		t.Fatalf("failure sample %+v", s)
	}
}

// TestAllRejectedTripsPolicy: rejections count as failures by default, so
// a rollout every device rejects aborts instead of succeeding.
func TestAllRejectedTripsPolicy(t *testing.T) {
	ns := newNamespace(t)
	root := "plant/" + ns
	startManager(t)
	simFleet(t, root, 10, "sensor", "1.0.0", devicesim.Behavior{RejectProbability: 1}, nil)
	createFleet(t, ns, "fleet", root)
	ro := rollout(ns, "r", "fleet", pct(100))
	ro.Spec.FailurePolicy = &v1.FailurePolicy{MaxFailedPercent: ptr.To[int32](50), MinFinished: 5, Action: v1.FailureAbort}
	if err := k8s.Create(context.Background(), ro); err != nil {
		t.Fatal(err)
	}
	got := waitPhase(t, ns, "r", v1.PhaseAborted, 60*time.Second)
	if got.Status.Totals.Rejected < 5 || got.Status.Totals.Succeeded != 0 {
		t.Fatalf("totals %+v", got.Status.Totals)
	}
	if s := got.Status.FailureSample; len(s) == 0 || s[0].State != "rejected" {
		t.Fatalf("failure sample %+v, want the rejections", s)
	}
}

// TestForeignRolloutReportLeavesCountsUnchanged: a device installing this
// rollout reports on another rollout; this rollout still counts it in
// progress.
func TestForeignRolloutReportLeavesCountsUnchanged(t *testing.T) {
	ns := newNamespace(t)
	root := "plant/" + ns
	_, reg := startManagerWithMetrics(t)
	d := newStranger(t, root, "busy-1", "")
	other := newStranger(t, root, "quiet-1", "")
	createFleet(t, ns, "fleet", root)
	if err := k8s.Create(context.Background(), rollout(ns, "r", "fleet", pct(100))); err != nil {
		t.Fatal(err)
	}
	d.awaitNotice(30 * time.Second)
	other.awaitNotice(30 * time.Second)
	cur := getRollout(t, ns, "r")
	d.report(string(cur.UID), cur.Namespace+"/"+cur.Name, "installing", time.Now())
	eventually(t, 30*time.Second, "device in progress", func() (bool, string) {
		tot := getRollout(t, ns, "r").Status.Totals
		return tot.InProgress == 1 && tot.Notified == 1, fmt.Sprintf("totals %+v", tot)
	})
	before := getRollout(t, ns, "r").Status.Totals
	d.report("f00dfeed-0000-4000-8000-000000000000", "other/someone-else", "rejected", time.Now())
	// The fleet has applied the foreign report once the ack counter moved.
	eventually(t, 30*time.Second, "foreign report applied", func() (bool, string) {
		n := counterValue(t, reg, "herald_device_acks_total", map[string]string{"state": "rejected"})
		return n == 1, fmt.Sprintf("rejected acks %v", n)
	})
	// Any reconcile from now on sees it: a spec change forces one.
	patchRollout(t, cur, func(r *v1.FirmwareRollout) { r.Spec.Paused = true })
	got := waitPhase(t, ns, "r", v1.PhasePaused, 30*time.Second)
	if got.Status.Totals != before {
		t.Fatalf("totals %+v after a report on another rollout, want %+v", got.Status.Totals, before)
	}
}

// TestCancelCountsAcknowledgements: devices at work when a rollout is
// canceled acknowledge the cancel, and the canceled rollout counts them.
func TestCancelCountsAcknowledgements(t *testing.T) {
	ns := newNamespace(t)
	root := "plant/" + ns
	startManager(t)
	simFleet(t, root, 10, "sensor", "1.0.0", devicesim.Behavior{Hang: true}, nil)
	createFleet(t, ns, "fleet", root)
	ro := rollout(ns, "r", "fleet", pct(100))
	if err := k8s.Create(context.Background(), ro); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "devices at work", func() (bool, string) {
		tot := getRollout(t, ns, "r").Status.Totals
		return tot.InProgress == 10, fmt.Sprintf("totals %+v", tot)
	})
	patchRollout(t, ro, func(r *v1.FirmwareRollout) { r.Spec.Canceled = true })
	eventually(t, 60*time.Second, "cancels counted", func() (bool, string) {
		st := getRollout(t, ns, "r").Status
		return st.Phase == v1.PhaseCanceled && st.Totals.Canceled == 10 && st.Totals.InProgress == 0,
			fmt.Sprintf("phase %s totals %+v", st.Phase, st.Totals)
	})
	assertNoRetainedNotices(t, root)
	eventually(t, 30*time.Second, "withdrawal announced", func() (bool, string) {
		e := rolloutEvents(t, ns, "r")
		return len(e["NoticesWithdrawn"]) == 1, fmt.Sprint(e)
	})
}

// TestDeleteFinishedRolloutOnlyWithdraws: deleting a succeeded rollout
// clears its retained notices without telling anyone to cancel.
func TestDeleteFinishedRolloutOnlyWithdraws(t *testing.T) {
	ns := newNamespace(t)
	root := "plant/" + ns
	startManager(t)
	simFleet(t, root, 5, "sensor", "1.0.0", devicesim.Behavior{}, nil)
	watcher := newStranger(t, root, idInCohort("watcher", 100), "")
	createFleet(t, ns, "fleet", root)
	ro := rollout(ns, "r", "fleet", pct(100))
	if err := k8s.Create(context.Background(), ro); err != nil {
		t.Fatal(err)
	}
	watcher.awaitNotice(30 * time.Second)
	cur := getRollout(t, ns, "r")
	watcher.report(string(cur.UID), cur.Namespace+"/"+cur.Name, "succeeded", time.Now())
	waitPhase(t, ns, "r", v1.PhaseSucceeded, 60*time.Second)
	if err := k8s.Delete(context.Background(), ro); err != nil {
		t.Fatal(err)
	}
	// The withdrawal of the notice that reached the watcher: a cancel,
	// had one been sent, is published before it.
	for {
		watcher.awaitNotice(30 * time.Second)
		msgs := watcher.received()
		if last := msgs[len(msgs)-1]; len(last.Payload) == 0 {
			break
		}
	}
	for _, m := range watcher.received() {
		if strings.Contains(string(m.Payload), `"cancel"`) {
			t.Fatalf("deleting a finished rollout sent a cancel: %s", m.Payload)
		}
	}
	assertNoRetainedNotices(t, root)
}

// rolloutEvents returns the events recorded for a rollout, by reason.
func rolloutEvents(t *testing.T, ns, name string) map[string][]eventsv1.Event {
	t.Helper()
	var list eventsv1.EventList
	if err := k8s.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	out := map[string][]eventsv1.Event{}
	for _, e := range list.Items {
		if e.Regarding.Kind == "FirmwareRollout" && e.Regarding.Name == name {
			out[e.Reason] = append(out[e.Reason], e)
		}
	}
	return out
}

// TestRolloutEventsOncePerTransition: a two-wave rollout announces each
// wave's start and completion, and its success, once each, with counts.
func TestRolloutEventsOncePerTransition(t *testing.T) {
	ns := newNamespace(t)
	root := "plant/" + ns
	startManager(t)
	fl := simFleet(t, root, 40, "sensor", "1.0.0", devicesim.Behavior{}, nil)
	createFleet(t, ns, "fleet", root)
	if err := k8s.Create(context.Background(), rollout(ns, "r", "fleet", pct(30), pct(100))); err != nil {
		t.Fatal(err)
	}
	waitPhase(t, ns, "r", v1.PhaseSucceeded, 60*time.Second)
	want := map[string]int{"WaveStarted": 2, "WaveCompleted": 2, "RolloutProgressing": 1, v1.ReasonRolloutSucceeded: 1}
	var events map[string][]eventsv1.Event
	// Events are posted in the background, and a post the apiserver
	// refuses under load is retried after about ten seconds: on a slow
	// machine one can land well after the phase did.
	eventually(t, 90*time.Second, "events recorded", func() (bool, string) {
		events = rolloutEvents(t, ns, "r")
		for reason, n := range want {
			if len(events[reason]) != n {
				return false, fmt.Sprintf("%s: %d events, want %d", reason, len(events[reason]), n)
			}
		}
		return true, ""
	})
	for reason, list := range events {
		for _, e := range list {
			if e.Series != nil || e.DeprecatedCount > 1 {
				t.Errorf("%s recorded more than once: %q (series %+v, count %d)", reason, e.Note, e.Series, e.DeprecatedCount)
			}
			if e.Type != "Normal" {
				t.Errorf("%s is %s", reason, e.Type)
			}
		}
	}
	completed := events["WaveCompleted"]
	total := fmt.Sprintf("%d succeeded of %d devices", len(fl.Devices)-int(cohortCount(fl, 30)), len(fl.Devices)-int(cohortCount(fl, 30)))
	if !slices.ContainsFunc(completed, func(e eventsv1.Event) bool { return strings.Contains(e.Note, total) }) {
		t.Errorf("WaveCompleted notes %q, want one with %q", notes(completed), total)
	}
	if s := events[v1.ReasonRolloutSucceeded][0].Note; !strings.Contains(s, fmt.Sprintf("%d succeeded of %d targeted", len(fl.Devices), len(fl.Devices))) {
		t.Errorf("RolloutSucceeded note %q has no counts", s)
	}
}

func notes(events []eventsv1.Event) []string {
	var n []string
	for _, e := range events {
		n = append(n, e.Note)
	}
	return n
}

// counterValue sums the series of a counter whose labels include want.
func counterValue(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue metrics
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// TestDryRunThenStart: a dry run previews the waves and publishes
// nothing; clearing spec.dryRun starts the rollout.
func TestDryRunThenStart(t *testing.T) {
	ns := newNamespace(t)
	root := "plant/" + ns
	startManager(t)
	fl := simFleet(t, root, 30, "sensor", "1.0.0", devicesim.Behavior{}, nil)
	createFleet(t, ns, "fleet", root)
	ro := rollout(ns, "r", "fleet", pct(10), pct(100))
	ro.Spec.DryRun = true
	if err := k8s.Create(context.Background(), ro); err != nil {
		t.Fatal(err)
	}
	got := waitPhase(t, ns, "r", v1.PhaseDryRun, 60*time.Second)
	p := got.Status.Preview
	if p == nil || len(p.Waves) != 2 || p.Waves[0].Targeted != cohortCount(fl, 10) ||
		p.Waves[0].Targeted+p.Waves[1].Targeted != int32(len(fl.Devices)) || p.Waves[1].GroupNotices == 0 {
		t.Fatalf("preview %+v, want wave 1 = %d devices and all %d in two waves", p, cohortCount(fl, 10), len(fl.Devices))
	}
	assertNoRetainedNotices(t, root)
	for _, d := range fl.Devices {
		if v := d.FirmwareVersion(); v != "1.0.0" {
			t.Fatalf("device %s on %s during a dry run", d.ID(), v)
		}
	}
	patchRollout(t, ro, func(r *v1.FirmwareRollout) { r.Spec.DryRun = false })
	got = waitPhase(t, ns, "r", v1.PhaseSucceeded, 60*time.Second)
	if got.Status.Totals.Succeeded != int32(len(fl.Devices)) || got.Status.Preview != nil {
		t.Fatalf("totals %+v preview %+v", got.Status.Totals, got.Status.Preview)
	}
}

// TestRollbackToPreviousVersion is the rollback procedure of
// docs/operator.md: after a rollout is stopped, a new rollout of the
// previous version, selecting the devices on the bad one, takes them back.
func TestRollbackToPreviousVersion(t *testing.T) {
	ns := newNamespace(t)
	root := "plant/" + ns
	startManager(t)
	fl := simFleet(t, root, 30, "sensor", "1.0.0", devicesim.Behavior{}, nil)
	createFleet(t, ns, "fleet", root)
	bad := rollout(ns, "bad", "fleet", pct(30), v1.Wave{Percent: ptr.To[int32](100), RequireApproval: true})
	if err := k8s.Create(context.Background(), bad); err != nil {
		t.Fatal(err)
	}
	waitPhase(t, ns, "bad", v1.PhaseWaitingForApproval, 60*time.Second)
	patchRollout(t, bad, func(r *v1.FirmwareRollout) { r.Spec.Canceled = true })
	waitPhase(t, ns, "bad", v1.PhaseCanceled, 30*time.Second)
	updated := 0
	for _, d := range fl.Devices {
		if d.FirmwareVersion() == "2.0.0" {
			updated++
		}
	}
	if updated == 0 {
		t.Fatal("no device took the first wave")
	}
	// Devices order notices by creation time in whole seconds: the
	// rollback is created in a later second than the rollout it undoes,
	// as docs/operator.md asks.
	created := getRollout(t, ns, "bad").CreationTimestamp.Time
	eventually(t, 10*time.Second, "a second after the bad rollout's creation", func() (bool, string) {
		return time.Now().Truncate(time.Second).After(created), ""
	})
	back := rollout(ns, "rollback", "fleet", pct(100))
	back.Spec.Firmware.Version = "1.0.0"
	back.Spec.Firmware.URL = "https://fw.example/sensor-1.0.0.bin"
	back.Spec.Selector = &v1.DeviceSelector{CurrentVersion: "=2.0.0"}
	if err := k8s.Create(context.Background(), back); err != nil {
		t.Fatal(err)
	}
	got := waitPhase(t, ns, "rollback", v1.PhaseSucceeded, 60*time.Second)
	for _, d := range fl.Devices {
		if v := d.FirmwareVersion(); v != "1.0.0" {
			t.Errorf("device %s on %s after the rollback", d.ID(), v)
		}
	}
	// Devices still on 1.0.0 are targeted as already current; the
	// updated ones were taken back.
	if tot := got.Status.Totals; tot.Targeted != int32(len(fl.Devices)) || tot.Succeeded != tot.Targeted {
		t.Fatalf("rollback totals %+v, want all %d succeeded (%d taken back)", tot, len(fl.Devices), updated)
	}
}

// TestDeviceRateLimit: with maxDevicesPerMinute below the fleet's size, new
// notices reach no more devices than the limit allows (a minute's worth at
// once, then its refill), and the rollout keeps going as the limit refills.
func TestDeviceRateLimit(t *testing.T) {
	ns := newNamespace(t)
	root := "plant/" + ns
	startManager(t)
	fl := simFleet(t, root, 30, "sensor", "1.0.0", devicesim.Behavior{}, nil)
	createFleet(t, ns, "fleet", root)
	const perMinute = 12
	ro := rollout(ns, "r", "fleet", pct(100))
	ro.Spec.Strategy.MaxDevicesPerMinute = perMinute
	created := time.Now()
	if err := k8s.Create(context.Background(), ro); err != nil {
		t.Fatal(err)
	}
	reached := func() (int32, time.Duration) {
		tot := getRollout(t, ns, "r").Status.Totals
		return tot.Targeted - tot.Waiting, time.Since(created)
	}
	var first int32
	eventually(t, 60*time.Second, "first devices notified", func() (bool, string) {
		n, elapsed := reached()
		allowed := perMinute + int32(elapsed.Minutes()*perMinute) + 1
		if n > allowed {
			t.Fatalf("%d devices reached %v after the start; the limit allows %d", n, elapsed, allowed)
		}
		first = n
		return n > 0 && getRollout(t, ns, "r").Status.Totals.Targeted == int32(len(fl.Devices)), fmt.Sprintf("%d reached", n)
	})
	eventually(t, 60*time.Second, "more devices notified as the limit refills", func() (bool, string) {
		n, elapsed := reached()
		if allowed := perMinute + int32(elapsed.Minutes()*perMinute) + 1; n > allowed {
			t.Fatalf("%d devices reached %v after the start; the limit allows %d", n, elapsed, allowed)
		}
		return n > first && n > perMinute, fmt.Sprintf("%d reached (first %d)", n, first)
	})
}
