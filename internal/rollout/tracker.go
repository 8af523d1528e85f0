package rollout

import (
	"container/heap"
	"maps"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/types"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/internal/fleet"
	"github.com/heraldiot/herald/protocol"
)

// Tracker keeps one rollout's targets, and the counts a plan reads, from
// one plan to the next, so that a plan costs what changed since the last
// one rather than a walk over every device: the devices the fleet state
// logged as changed, the targets a changed notice reaches, and those whose
// deadline, offline grace or retry came (a heap by time). A plan from a
// Tracker decides exactly what Plan decides from scratch
// (TestTrackerDecidesLikePlan checks that over random histories); it walks
// the fleet again when the rollout's spec or the inputs that select
// targets change, when the fleet state is replaced (a re-sync), when the
// state's change log no longer reaches back, and, under count waves, when
// a device joins or leaves the target set (a count wave's devices depend
// on every target's rank).
//
// Notices are followed the same way: the state logs the notice topics
// that change, and the tracker keeps, per group, the counts of what its
// started devices ask of per-device notices, its first-notice candidates
// queued in ID order, and the retries that are due queued in the order
// the device rate serves them (noticework.go). What a plan still walks:
// the groups, the failed devices for the failure sample (keeping the
// newest ten), and a group's members when one of its own notices is due
// again (a notice cleared by someone else, or two weeks old) or, under a
// group notice, must go.
//
// A Tracker is not safe for concurrent use; the controller keeps one per
// rollout and plans each rollout on one goroutine at a time.
type Tracker struct {
	state *fleet.State // followed; nil for a plan from scratch
	// cursor and noticeCursor are the positions last read in state's
	// change logs of devices and of notices.
	cursor, noticeCursor uint64
	key                  trackerKey
	// superseded and snapshot are the key's parts that do not compare
	// with ==.
	superseded map[string]bool
	snapshot   Snapshot
	now        int64 // unix nanoseconds of the last plan

	sel     *selection
	notices noticeIndex
	// byRank is set under count waves: a device's wave is its rank in
	// the whole target set, so a device that joins or leaves moves
	// others; reranked marks that it happened.
	byRank, reranked bool

	targets []target
	// pos is 1 + the index in targets of the target at each device
	// slot, 0 for none: 4 bytes a device where a map by ID took 50.
	pos    []int32
	groups map[groupKey]*group
	tally  tally
	wakes  wakeHeap
	// bad holds the slots of failed and rejected targets, for the
	// failure sample; retries those with a retry notice due or out.
	bad, retries map[int32]struct{}
	// started is which waves had started when the targets' notice work
	// was classified (noticework.go); loose holds the devices whose own
	// notice of the rollout no per-device rule keeps: withdrawals due.
	started []bool
	loose   map[string]struct{}
	// retryWork is the notice work of the devices on the retry path
	// (noticework.go).
	retryWork retryWork

	// walks counts the times it derived every target, for tests.
	walks int
}

// trackerKey is what the targets were derived under; any change of it
// means deriving them all again.
type trackerKey struct {
	uid        types.UID
	generation int64
	ending     bool
	grace      time.Duration
	topics     protocol.Topics
}

// group is the targets of one (model, cohort): what one group notice
// reaches.
type group struct {
	key     groupKey
	members []int32 // indexes in Tracker.targets
	// byWave counts members by wave; the last entry counts those beyond
	// the last wave.
	byWave  []int32
	waiting int32
	// Notice work of its members in started waves (noticework.go):
	// first-notice candidates, renewals due, and members whose own
	// first notice is out; queue is the candidates, in ID order.
	firstNotices, renewals, owned int32
	queue                         waitQueue
}

// follow brings the tracker up to date with in (and state, the fleet the
// devices come from, when it follows one). Its error is a spec error.
func (tr *Tracker) follow(in *Input, state *fleet.State, ending bool) error {
	key := trackerKey{uid: in.Rollout.UID, generation: in.Rollout.Generation, ending: ending,
		grace: in.OfflineGrace, topics: in.Topics}
	if state == nil || tr.sel == nil || tr.state != state || tr.key != key || in.Now.UnixNano() < tr.now ||
		!maps.Equal(tr.superseded, in.SupersededModels) || !sameSnapshot(tr.snapshot, in.Snapshot) {
		return tr.rebuild(in, state, key)
	}
	if !tr.update(in) {
		return tr.rebuild(in, state, key)
	}
	return nil
}

// sameSnapshot reports whether a and b are the same target set, cheaply
// when they are the same slice.
func sameSnapshot(a, b Snapshot) bool {
	if (a == nil) != (b == nil) || len(a) != len(b) {
		return false
	}
	return len(a) == 0 || &a[0] == &b[0] || slices.Equal(a, b)
}

// rebuild derives every target afresh.
func (tr *Tracker) rebuild(in *Input, state *fleet.State, key trackerKey) error {
	ro := in.Rollout
	sel, err := compile(ro)
	if err != nil {
		*tr = Tracker{walks: tr.walks}
		return err
	}
	if ro.Spec.Targeting == v1.TargetingSnapshot {
		sel.snapshot = in.Snapshot
	}
	// The waves started before stay started: classified under them, the
	// targets need no second walk when the next plan finds them so.
	started := tr.started
	if len(started) != len(ro.Spec.Strategy.Waves) {
		started = nil
	}
	*tr = Tracker{state: state, key: key, superseded: maps.Clone(in.SupersededModels), snapshot: in.Snapshot,
		now: in.Now.UnixNano(), sel: sel, byRank: countWaves(ro.Spec.Strategy.Waves), walks: tr.walks + 1, started: started}
	if state != nil {
		// Taken before the walk: what changes during it is read again.
		tr.cursor = state.Cursor()
	}
	tr.notices, tr.noticeCursor = indexNotices(in, sel, state)
	tr.loose = map[string]struct{}{}
	targets := make([]target, 0, in.SizeHint)
	in.Devices(string(ro.UID), func(d *fleet.Device, rep *fleet.Report) {
		if t, ok := sel.derive(in, &tr.notices, d, rep, key.ending); ok {
			if state == nil {
				// Devices not from a state have no slots of their own.
				t.slot = int32(len(targets))
			}
			targets = append(targets, t)
		}
	})
	if tr.byRank {
		assignCountWaves(ro.Spec.Strategy.Waves, targets)
	}
	tr.targets = targets
	tr.groups = map[groupKey]*group{}
	tr.tally = newTally(len(ro.Spec.Strategy.Waves))
	tr.bad, tr.retries = map[int32]struct{}{}, map[int32]struct{}{}
	for i := range targets {
		t := &targets[i]
		tr.place(t.slot, int32(i))
		tr.join(t, int32(i))
		tr.count(t, 1)
		if t.wake != 0 {
			tr.wakes = append(tr.wakes, wake{at: t.wake, slot: t.slot})
		}
	}
	heap.Init(&tr.wakes)
	tr.looseOrphans()
	return nil
}

// update applies what changed since the last plan: devices the state
// logged, notices, and time. It reports false when the tracker must walk
// the fleet instead.
func (tr *Tracker) update(in *Input) bool {
	// A notice of ours that came, went or changed changes what the
	// devices it reaches stand at: a device's own notice names it by ID
	// (its slot is looked up with the change log, consistently), a group
	// notice reaches the group's members.
	var slots []int32
	var ids []string
	noticeCursor, ok := tr.notices.catchUp(in, tr.state, tr.noticeCursor, func(id string) {
		ids = append(ids, id)
		// Deriving the device's target again below decides the rest.
		tr.settleLoose(id)
	}, func(k groupKey) {
		if g := tr.groups[k]; g != nil {
			for _, i := range g.members {
				slots = append(slots, tr.targets[i].slot)
			}
		}
	})
	if !ok {
		return false // more than half the notices changed
	}
	tr.noticeCursor = noticeCursor
	// Targets whose time came.
	now := in.Now.UnixNano()
	for len(tr.wakes) > 0 && tr.wakes[0].at <= now {
		if w := heap.Pop(&tr.wakes).(wake); tr.valid(w) {
			slots = append(slots, w.slot)
		}
	}
	tr.now = now
	next, ok := tr.state.Catch(string(in.Rollout.UID), tr.cursor, slots, ids, func(slot int32, d *fleet.Device, rep *fleet.Report) {
		tr.set(in, slot, d, rep)
	})
	if !ok || tr.reranked {
		return false
	}
	tr.cursor = next
	if len(tr.wakes) > 2*len(tr.targets)+1024 {
		tr.compactWakes()
	}
	return true
}

// set derives the target at slot again from the device there (d nil: the
// slot is empty) and puts it in place of what the tracker had. The slot
// may hold another device than the tracked one: the tracked one was
// forgotten and a newcomer took its slot, each change logged.
func (tr *Tracker) set(in *Input, slot int32, d *fleet.Device, rep *fleet.Report) {
	var t target
	ok := false
	if d != nil {
		t, ok = tr.sel.derive(in, &tr.notices, d, rep, tr.key.ending)
	}
	old := tr.at(slot)
	if old != nil && (!ok || old.id != t.id) {
		tr.remove(slot)
		tr.reranked = tr.reranked || tr.byRank
		old = nil
	}
	switch {
	case old != nil:
		i := tr.pos[slot] - 1
		if tr.byRank {
			// Its rank holds: a device's cohort comes from its ID.
			t.wave = old.wave
		}
		tr.count(old, -1)
		if old.model != t.model {
			tr.leave(old, i)
			*old = t
			tr.join(old, i)
		} else {
			t.gpos, t.queued, t.dueQueued = old.gpos, old.queued, old.dueQueued
			*old = t
		}
		tr.count(old, 1)
		tr.schedule(old)
	case ok:
		i := int32(len(tr.targets))
		tr.targets = append(tr.targets, t)
		tr.place(slot, i)
		nt := &tr.targets[i]
		tr.join(nt, i)
		tr.count(nt, 1)
		tr.schedule(nt)
		tr.reranked = tr.reranked || tr.byRank
	}
}

// at returns the target at slot, nil if there is none.
func (tr *Tracker) at(slot int32) *target {
	if slot < 0 || int(slot) >= len(tr.pos) || tr.pos[slot] == 0 {
		return nil
	}
	return &tr.targets[tr.pos[slot]-1]
}

// place records that the target at slot is targets[i].
func (tr *Tracker) place(slot, i int32) {
	if int(slot) >= len(tr.pos) {
		tr.pos = append(tr.pos, make([]int32, int(slot)+1-len(tr.pos))...)
	}
	tr.pos[slot] = i + 1
}

// remove takes the target at slot out, moving the last one into its
// place.
func (tr *Tracker) remove(slot int32) {
	i := tr.pos[slot] - 1
	t := &tr.targets[i]
	tr.count(t, -1)
	tr.settleLoose(t.id)
	tr.leave(t, i)
	tr.pos[slot] = 0
	last := int32(len(tr.targets) - 1)
	if i != last {
		moved := tr.targets[last]
		tr.targets[i] = moved
		tr.pos[moved.slot] = i + 1
		tr.groups[groupKey{moved.model, int(moved.cohort)}].members[moved.gpos] = i
	}
	tr.targets[last] = target{}
	tr.targets = tr.targets[:last]
}

// join adds the target at index i to its group's members.
func (tr *Tracker) join(t *target, i int32) {
	k := groupKey{t.model, int(t.cohort)}
	g := tr.groups[k]
	if g == nil {
		g = &group{key: k, byWave: make([]int32, len(tr.tally.waves)+1)}
		tr.groups[k] = g
	}
	t.gpos = int32(len(g.members))
	g.members = append(g.members, i)
}

// leave takes the target at index i out of its group's members; a group
// left empty goes, as a plan from scratch would not have it.
func (tr *Tracker) leave(t *target, i int32) {
	k := groupKey{t.model, int(t.cohort)}
	g := tr.groups[k]
	last := len(g.members) - 1
	if int(t.gpos) != last {
		moved := g.members[last]
		g.members[t.gpos] = moved
		tr.targets[moved].gpos = t.gpos
	}
	g.members = g.members[:last]
	if len(g.members) == 0 {
		delete(tr.groups, k)
	}
}

// count adds t's share of every count n times (1 or -1); its group must
// exist.
func (tr *Tracker) count(t *target, n int32) {
	tr.tally.add(t, n)
	tr.classify(t, n)
	g := tr.groups[groupKey{t.model, int(t.cohort)}]
	g.byWave[min(int(t.wave), len(g.byWave)-1)] += n
	if t.progress == waiting {
		g.waiting += n
	}
	if n < 0 {
		delete(tr.bad, t.slot)
		delete(tr.retries, t.slot)
		return
	}
	if t.progress == failed || t.progress == rejected {
		tr.bad[t.slot] = struct{}{}
	}
	if t.attempt > 1 || t.progress == retrying {
		tr.retries[t.slot] = struct{}{}
	}
}

// schedule puts t's wake, if it has one, on the heap.
func (tr *Tracker) schedule(t *target) {
	if t.wake != 0 {
		heap.Push(&tr.wakes, wake{at: t.wake, slot: t.slot})
	}
}

// valid reports whether w is still the wake of the target at its slot.
func (tr *Tracker) valid(w wake) bool {
	t := tr.at(w.slot)
	return t != nil && t.wake == w.at
}

// nextWake is the earliest wake of any target, 0 for none.
func (tr *Tracker) nextWake() int64 {
	for len(tr.wakes) > 0 {
		if w := tr.wakes[0]; tr.valid(w) {
			return w.at
		}
		heap.Pop(&tr.wakes)
	}
	return 0
}

// compactWakes drops the wakes of targets that changed since.
func (tr *Tracker) compactWakes() {
	tr.wakes = slices.DeleteFunc(tr.wakes, func(w wake) bool { return !tr.valid(w) })
	heap.Init(&tr.wakes)
}

// end derives the targets again for a rollout that ends in this plan:
// nothing is retried any more, so failures are final.
func (tr *Tracker) end(in *Input) {
	key := tr.key
	key.ending = true
	_ = tr.rebuild(in, tr.state, key) // the spec compiled a moment ago
}

// wake is a time a target changes by itself, unix nanoseconds.
type wake struct {
	at   int64
	slot int32
}

// wakeHeap is a min-heap of wakes by time. Entries of targets that have
// changed since stay until they come up (Tracker.valid).
type wakeHeap []wake

func (h wakeHeap) Len() int           { return len(h) }
func (h wakeHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h wakeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *wakeHeap) Push(x any)        { *h = append(*h, x.(wake)) }
func (h *wakeHeap) Pop() any {
	old := *h
	w := old[len(old)-1]
	*h = old[:len(old)-1]
	return w
}
