package rollout

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/internal/fleet"
	"github.com/heraldiot/herald/protocol"
)

// TestTrackerDecidesLikePlan runs random histories of a small fleet (devices
// coming and going, changing model, version and labels, going offline,
// reporting every state on every attempt and on other rollouts, time
// passing deadlines, graces and notice expiry, the operator's clock
// stepping back, notices cleared by someone else, status writes lost, the
// fleet re-synced, newer rollouts taking
// models over, the spec approved, paused, dry-run, skipping devices,
// ending on schedule, canceled) through
// one Tracker that follows the fleet state, and checks after every step
// that it decides exactly what Plan decides from scratch, and holds the
// same targets. The rollouts vary over percent and count waves, label
// selectors, version constraints, caps, rates, retries, failure policies,
// maintenance windows and Snapshot targeting.
func TestTrackerDecidesLikePlan(t *testing.T) {
	seeds := 60
	if testing.Short() {
		seeds = 15
	}
	for seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			h := newHistory(t, uint64(seed))
			incremental := 0
			for step := range 250 {
				h.step()
				if h.plan(step) {
					incremental++
				}
			}
			// The point is the incremental path: a tracker that walked
			// the fleet every time would pass the comparison trivially.
			if incremental < 150 {
				t.Fatalf("only %d of 250 plans were incremental", incremental)
			}
		})
	}
}

// history is a rollout and its fleet, moved forward at random.
type history struct {
	t      *testing.T
	rng    *rand.Rand
	topics protocol.Topics
	state  *fleet.State
	ro     *v1.FirmwareRollout
	now    time.Time
	ids    []string
	tr     Tracker
	// snapshot is the frozen target set once a Snapshot rollout took it.
	snapshot Snapshot
	budget   int
	// grace and superseded are the plan's inputs from the fleet and the
	// rollout's newer siblings.
	grace      time.Duration
	superseded map[string]bool
	// skipWrite loses the next status write, as a conflict does: the
	// next plan starts from the status before. losePublish loses the
	// next plan's publishes, as a broker that went away does.
	skipWrite, losePublish bool
	// retained is what the broker holds, by topic, for a re-sync.
	retained map[string][]byte
}

func newHistory(t *testing.T, seed uint64) *history {
	topics, err := protocol.NewTopics("root")
	if err != nil {
		t.Fatal(err)
	}
	h := &history{t: t, rng: rand.New(rand.NewPCG(seed, 7)), topics: topics, state: fleet.NewState(fleet.Limits{}), now: t0,
		grace: time.Minute, superseded: map[string]bool{}, retained: map[string][]byte{}}
	if seed%2 == 0 {
		for i := range 40 {
			h.ids = append(h.ids, fmt.Sprintf("dev-%02d", i))
		}
	} else {
		// Crowded groups: six cohorts, two in each percent wave, so
		// that devices share group notices and queues.
		crowded := map[int]bool{5: true, 15: true, 30: true, 50: true, 70: true, 90: true}
		for i := 0; len(h.ids) < 40; i++ {
			if id := fmt.Sprintf("dev-%d", i); crowded[protocol.Cohort(id)] {
				h.ids = append(h.ids, id)
			}
		}
	}
	h.ro = h.randomRollout()
	for _, id := range h.ids {
		if h.rng.IntN(5) > 0 {
			h.inventory(id)
			h.presence(id, h.rng.IntN(4) > 0)
		}
	}
	return h
}

func (h *history) randomRollout() *v1.FirmwareRollout {
	r := h.rng
	var waves []v1.Wave
	if r.IntN(2) == 0 {
		waves = []v1.Wave{percent(20), percent(60), percent(100)}
	} else {
		waves = []v1.Wave{{Count: ptr.To[int32](3)}, {Count: ptr.To[int32](12)}, {Count: ptr.To[int32](30)}}
	}
	if r.IntN(2) == 0 {
		waves[1].RequireApproval = true
	}
	if r.IntN(3) == 0 {
		waves[0].PauseAfter = &metav1.Duration{Duration: 2 * time.Minute}
	}
	ro := testRollout(waves...)
	ro.Spec.Firmware.Models = []string{"m", "n"}
	spec := &ro.Spec
	spec.DeviceTimeout = &metav1.Duration{Duration: 5 * time.Minute}
	spec.ResponseTimeout = &metav1.Duration{Duration: 3 * time.Minute}
	if r.IntN(3) == 0 {
		spec.Selector = &v1.DeviceSelector{Labels: &metav1.LabelSelector{MatchLabels: map[string]string{"site": "a"}}}
	}
	if r.IntN(3) == 0 {
		if spec.Selector == nil {
			spec.Selector = &v1.DeviceSelector{}
		}
		spec.Selector.CurrentVersion = "<2.0.0"
	}
	if r.IntN(2) == 0 {
		spec.Strategy.MaxInProgress = int32(r.IntN(8) + 1)
	}
	if r.IntN(2) == 0 {
		spec.RetryPolicy = &v1.RetryPolicy{Download: 2, Install: 1, Timeout: 1, Rejection: int32(r.IntN(2)),
			Backoff: &metav1.Duration{Duration: time.Minute}}
	}
	if r.IntN(2) == 0 {
		spec.FailurePolicy = &v1.FailurePolicy{MaxFailed: ptr.To[int32](int32(r.IntN(6) + 2)), Action: v1.FailurePause}
		if r.IntN(2) == 0 {
			spec.FailurePolicy.Action = v1.FailureAbort
		}
	}
	if r.IntN(4) == 0 {
		spec.MaintenanceWindows = []v1.MaintenanceWindow{{Schedule: "*/10 * * * *", Duration: metav1.Duration{Duration: 6 * time.Minute}}}
	}
	if r.IntN(4) == 0 {
		spec.Targeting = v1.TargetingSnapshot
	}
	h.budget = -1
	if r.IntN(3) == 0 {
		h.budget = r.IntN(4)
	}
	return ro
}

func (h *history) apply(topic string, payload []byte) {
	h.t.Helper()
	if res := h.state.Apply(h.topics, topic, payload, h.now); res.Malformed {
		h.t.Fatalf("%s: %v", topic, res.Err)
	}
	h.retain(topic, payload)
}

func (h *history) retain(topic string, payload []byte) {
	if len(payload) == 0 {
		delete(h.retained, topic)
		return
	}
	h.retained[topic] = payload
}

// resync replaces the fleet state with one rebuilt from what the broker
// retains, as a session's re-sync does.
func (h *history) resync() {
	state := fleet.NewState(fleet.Limits{})
	for _, topic := range slices.Sorted(maps.Keys(h.retained)) { // slots as a seed had them
		state.Apply(h.topics, topic, h.retained[topic], h.now)
	}
	h.state = state
}

func (h *history) inventory(id string) {
	r := h.rng
	inv := protocol.Inventory{V: protocol.Version, DeviceID: id, Model: []string{"m", "m", "n", "x"}[r.IntN(4)],
		HardwareRevision: "r1", FirmwareVersion: []string{"1.0.0", "1.5.0", "2.0.0", "2.1.0"}[r.IntN(4)],
		Labels: map[string]string{"site": []string{"a", "b"}[r.IntN(2)]}}
	b, err := protocol.MarshalInventory(&inv)
	if err != nil {
		h.t.Fatal(err)
	}
	h.apply(h.topics.Inventory(id), b)
}

func (h *history) presence(id string, online bool) {
	p := protocol.Presence{V: protocol.Version, State: protocol.PresenceOffline}
	if online {
		p.State = protocol.PresenceOnline
	}
	b, err := protocol.MarshalPresence(&p)
	if err != nil {
		h.t.Fatal(err)
	}
	h.apply(h.topics.Presence(id), b)
}

func (h *history) status(id string) {
	r := h.rng
	s := protocol.Status{V: protocol.Version, RolloutUID: uid, Rollout: "ns/r", TargetVersion: "2.0.0",
		Attempt: r.IntN(3)}
	switch r.IntN(8) {
	case 0:
		s.State = protocol.StateAccepted
	case 1:
		s.State = protocol.StateDownloading
	case 2:
		s.State = protocol.StateInstalling
	case 3, 4:
		s.State = protocol.StateSucceeded
	case 5:
		s.State, s.Reason = protocol.StateFailed, []string{protocol.ReasonDownloadFailed, protocol.ReasonInstallFailed, protocol.ReasonSignatureInvalid}[r.IntN(3)]
	case 6:
		s.State, s.Reason = protocol.StateRejected, protocol.ReasonLowBattery
	case 7:
		s.State, s.Reason = protocol.StateCanceled, protocol.ReasonSuperseded
	}
	if s.State == protocol.StateDownloading {
		s.Progress = ptr.To(r.IntN(100))
	}
	b, err := protocol.MarshalStatus(&s)
	if err != nil {
		h.t.Fatal(err)
	}
	h.apply(h.topics.Status(id), b)
}

// step changes the world once: the clock, a device, or the spec.
func (h *history) step() {
	r := h.rng
	h.now = h.now.Add(time.Duration(r.IntN(40)) * time.Second)
	if h.budget >= 0 {
		// A rate limit's budget comes back over time: devices wait in
		// queues across plans, and are served later.
		h.budget = r.IntN(4)
	}
	id := h.ids[r.IntN(len(h.ids))]
	spec := &h.ro.Spec
	switch k := r.IntN(100); {
	case k < 35:
		h.status(id)
	case k < 50:
		h.presence(id, r.IntN(3) > 0)
	case k < 56:
		h.inventory(id)
	case k < 59:
		h.apply(h.topics.Inventory(id), nil)
	case k < 61:
		h.apply(h.topics.Presence(id), nil)
	case k < 63:
		h.apply(h.topics.Status(id), nil)
	case k < 67:
		// Gone from the broker: the state forgets the device, and a
		// newcomer may take its slot before the next plan.
		h.apply(h.topics.Inventory(id), nil)
		h.apply(h.topics.Presence(id), nil)
		h.apply(h.topics.Status(id), nil)
		if other := h.ids[r.IntN(len(h.ids))]; r.IntN(2) == 0 {
			h.inventory(other)
		}
	case k < 71:
		spec.ApprovedWaves++
		h.ro.Generation++
	case k < 73:
		spec.Paused = !spec.Paused
		h.ro.Generation++
	case k < 74:
		spec.SkipDevices = append(spec.SkipDevices, id)
		h.ro.Generation++
	case k < 75 && r.IntN(4) == 0:
		spec.Canceled = true
		h.ro.Generation++
	case k < 83:
		// A long quiet spell: deadlines and graces run out.
		h.now = h.now.Add(time.Duration(r.IntN(8)) * time.Minute)
	case k < 85:
		// Newer rollouts take models over, or give them back.
		h.superseded = []map[string]bool{{}, {"n": true}, {"x": true}}[r.IntN(3)]
	case k < 86:
		h.grace = []time.Duration{0, time.Minute, 5 * time.Minute, time.Hour}[r.IntN(4)]
	case k < 87:
		spec.DryRun = !spec.DryRun
		h.ro.Generation++
	case k < 88:
		// Weeks pass: notices near their expiry go out again.
		h.now = h.now.Add(time.Duration(r.IntN(20)) * 24 * time.Hour)
	case k < 91:
		// The device answers another rollout: its report on ours
		// becomes an earlier one.
		s := protocol.Status{V: protocol.Version, RolloutUID: "uid-other", Rollout: "ns/other", TargetVersion: "3.0.0", State: protocol.StateAccepted}
		b, err := protocol.MarshalStatus(&s)
		if err != nil {
			h.t.Fatal(err)
		}
		h.apply(h.topics.Status(id), b)
	case k < 92:
		// Someone else clears retained notices of ours.
		notices := h.state.Notices()
		for _, topic := range slices.Sorted(maps.Keys(notices)) { // a seed replays exactly
			if notices[topic].RolloutUID == uid && r.IntN(3) == 0 {
				h.apply(topic, nil)
			}
		}
	case k < 94:
		h.skipWrite = true
	case k < 95:
		h.resync()
	case k < 96:
		if spec.Schedule == nil {
			spec.Schedule = &v1.Schedule{}
		}
		end := metav1.NewTime(h.now.Add(time.Duration(r.IntN(3600)) * time.Second))
		spec.Schedule.EndTime = &end
		h.ro.Generation++
	case k < 97:
		// The operator's clock steps back (an NTP correction): the
		// tracker's deadlines were reckoned from a later now.
		h.now = h.now.Add(-time.Duration(r.IntN(300)) * time.Second)
	case k < 98:
		// A notice of ours no plan asked for: an earlier process's
		// publish, retained while the device was not a target.
		h.apply(h.topics.DeviceNotice(id), h.notice(1+r.IntN(3)))
	case k < 99:
		// Two devices go from the broker and come back, each taking the
		// other's slot; their own notices stay.
		other := h.ids[r.IntN(len(h.ids))]
		for _, d := range []string{id, other} {
			h.apply(h.topics.Inventory(d), nil)
			h.apply(h.topics.Presence(d), nil)
			h.apply(h.topics.Status(d), nil)
		}
		for _, d := range []string{id, other} {
			h.inventory(d)
			h.presence(d, true)
		}
	default:
		// The publishes of the next plan fail.
		h.losePublish = true
	}
}

// plan plans with the tracker and from scratch, compares, and carries
// out the plan as the controller would. It reports whether the tracker
// planned from what changed rather than walking the fleet.
func (h *history) plan(step int) bool {
	h.t.Helper()
	in := func() Input {
		return Input{
			Rollout: h.ro.DeepCopy(), Devices: h.state.EachReport, Notices: h.state.Notices(), Topics: h.topics,
			Now: h.now, OfflineGrace: h.grace, SupersededModels: h.superseded, NoticeBudget: h.budget,
			DeviceBudget: h.budget, SizeHint: h.state.Len(), Snapshot: h.snapshot,
		}
	}
	walks := h.tr.walks
	got := h.tr.Plan(in(), h.state)
	incremental := h.tr.walks == walks
	want := Plan(in())
	if got.TakeSnapshot != nil {
		h.snapshot = got.TakeSnapshot
		h.ro.Status.Snapshot = &v1.TargetSnapshot{Devices: int32(len(h.snapshot))}
		got = h.tr.Plan(in(), h.state)
		want = Plan(in())
	}
	ignore := cmpopts.IgnoreFields(metav1.Condition{}, "LastTransitionTime")
	if d := cmp.Diff(want, got, ignore); d != "" {
		h.t.Fatalf("step %d: the tracker decided differently from Plan (-Plan +Tracker):\n%s", step, d)
	}
	// Both planned their notices from counts and queues; the rules
	// walked device by device must agree.
	if walked, held, ok := walkedActions(ptr.To(in()), &h.tr, got); ok {
		if d := cmp.Diff(walked, got.Actions, cmpopts.EquateEmpty()); d != "" {
			h.t.Fatalf("step %d: the notices differ from the rules walked device by device (-walked +planned):\n%s", step, d)
		}
		if held && (got.RequeueAfter <= 0 || got.RequeueAfter > rateLimitRetry) {
			h.t.Fatalf("step %d: a rate held notices back, and the plan comes back in %s", step, got.RequeueAfter)
		}
	}
	// A succeeded rollout's plan reads nothing: the tracker catches up
	// when it is asked again (canceled).
	var fresh Tracker
	if followed := h.tr.now == h.now.UnixNano() && h.tr.sel != nil; followed && fresh.follow(ptr.To(in()), nil, h.tr.key.ending) == nil {
		// Classified for the same started waves, as its next plan would.
		fresh.reclassify(h.tr.started)
		if d := cmp.Diff(targetsByID(&fresh), targetsByID(&h.tr), cmp.AllowUnexported(target{})); d != "" {
			h.t.Fatalf("step %d: the tracker's targets differ from a fresh walk's (-fresh +tracker):\n%s", step, d)
		}
		if d := cmp.Diff(noticeWorkOf(&fresh), noticeWorkOf(&h.tr)); d != "" {
			h.t.Fatalf("step %d: the tracker's notice work differs from a fresh walk's (-fresh +tracker):\n%s", step, d)
		}
	}
	if want.Status.Phase == v1.PhaseSucceeded {
		h.tr = Tracker{} // as the controller drops it
	}
	if !h.skipWrite || want.Status.Phase != h.ro.Status.Phase {
		h.ro.Status = *want.Status.DeepCopy()
	}
	h.skipWrite = false
	if h.losePublish {
		h.losePublish = false
		return incremental
	}
	for _, a := range want.Actions {
		var payload []byte
		if !a.Withdraw {
			payload = h.notice(a.Attempt)
		}
		h.state.Published(h.topics, a.Topic, payload, h.now)
		h.retain(a.Topic, payload)
	}
	return incremental
}

// notice is the rollout's notice of an attempt.
func (h *history) notice(attempt int) []byte {
	n := protocol.Notice{Action: protocol.ActionUpdate, Rollout: protocol.RolloutRef{Namespace: "ns", Name: "r", UID: uid},
		TargetVersion: "2.0.0", Models: h.ro.Spec.Firmware.Models, SHA256: sha, Size: 1,
		IssuedAt: t0, Attempt: attempt, MaintenanceWindows: NoticeWindows(h.ro),
		Artifacts: []protocol.Artifact{{URL: "https://example.com/fw.bin"}}}
	payload, err := protocol.MarshalNotice(&n)
	if err != nil {
		h.t.Fatal(err)
	}
	return payload
}

// targetsByID is a tracker's targets keyed by device, without the
// fields that depend on the order they were found in or on the queues
// built so far.
func targetsByID(tr *Tracker) map[string]target {
	out := make(map[string]target, len(tr.targets))
	for _, t := range tr.targets {
		t.gpos, t.slot, t.queued, t.dueQueued = 0, 0, false, false
		out[t.id] = t
	}
	return out
}

// noticeWorkOf is a tracker's notice work counts by group, its loose
// notices, and its retries' work.
func noticeWorkOf(tr *Tracker) map[string][3]int32 {
	out := map[string][3]int32{}
	for k, g := range tr.groups {
		out[fmt.Sprint(k)] = [3]int32{g.firstNotices, g.renewals, g.owned}
	}
	for id := range tr.loose {
		out["loose "+id] = [3]int32{}
	}
	for slot := range tr.retryWork.renewals {
		out["renew retry "+tr.at(slot).id] = [3]int32{}
	}
	for slot := range tr.retryWork.drops {
		out["drop retry "+tr.at(slot).id] = [3]int32{}
	}
	out["due retries"] = [3]int32{int32(tr.retryWork.dues)}
	return out
}

// TestTrackerFollowsTheChangeLog: a tracker reads only what the state
// logged since its last plan, and walks the fleet again when the log no
// longer reaches back (the state trims it) or the state is replaced.
func TestTrackerFollowsTheChangeLog(t *testing.T) {
	topics, _ := protocol.NewTopics("root")
	state := fleet.NewState(fleet.Limits{})
	inv := func(id string) { announce(t, state, topics, id) }
	for i := range 10 {
		inv(fmt.Sprintf("d%d", i))
	}
	ro := testRollout(percent(100))
	in := Input{Rollout: ro, Devices: state.EachReport, Topics: topics, Now: t0, OfflineGrace: time.Minute,
		NoticeBudget: -1, DeviceBudget: -1}
	var tr Tracker
	if out := tr.Plan(in, state); out.Status.Totals.Targeted != 10 {
		t.Fatalf("targeted %d, want 10", out.Status.Totals.Targeted)
	}
	inv("d10")
	cursor := tr.cursor
	if out := tr.Plan(in, state); out.Status.Totals.Targeted != 11 || tr.cursor != cursor+1 {
		t.Fatalf("targeted %d, cursor %d→%d: want 11 after reading one change", out.Status.Totals.Targeted, cursor, tr.cursor)
	}
	// More changes than the log keeps: the tracker cannot catch up from
	// it, and must walk the fleet.
	for i := range 3 << 16 {
		inv(fmt.Sprintf("d%d", i%20))
	}
	if _, ok := state.Catch(uid, tr.cursor, nil, nil, func(int32, *fleet.Device, *fleet.Report) {}); ok {
		t.Fatal("the log still reaches back")
	}
	if out := tr.Plan(in, state); out.Status.Totals.Targeted != 20 {
		t.Fatalf("targeted %d after the log was trimmed, want 20", out.Status.Totals.Targeted)
	}
	// A re-sync replaces the state: the old one's log says nothing.
	other := fleet.NewState(fleet.Limits{})
	in.Devices = other.EachReport
	if out := tr.Plan(in, other); out.Status.Totals.Targeted != 0 {
		t.Fatalf("targeted %d on an empty state", out.Status.Totals.Targeted)
	}
}

// TestTrackerFollowsTheNoticeLog: a tracker reads the notices that
// changed from the state's notice log, and reads them all again (a walk)
// once the log no longer reaches back.
func TestTrackerFollowsTheNoticeLog(t *testing.T) {
	ro := testRollout(percent(100))
	ro.Spec.Selector = &v1.DeviceSelector{Labels: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
		{Key: "retired", Operator: metav1.LabelSelectorOpDoesNotExist}}}}
	r := newTrackedRollout(t, ro)
	for i := range 20 {
		r.join(fmt.Sprintf("d%02d", i), "m", nil)
	}
	if out := r.plan(-1); len(out.Actions) != 20 {
		t.Fatalf("first plan: %d actions, want 20 first notices", len(out.Actions))
	}
	// Someone clears two notices: the next plan reads just that.
	r.state.Apply(r.topics, r.topics.DeviceNotice("d03"), nil, t0)
	r.state.Apply(r.topics, r.topics.DeviceNotice("d07"), nil, t0)
	walks := r.tr.walks
	if out := r.plan(-1); len(out.Actions) != 2 || r.tr.walks != walks {
		t.Fatalf("after two notices went: %d actions, %d walks; want 2 publishes and no walk", len(out.Actions), r.tr.walks-walks)
	}
	// More notice changes than the log keeps, ending with every notice
	// gone: the tracker must read them all again, and publish all again.
	for i := range 3 << 12 {
		id := fmt.Sprintf("d%02d", i%20)
		r.state.Apply(r.topics, r.topics.DeviceNotice(id), testNotice(t, 1+(i/20)%2), t0)
	}
	for i := range 20 {
		r.state.Apply(r.topics, r.topics.DeviceNotice(fmt.Sprintf("d%02d", i)), nil, t0)
	}
	if out := r.plan(-1); len(out.Actions) != 20 || r.tr.walks != walks+1 {
		t.Fatalf("after the log was trimmed: %d actions, %d walks; want 20 publishes after one walk", len(out.Actions), r.tr.walks-walks)
	}
}

var sha = "0000000000000000000000000000000000000000000000000000000000000000"

// TestTrackerUnderConcurrentSlotMoves: the session applies messages while
// reconcilers plan. Two devices are forgotten and come back, trading
// slots, again and again, while their own notices change before every
// plan: no plan may hold a device twice or count more devices than the
// fleet ever held. (The tracker read the change log and the devices it
// re-derives under separate locks once, and a device that moved between
// the two was counted at both slots.)
func TestTrackerUnderConcurrentSlotMoves(t *testing.T) {
	topics, _ := protocol.NewTopics("root")
	state := fleet.NewState(fleet.Limits{})
	inv := func(id string) { announce(t, state, topics, id) }
	const n = 200
	for i := range n {
		inv(fmt.Sprintf("d%03d", i))
	}
	ro := testRollout(percent(100))
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		for !stop.Load() {
			// Forget both, then d000 takes d001's slot and d001 d000's.
			state.Apply(topics, topics.Inventory("d000"), nil, t0)
			state.Apply(topics, topics.Inventory("d001"), nil, t0)
			inv("d000")
			inv("d001")
		}
	})
	defer wg.Wait()
	defer stop.Store(true)
	var tr Tracker
	now := t0
	for plan := range 3000 {
		now = now.Add(time.Second)
		for _, id := range []string{"d000", "d001"} {
			n := protocol.Notice{Action: protocol.ActionUpdate, Rollout: protocol.RolloutRef{Namespace: "ns", Name: "r", UID: uid},
				TargetVersion: "2.0.0", Models: []string{"m"}, SHA256: sha, Size: 1, IssuedAt: now, Attempt: 1,
				Artifacts: []protocol.Artifact{{URL: "https://example.com/fw.bin"}}}
			b, err := protocol.MarshalNotice(&n)
			if err != nil {
				t.Fatal(err)
			}
			state.Published(topics, topics.DeviceNotice(id), b, now)
		}
		in := Input{Rollout: ro, Devices: state.EachReport, Notices: state.Notices(), Topics: topics, Now: now,
			OfflineGrace: time.Minute, NoticeBudget: -1, DeviceBudget: -1}
		out := tr.Plan(in, state)
		if out.Status.Totals.Targeted > n {
			t.Fatalf("plan %d: %d devices targeted in a fleet that never held more than %d", plan, out.Status.Totals.Targeted, n)
		}
		seen := map[string]bool{}
		for _, tg := range tr.targets {
			if seen[tg.id] {
				t.Fatalf("plan %d: the tracker holds %s twice", plan, tg.id)
			}
			seen[tg.id] = true
		}
	}
}

// announce applies the inventory of a device of model m on 1.0.0. It
// reports with t.Error, which other goroutines may call.
func announce(t *testing.T, state *fleet.State, topics protocol.Topics, id string) {
	t.Helper()
	b, err := protocol.MarshalInventory(&protocol.Inventory{V: protocol.Version, DeviceID: id, Model: "m", HardwareRevision: "r", FirmwareVersion: "1.0.0"})
	if err != nil {
		t.Error(err)
		return
	}
	if res := state.Apply(topics, topics.Inventory(id), b, t0); res.Malformed {
		t.Error(res.Err)
	}
}

// walkedActions is what out, planned from in by tr, must publish and
// withdraw by desiredNotices, the rules walked device by device, diffed
// against the broker's notices: the reference for Tracker.noticeActions.
// held reports that the device rate kept a device waiting or the
// publish budget cut the list short; ok is false
// for a plan that does not reach its notices (a final status, a snapshot
// being taken).
func walkedActions(in *Input, tr *Tracker, out Output) (actions []Action, held, ok bool) {
	ro, prev := in.Rollout, &in.Rollout.Status
	switch {
	case tr.sel == nil, prev.Phase == v1.PhaseSucceeded && !ro.Spec.Canceled, out.TakeSnapshot != nil:
		return nil, false, false
	case prev.Phase == v1.PhaseAborted || prev.Phase == v1.PhaseCanceled, out.WithdrawAll,
		ro.Spec.DryRun && !started(prev) && !ro.Spec.Canceled:
		actions, _ = diffNotices(in, nil)
		return actions, false, true
	}
	hold := ro.Spec.Paused || ro.Spec.DryRun || evaluatePolicy(ro.Spec.FailurePolicy, &tr.tally).tripped
	desired, held := desiredNotices(in, tr.sel, tr, out.Status.Waves, hold)
	actions, retry := diffNotices(in, desired)
	// Either way the plan must come back within the rate limit's retry.
	return actions, held || retry > 0, true
}

// diffNotices diffs desired notices against the broker's retained ones,
// within the publish budget, and returns a retry delay when the budget
// cut the list short.
func diffNotices(in *Input, desired map[string]Action) ([]Action, time.Duration) {
	uid := string(in.Rollout.UID)
	topics := slices.Sorted(maps.Keys(desired))
	var actions []Action
	budget := in.NoticeBudget
	var retry time.Duration
	windows := protocol.WindowsKey(NoticeWindows(in.Rollout))
	for _, topic := range topics {
		if n, ok := in.Notices[topic]; ok && n.RolloutUID == uid && max(n.Attempt, 1) == max(desired[topic].Attempt, 1) &&
			n.Windows == windows && in.Now.Sub(n.SeenAt) < NoticeExpiry/2 {
			continue
		}
		if budget == 0 {
			retry = rateLimitRetry
			break
		}
		budget--
		actions = append(actions, desired[topic])
	}
	var ours []string
	for topic, n := range in.Notices {
		if _, want := desired[topic]; n.RolloutUID == uid && !want {
			ours = append(ours, topic)
		}
	}
	slices.Sort(ours)
	for _, topic := range ours {
		actions = append(actions, Action{Topic: topic, Withdraw: true})
	}
	return actions, retry
}

// TestFirstNoticesGoInIDOrder: under per-device notices and a device rate
// of one, each plan sends the next first notice to the waiting device
// with the lowest ID, also when that device joined after the order was
// first worked out (the tracker keeps a group's candidates queued).
func TestFirstNoticesGoInIDOrder(t *testing.T) {
	ro := testRollout(percent(100))
	ro.Spec.Selector = &v1.DeviceSelector{Labels: &metav1.LabelSelector{MatchLabels: map[string]string{"site": "a"}}}
	r := newTrackedRollout(t, ro)
	ids := idsInCohort(8, 7) // one group: one queue
	site := map[string]string{"site": "a"}
	// The lowest IDs join later, one after another.
	late := []string{ids[1], ids[0], ids[4]}
	for _, id := range ids {
		if !slices.Contains(late, id) {
			r.join(id, "m", site)
		}
	}
	served := map[string]bool{}
	for plan := range len(ids) {
		if plan < len(late) {
			r.join(late[plan], "m", site)
		}
		r.now = t0.Add(time.Duration(plan) * time.Second)
		want := ""
		r.state.Each(func(d *fleet.Device) {
			if !served[d.ID] && (want == "" || d.ID < want) {
				want = d.ID
			}
		})
		out := r.plan(1)
		if len(out.Actions) != 1 || out.Actions[0].Device != want || out.Actions[0].Devices != 1 {
			t.Fatalf("plan %d: actions %+v, want one first notice for %s (%s)", plan, out.Actions, want, out.Status.Message)
		}
		served[want] = true
	}
}

// testNotice is the rollout's notice of an attempt.
func testNotice(t *testing.T, attempt int) []byte {
	t.Helper()
	n := protocol.Notice{Action: protocol.ActionUpdate, Rollout: protocol.RolloutRef{Namespace: "ns", Name: "r", UID: uid},
		TargetVersion: "2.0.0", Models: []string{"m"}, SHA256: sha, Size: 1, IssuedAt: t0, Attempt: attempt,
		Artifacts: []protocol.Artifact{{URL: "https://example.com/fw.bin"}}}
	b, err := protocol.MarshalNotice(&n)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// trackedRollout is a rollout planned by a Tracker over a fleet state,
// each plan carried out as the controller would, and held to a plan from
// scratch and to the notice rules walked device by device.
type trackedRollout struct {
	t      *testing.T
	topics protocol.Topics
	state  *fleet.State
	ro     *v1.FirmwareRollout
	tr     Tracker
	now    time.Time
	// losePublishes carries out no plan's actions, as a broker that went
	// away does.
	losePublishes bool
}

func newTrackedRollout(t *testing.T, ro *v1.FirmwareRollout) *trackedRollout {
	topics, err := protocol.NewTopics("root")
	if err != nil {
		t.Fatal(err)
	}
	return &trackedRollout{t: t, topics: topics, state: fleet.NewState(fleet.Limits{}), ro: ro, now: t0}
}

// join announces an online device on 1.0.0.
func (r *trackedRollout) join(id, model string, labels map[string]string) {
	r.t.Helper()
	b, err := protocol.MarshalInventory(&protocol.Inventory{V: protocol.Version, DeviceID: id, Model: model,
		HardwareRevision: "r", FirmwareVersion: "1.0.0", Labels: labels})
	if err != nil {
		r.t.Fatal(err)
	}
	if res := r.state.Apply(r.topics, r.topics.Inventory(id), b, r.now); res.Malformed {
		r.t.Fatal(res.Err)
	}
	r.state.Apply(r.topics, r.topics.Presence(id), []byte(`{"v":1,"state":"online"}`), r.now)
}

// plan plans once, with budget devices to reach (below zero: no limit),
// and publishes what the plan says.
func (r *trackedRollout) plan(budget int) Output {
	r.t.Helper()
	in := Input{Rollout: r.ro.DeepCopy(), Devices: r.state.EachReport, Notices: r.state.Notices(), Topics: r.topics,
		Now: r.now, OfflineGrace: time.Hour, NoticeBudget: -1, DeviceBudget: budget}
	out := r.tr.Plan(in, r.state)
	if want := Plan(in); !cmp.Equal(want.Actions, out.Actions, cmpopts.EquateEmpty()) {
		r.t.Fatalf("the tracker's actions %+v, from scratch %+v", out.Actions, want.Actions)
	}
	if walked, _, _ := walkedActions(&in, &r.tr, out); !slices.Equal(walked, out.Actions) {
		r.t.Fatalf("walked device by device the rules say %+v, the plan %+v", walked, out.Actions)
	}
	for _, a := range out.Actions {
		var payload []byte
		if !a.Withdraw {
			payload = testNotice(r.t, max(a.Attempt, 1))
		}
		if !r.losePublishes {
			r.state.Published(r.topics, a.Topic, payload, r.now)
		}
	}
	r.ro.Status = out.Status
	return out
}

// idsInCohort returns n device IDs of one cohort.
func idsInCohort(n, cohort int) []string {
	var ids []string
	for i := 0; len(ids) < n; i++ {
		if id := fmt.Sprintf("q%03d", i); protocol.Cohort(id) == cohort {
			ids = append(ids, id)
		}
	}
	return ids
}

// TestQueuedDeviceChangesModel: a device queued for its first notice in
// one group moves to another and back (its model changes) while both
// groups have queues: it is served once, from the group it is in.
func TestQueuedDeviceChangesModel(t *testing.T) {
	ro := testRollout(percent(100))
	ro.Spec.Firmware.Models = []string{"m", "n"}
	ro.Spec.Selector = &v1.DeviceSelector{Labels: &metav1.LabelSelector{MatchLabels: map[string]string{"site": "a"}}}
	r := newTrackedRollout(t, ro)
	site := map[string]string{"site": "a"}
	ids := idsInCohort(4, 7) // groups (m, 7) and (n, 7)
	a, b, c, d := ids[0], ids[1], ids[2], ids[3]
	r.join(a, "m", site)
	r.join(d, "n", site)
	// A first notice in each group: both groups queue their candidates.
	if out := r.plan(-1); len(out.Actions) != 2 {
		t.Fatalf("first plan: %+v, want a first notice in each group", out.Actions)
	}
	// b joins group m's queue and waits there (the device rate is
	// spent), then moves to group n's, and back and forth: each time it
	// waits in the other queue.
	r.join(b, "m", site)
	r.join(c, "m", site)
	for _, model := range []string{"n", "m", "n"} {
		if out := r.plan(0); len(out.Actions) != 0 {
			t.Fatalf("with no device budget: %+v", out.Actions)
		}
		r.join(b, model, site)
	}
	var served []string
	for _, act := range r.plan(-1).Actions {
		served = append(served, act.Device)
	}
	if want := []string{b, c}; !slices.Equal(served, want) {
		t.Fatalf("served %v, want %v once each", served, want)
	}
}

// TestLooseNoticesSurviveASlotTrade: two devices already on the target
// version (no per-device rule keeps their own notices) trade slots while
// the withdrawals of those notices are lost: the next plan withdraws both
// again. (The device that moved to the lower slot is derived there before
// its old slot is cleared; clearing it once dropped its notice from the
// loose ones.)
func TestLooseNoticesSurviveASlotTrade(t *testing.T) {
	r := newTrackedRollout(t, testRollout(percent(100)))
	current := func(id string) {
		b, err := protocol.MarshalInventory(&protocol.Inventory{V: protocol.Version, DeviceID: id, Model: "m",
			HardwareRevision: "r", FirmwareVersion: "2.0.0"})
		if err != nil {
			t.Fatal(err)
		}
		r.state.Apply(r.topics, r.topics.Inventory(id), b, r.now)
	}
	current("A")
	current("B")
	r.join("C", "m", nil) // keeps the rollout going
	for _, id := range []string{"A", "B"} {
		r.state.Apply(r.topics, r.topics.DeviceNotice(id), testNotice(t, 1), r.now)
	}
	withdrawals := func(actions []Action) (ids []string) {
		for _, a := range actions {
			if id, _, err := r.topics.ParseDeviceTopic(a.Topic); err == nil && a.Withdraw {
				ids = append(ids, id)
			}
		}
		return ids
	}
	r.losePublishes = true
	if got := withdrawals(r.plan(-1).Actions); !slices.Equal(got, []string{"A", "B"}) {
		t.Fatalf("first plan withdraws %v, want A and B", got)
	}
	r.losePublishes = false
	for _, id := range []string{"A", "B"} {
		r.state.Apply(r.topics, r.topics.Inventory(id), nil, r.now)
	}
	current("A") // takes B's slot
	current("B") // takes A's
	if got := withdrawals(r.plan(-1).Actions); !slices.Equal(got, []string{"A", "B"}) {
		t.Fatalf("after the trade the plan withdraws %v, want A and B", got)
	}
}

// TestRetriesGoOutInOrder: failed devices' retries go out under a device
// rate of one in the groups' order (cohort, model, ID), each once: also
// a device that left and came back while queued, and a device whose last
// retry notice is due for republishing when its next attempt falls due.
func TestRetriesGoOutInOrder(t *testing.T) {
	ro := testRollout(percent(100))
	ro.Spec.RetryPolicy = &v1.RetryPolicy{Install: 3, Backoff: &metav1.Duration{Duration: time.Minute}}
	r := newTrackedRollout(t, ro)
	ids := []string{"r0", "r1", "r2", "r3", "r4"}
	for _, id := range ids {
		r.join(id, "m", nil)
	}
	topics, state := r.topics, r.state
	plan := func(budget int) []Action { return r.plan(budget).Actions }
	fail := func(id string, attempt int) {
		b, err := protocol.MarshalStatus(&protocol.Status{V: protocol.Version, RolloutUID: uid, Rollout: "ns/r",
			TargetVersion: "2.0.0", State: protocol.StateFailed, Reason: protocol.ReasonInstallFailed, Attempt: attempt})
		if err != nil {
			t.Fatal(err)
		}
		state.Apply(topics, topics.Status(id), b, r.now)
	}
	plan(-1) // the group notices
	for _, id := range ids {
		fail(id, 1)
	}
	order := slices.Clone(ids)
	slices.SortFunc(order, func(a, b string) int {
		if ca, cb := protocol.Cohort(a), protocol.Cohort(b); ca != cb {
			return ca - cb
		}
		return strings.Compare(a, b)
	})
	r.now = r.now.Add(2 * time.Minute)
	retried := func(actions []Action) []string {
		var got []string
		for _, a := range actions {
			if !a.Withdraw && a.Attempt > 1 {
				got = append(got, a.Device)
			}
		}
		return got
	}
	if got := retried(plan(1)); !slices.Equal(got, order[:1]) {
		t.Fatalf("first retry to %v, want %v", got, order[:1])
	}
	// One in line goes from the broker and comes back, at its slot,
	// while the device rate is spent.
	gone := order[2]
	state.Apply(topics, topics.Inventory(gone), nil, r.now)
	state.Apply(topics, topics.Presence(gone), nil, r.now)
	if got := retried(plan(0)); len(got) != 0 {
		t.Fatalf("retries %v with no device budget", got)
	}
	r.join(gone, "m", nil)
	fail(gone, 1)
	rest := slices.Sorted(slices.Values(order[1:])) // in topic order
	if got := retried(plan(-1)); !slices.Equal(got, rest) {
		t.Fatalf("then retries to %v, want %v once each", got, rest)
	}
	// The first device fails its second attempt; weeks later its third
	// falls due while its second's notice is due for republishing.
	fail(order[0], 2)
	r.now = r.now.Add(16 * 24 * time.Hour)
	for _, id := range order[1:] {
		fail(id, 2)
	}
	got := plan(-1)
	var first []Action
	for _, a := range got {
		if a.Device == order[0] {
			first = append(first, a)
		}
	}
	if len(first) != 1 || first[0].Attempt != 3 {
		t.Fatalf("for %s: %+v, want its third attempt alone", order[0], first)
	}
	// A device at work on its second attempt, under a notice of a third
	// no plan made: that notice goes.
	b, err := protocol.MarshalStatus(&protocol.Status{V: protocol.Version, RolloutUID: uid, Rollout: "ns/r",
		TargetVersion: "2.0.0", State: protocol.StateInstalling, Attempt: 2})
	if err != nil {
		t.Fatal(err)
	}
	state.Apply(topics, topics.Status(order[1]), b, r.now)
	state.Apply(topics, topics.DeviceNotice(order[1]), testNotice(t, 3), r.now)
	want := Action{Topic: topics.DeviceNotice(order[1]), Withdraw: true}
	if got := plan(-1); !slices.Contains(got, want) {
		t.Fatalf("actions %+v, want %+v", got, want)
	}
}
