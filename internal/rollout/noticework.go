package rollout

import (
	"math"
	"slices"
	"sort"
	"strings"

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
)

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
	if n > 0 {
		t.work, t.owned, t.loose = tr.workOf(t)
	}
	switch t.work {
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
	case n > 0 || t.loose:
		delete(tr.loose, t.id)
	}
}

// workOf is t's notice work now; owned reports that its own notice of
// ours is out and it is served first-attempt notices, loose that its own
// notice is out and no per-device rule keeps it.
func (tr *Tracker) workOf(t *target) (work noticeWork, owned, loose bool) {
	ref, own := tr.notices.byDevice[t.id]
	if !tr.servable(t) {
		return noWork, false, own
	}
	if retryPath(t) {
		return noWork, false, false // the retry plan decides
	}
	switch {
	case t.progress == waiting && !own:
		return firstNotice, false, false
	case own && ref.fresh(1, tr.now):
		return keepNotice, true, false
	}
	return renewNotice, own, false
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
	tr.startLoose()
	for _, g := range tr.groups {
		g.firstNotices, g.renewals, g.owned, g.queue = 0, 0, 0, nil
	}
	for i := range tr.targets {
		t := &tr.targets[i]
		t.queued = false
		tr.classify(t, 1)
	}
	tr.trimLoose()
}

// startLoose takes every device notice for loose, until the targets,
// classified next, say otherwise (trimLoose then).
func (tr *Tracker) startLoose() {
	tr.loose = make(map[string]struct{}, len(tr.notices.byDevice))
	for id := range tr.notices.byDevice {
		tr.loose[id] = struct{}{}
	}
}

// trimLoose gives back the room startLoose made for the loose notices:
// usually few are left of a million.
func (tr *Tracker) trimLoose() {
	if len(tr.loose) < len(tr.notices.byDevice)/4 {
		// Copied key by key: a map's clone keeps its size.
		small := make(map[string]struct{}, len(tr.loose))
		for id := range tr.loose {
			small[id] = struct{}{}
		}
		tr.loose = small
	}
}

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
