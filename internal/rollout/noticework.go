package rollout

import (
	"math"
	"slices"
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
// out again or go, and those whose next attempt is due, queued.
type retryWork struct {
	renewals, drops map[int32]struct{}
	dues            int
	queue           waitQueue
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
		if n > 0 {
			rw.queue.add(waitRetry, t)
		}
	}
	switch t.work {
	case renewRetry:
		setMember(&rw.renewals, t.slot, n > 0)
	case dropRetry:
		setMember(&rw.drops, t.slot, n > 0)
	case firstNotice:
		g.firstNotices += n
		if n > 0 {
			g.queue.add(waitFirst, t)
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
		g.firstNotices, g.renewals, g.owned, g.queue = 0, 0, 0, waitQueue{}
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

// settleLoose decides whether the device id's own notice is loose where
// its target cannot (classify): it has none, or no target holds it.
func (tr *Tracker) settleLoose(id string) {
	switch e, own := tr.notices.byDevice[id]; {
	case !own:
		delete(tr.loose, id)
	case e.holder == 0:
		tr.loose[id] = struct{}{}
	}
}

// waitQueue is devices waiting for a notice in the order the cap and the
// device rate serve them, (cohort, model, ID): a group's first-notice
// candidates, or the due retries. It is built when first read; devices
// that start waiting later are pending until the next read merges them
// in. Entries whose device no longer waits are skipped, dropped once they
// reach the front (dropServed), and the queue is built again once they
// outnumber the waiting.
type waitQueue struct {
	entries, pending []queueEntry // entries nil: not built
}

// queueEntry is a device in a waitQueue.
type queueEntry struct {
	id, model string
	slot      int32
	cohort    uint8
}

func (e queueEntry) compare(o queueEntry) int {
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

// waitKind is what a waitQueue's devices wait for.
type waitKind uint8

const (
	waitFirst waitKind = iota // a first notice
	waitRetry                 // a due retry
)

// queued is t's mark of having an entry in the queue of kind k.
func (k waitKind) queued(t *target) *bool {
	if k == waitRetry {
		return &t.dueQueued
	}
	return &t.queued
}

// waits reports whether t waits in a queue of kind k.
func (k waitKind) waits(t *target) bool {
	if k == waitRetry {
		return t.due
	}
	return t.work == firstNotice
}

// minQueue is how many entries that no longer count a queue may carry
// before it is built again, however few count.
const minQueue = 64

// add queues t, which now waits, unless it has an entry still (one from
// before it stopped waiting keeps its place).
func (q *waitQueue) add(k waitKind, t *target) {
	if m := k.queued(t); q.entries != nil && !*m {
		q.pending = append(q.pending, queueEntry{t.id, t.model, t.slot, t.cohort})
		*m = true
	}
}

// read returns q's entries in order. count is how many devices wait in
// it; each visits the targets that may (a group's members, the retry
// path), for building it.
func (tr *Tracker) read(q *waitQueue, k waitKind, count int, each func(yield func(*target))) []queueEntry {
	if len(q.entries)+len(q.pending) > 2*count+minQueue {
		// Mostly devices that stopped waiting somewhere in the middle:
		// start over rather than carry them.
		for _, e := range slices.Concat(q.entries, q.pending) {
			if t := tr.at(e.slot); t != nil && t.id == e.id && t.model == e.model {
				*k.queued(t) = false
			}
		}
		*q = waitQueue{}
	}
	if q.entries == nil {
		q.entries = make([]queueEntry, 0, count)
		each(func(t *target) {
			if k.waits(t) {
				q.entries = append(q.entries, queueEntry{t.id, t.model, t.slot, t.cohort})
				*k.queued(t) = true
			}
		})
		slices.SortFunc(q.entries, queueEntry.compare)
		return q.entries
	}
	if len(q.pending) > 0 {
		slices.SortFunc(q.pending, queueEntry.compare)
		merged := make([]queueEntry, 0, len(q.entries)+len(q.pending))
		i, j := 0, 0
		for i < len(q.entries) || j < len(q.pending) {
			var e queueEntry
			if j == len(q.pending) || i < len(q.entries) && q.entries[i].compare(q.pending[j]) <= 0 {
				e, i = q.entries[i], i+1
			} else {
				e, j = q.pending[j], j+1
			}
			// A device that left and came back at its slot may still
			// have its old entry: one is enough.
			if n := len(merged); n == 0 || merged[n-1] != e {
				merged = append(merged, e)
			}
		}
		q.entries, q.pending = merged, nil
	}
	return q.entries
}

// waiter returns the target e names if it still waits in its queue, nil
// otherwise. A device whose model changed is queued in its new group too,
// and must be served from there alone.
func (tr *Tracker) waiter(k waitKind, e queueEntry) *target {
	if t := tr.at(e.slot); t != nil && t.id == e.id && t.model == e.model && *k.queued(t) && k.waits(t) {
		return t
	}
	return nil
}

// dropServed drops the entries at the front of q whose devices no longer
// wait: those its notices reached. An entry whose device waits again
// stays, so it is never queued twice.
func (tr *Tracker) dropServed(q *waitQueue, k waitKind) {
	n := 0
	for n < len(q.entries) && tr.waiter(k, q.entries[n]) == nil {
		if t := tr.at(q.entries[n].slot); t != nil && t.id == q.entries[n].id && t.model == q.entries[n].model {
			*k.queued(t) = false
		}
		n++
	}
	if n > 0 {
		q.entries = slices.Delete(q.entries, 0, n)
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
