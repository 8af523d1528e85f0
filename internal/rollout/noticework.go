package rollout

import (
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
)

// noticeWork is what a target asks of per-device notices, were its group
// to go device by device: the part of desiredNotices that depends on the
// target alone, kept as targets change so that a plan reads counts and
// short lists instead of walking every started device (tracker.count
// calls classify).
type noticeWork uint8

const (
	// noWork: its wave has not started, it is current, skipped or listed,
	// or it is on the retry path (retries are planned on their own).
	noWork noticeWork = iota
	// firstNotice: it waits for its first notice, which the cap and the
	// device rate hand out in (cohort, model, ID) order.
	firstNotice
	// keepNotice: its own notice of the first attempt is out and fresh.
	keepNotice
	// renewNotice: it should have its own notice of the first attempt,
	// and the broker holds none, another attempt's, one with other
	// maintenance windows, or one due for republishing before it expires.
	renewNotice
	// On the retry path, unless its next attempt goes out now (due):
	// keepRetry, its own notice of its attempt is out and fresh;
	// renewRetry, that notice is due for republishing; dropRetry, its own
	// notice is of another attempt and goes (the group's serves it).
	keepRetry
	renewRetry
	dropRetry
)

// retryWork is the notice work of the devices on the retry path, kept
// like the groups' (classify): the slots of those whose notice must go
// out again or go, and those whose next attempt is due, queued in the
// order the device rate serves them (cohort, model, ID).
type retryWork struct {
	renewals, drops map[int32]struct{}
	dues            int
	// queue is built when first needed; pending holds those that came
	// due since, merged in before the queue is read.
	queue, pending []dueEntry
}

// dueEntry is a device in the queue of due retries.
type dueEntry struct {
	id, model string
	slot      int32
	cohort    uint8
}

func (e dueEntry) compare(o dueEntry) int {
	if e.cohort != o.cohort {
		return int(e.cohort) - int(o.cohort)
	}
	if c := strings.Compare(e.model, o.model); c != 0 {
		return c
	}
	if c := strings.Compare(e.id, o.id); c != 0 {
		return c
	}
	return int(e.slot) - int(o.slot)
}

// servable reports whether a notice of the rollout may serve t now: its
// wave has started and nothing rules it out.
func (tr *Tracker) servable(t *target) bool {
	return int(t.wave) < len(tr.started) && tr.started[t.wave] && !t.current && t.progress != skipped && !tr.sel.skip[t.id]
}

// retryPath reports whether t's notices are planned as retries.
func retryPath(t *target) bool { return t.attempt > 1 || t.progress == retrying }

// classify adds t's notice work to its group's counts, and its own notice
// to the loose ones when no per-device rule keeps it (n is 1), or takes
// what it added out again (n is -1; the work it was counted under is kept
// in t, since the notices and the time may have changed since).
func (tr *Tracker) classify(t *target, n int32) {
	g := tr.groups[groupKey{t.model, int(t.cohort)}]
	if e, own := tr.notices.byDevice[t.id]; own && (n > 0 || e.holder == t.slot+1) {
		e.holder = 0
		if n > 0 {
			e.holder = t.slot + 1
		}
		tr.notices.byDevice[t.id] = e
	}
	if n > 0 {
		t.work, t.owned, t.loose, t.due = tr.workOf(t)
	}
	rw := &tr.retryWork
	if t.due {
		rw.dues += int(n)
		if n > 0 && !t.dueQueued && rw.queue != nil {
			rw.pending = append(rw.pending, dueEntry{t.id, t.model, t.slot, t.cohort})
			t.dueQueued = true
		}
	}
	switch t.work {
	case renewRetry:
		setMember(&rw.renewals, t.slot, n > 0)
	case dropRetry:
		setMember(&rw.drops, t.slot, n > 0)
	case firstNotice:
		g.firstNotices += n
		if n > 0 && !t.queued && g.queue != nil {
			g.enqueue(t)
		}
	case renewNotice:
		g.renewals += n
	}
	if t.owned {
		g.owned += n
	}
	// A device's own notice is loose or not by what its target says;
	// one of a device no target stands for is loose (remove, update).
	switch {
	case n > 0 && t.loose:
		tr.loose[t.id] = struct{}{}
	case n > 0:
		delete(tr.loose, t.id)
	case t.loose:
		// Unless the device's target at another slot holds the notice
		// now: one that moved to a lower slot is derived there before
		// its old slot is cleared.
		if e, own := tr.notices.byDevice[t.id]; !own || e.holder == 0 {
			delete(tr.loose, t.id)
		}
	}
}

// workOf is t's notice work now; owned reports that its own notice of
// ours is out and it is served first-attempt notices, loose that its own
// notice is out and no per-device rule keeps it, due that its next
// attempt is due.
func (tr *Tracker) workOf(t *target) (work noticeWork, owned, loose, due bool) {
	ref, own := tr.notices.byDevice[t.id]
	if !tr.servable(t) {
		return noWork, false, own, false
	}
	if retryPath(t) {
		due = t.progress == retrying && unixSeconds(tr.now) >= t.retryAt
		switch {
		case own && int(ref.attempt) == int(t.attempt) && ref.fresh(int(t.attempt), tr.now):
			return keepRetry, false, false, due
		case own && int(ref.attempt) == int(t.attempt):
			return renewRetry, false, false, due
		case own:
			return dropRetry, false, false, due
		}
		return noWork, false, false, due
	}
	switch {
	case t.progress == waiting && !own:
		return firstNotice, false, false, false
	case own && ref.fresh(1, tr.now):
		return keepNotice, true, false, false
	}
	return renewNotice, own, false, false
}

// due is when n is to be published again, unix nanoseconds, 0 for
// never: the work of the device it reaches changes then.
func (n seenNotice) due() int64 {
	if n.seenAt > math.MaxInt64-int64(NoticeExpiry/2) {
		return 0
	}
	return n.seenAt + int64(NoticeExpiry/2)
}

// startedWaves lists which waves have started.
func startedWaves(waves []v1.WaveStatus) []bool {
	s := make([]bool, len(waves))
	for i := range waves {
		s[i] = waves[i].StartTime != nil
	}
	return s
}

// reclassify counts every target's notice work again, for another set of
// started waves: once per wave start, a walk the wave's notices cost
// anyway.
func (tr *Tracker) reclassify(started []bool) {
	tr.started = started
	tr.loose = map[string]struct{}{}
	for _, g := range tr.groups {
		g.firstNotices, g.renewals, g.owned, g.queue = 0, 0, 0, nil
	}
	tr.retryWork = retryWork{}
	for i := range tr.targets {
		t := &tr.targets[i]
		t.queued, t.dueQueued = false, false
		tr.classify(t, 1)
	}
	tr.looseOrphans()
}

// looseOrphans adds to the loose notices those of devices no target
// holds, once every target is classified.
func (tr *Tracker) looseOrphans() {
	for id, e := range tr.notices.byDevice {
		if e.holder == 0 {
			tr.loose[id] = struct{}{}
		}
	}
}

// minQueue is how many entries that no longer count a queue may carry
// before it is built again, however few count.
const minQueue = 64

// queued is a first-notice candidate in its group's queue.
type queued struct {
	id   string
	slot int32
}

// enqueue puts t in its group's queue, in ID order, unless an entry of
// its from before it left the group is still there.
func (g *group) enqueue(t *target) {
	i := sort.Search(len(g.queue), func(i int) bool { return g.queue[i].id >= t.id })
	t.queued = true
	for j := i; j < len(g.queue) && g.queue[j].id == t.id; j++ {
		if g.queue[j].slot == t.slot {
			return
		}
	}
	g.queue = slices.Insert(g.queue, i, queued{t.id, t.slot})
}

// firstNoticeQueue returns g's first-notice candidates in ID order,
// building the queue the first time: later candidates are inserted as
// they come (classify), and entries that are no longer candidates are
// skipped (candidate) and dropped once at the front (dropServed).
func (tr *Tracker) firstNoticeQueue(g *group) []queued {
	if len(g.queue) > 2*int(g.firstNotices)+minQueue {
		// Mostly devices that stopped waiting somewhere in the middle:
		// start over rather than carry them.
		for _, q := range g.queue {
			if t := tr.at(q.slot); t != nil && t.id == q.id && t.model == g.key.model {
				t.queued = false
			}
		}
		g.queue = nil
	}
	if g.queue == nil {
		g.queue = make([]queued, 0, g.firstNotices)
		for _, i := range g.members {
			if t := &tr.targets[i]; t.work == firstNotice {
				g.queue = append(g.queue, queued{t.id, t.slot})
				t.queued = true
			}
		}
		slices.SortFunc(g.queue, func(a, b queued) int { return strings.Compare(a.id, b.id) })
	}
	return g.queue
}

// candidate returns the target q in g's queue names if it still waits
// for its first notice in g, nil otherwise. A device whose model changed
// is queued in its new group too, and must be served from there alone.
func (tr *Tracker) candidate(g *group, q queued) *target {
	if t := tr.at(q.slot); t != nil && t.id == q.id && t.model == g.key.model && t.queued && t.work == firstNotice {
		return t
	}
	return nil
}

// dropServed drops the entries at the front of g's queue that are no
// longer candidates: the devices its notices reached. An entry whose
// device became a candidate again stays, so it is never queued twice.
func (tr *Tracker) dropServed(g *group) {
	n := 0
	for n < len(g.queue) && tr.candidate(g, g.queue[n]) == nil {
		if t := tr.at(g.queue[n].slot); t != nil && t.id == g.queue[n].id && t.model == g.key.model {
			t.queued = false
		}
		n++
	}
	if n > 0 {
		g.queue = slices.Delete(g.queue, 0, n)
	}
}

// setMember adds slot to the set *m (in) or takes it out.
func setMember(m *map[int32]struct{}, slot int32, in bool) {
	if in {
		if *m == nil {
			*m = map[int32]struct{}{}
		}
		(*m)[slot] = struct{}{}
	} else {
		delete(*m, slot)
	}
}

// unixSeconds is a unix time in nanoseconds in whole seconds, as
// time.Time.Unix gives it.
func unixSeconds(ns int64) int64 {
	s := ns / int64(time.Second)
	if ns < 0 && ns%int64(time.Second) != 0 {
		s--
	}
	return s
}

// dueQueue returns the due retries in the order the device rate serves
// them, building the queue from the retry path the first time and
// merging in those that came due since.
func (tr *Tracker) dueQueue() []dueEntry {
	rw := &tr.retryWork
	if len(rw.queue)+len(rw.pending) > 2*rw.dues+minQueue {
		for _, e := range append(rw.queue, rw.pending...) {
			if t := tr.at(e.slot); t != nil && t.id == e.id && t.model == e.model {
				t.dueQueued = false
			}
		}
		rw.queue, rw.pending = nil, nil
	}
	if rw.queue == nil {
		rw.queue, rw.pending = make([]dueEntry, 0, rw.dues), nil
		for slot := range tr.retries {
			if t := tr.at(slot); t.due {
				rw.queue = append(rw.queue, dueEntry{t.id, t.model, t.slot, t.cohort})
				t.dueQueued = true
			}
		}
		slices.SortFunc(rw.queue, dueEntry.compare)
		return rw.queue
	}
	if len(rw.pending) > 0 {
		slices.SortFunc(rw.pending, dueEntry.compare)
		merged := make([]dueEntry, 0, len(rw.queue)+len(rw.pending))
		i, j := 0, 0
		for i < len(rw.queue) || j < len(rw.pending) {
			var e dueEntry
			if j == len(rw.pending) || i < len(rw.queue) && rw.queue[i].compare(rw.pending[j]) <= 0 {
				e, i = rw.queue[i], i+1
			} else {
				e, j = rw.pending[j], j+1
			}
			// A device that was due, stopped, and came due again may
			// still have its old entry: one is enough.
			if n := len(merged); n == 0 || merged[n-1] != e {
				merged = append(merged, e)
			}
		}
		rw.queue, rw.pending = merged, nil
	}
	return rw.queue
}

// dueTarget returns the target e names if its retry is still due, nil
// otherwise.
func (tr *Tracker) dueTarget(e dueEntry) *target {
	if t := tr.at(e.slot); t != nil && t.id == e.id && t.model == e.model && t.dueQueued && t.due {
		return t
	}
	return nil
}

// dropDueServed drops the entries at the front of the due queue whose
// retries are no longer due: those that went out.
func (tr *Tracker) dropDueServed() {
	q := tr.retryWork.queue
	n := 0
	for n < len(q) && tr.dueTarget(q[n]) == nil {
		if t := tr.at(q[n].slot); t != nil && t.id == q[n].id && t.model == q[n].model {
			t.dueQueued = false
		}
		n++
	}
	if n > 0 {
		tr.retryWork.queue = slices.Delete(q, 0, n)
	}
}
