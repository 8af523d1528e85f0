package rollout

import (
	"slices"
	"sort"
	"strings"
	"time"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/protocol"
)

// desiredNotices lists the notice topics the started waves call for, within
// the in-progress cap, by walking the started devices: the rules of
// noticeActions written out plainly. The dry run's preview asks it what
// waves would need, and the tests hold noticeActions to it.
//
// Without a label selector, a group notice serves a (model, cohort) whose
// targets are all in started waves; every device a group notice reaches
// is then a target, or filters itself out by model or current version
// exactly as the operator does. Otherwise, and always under a label
// selector, devices get per-device notices.
//
// held reports that the device rate kept a device waiting.
func desiredNotices(in *Input, sel *selection, tr *Tracker, waves []v1.WaveStatus, hold bool) (desired map[string]Action, held bool) {
	started := func(w int16) bool { return int(w) < len(waves) && waves[w].StartTime != nil }
	// Under a cap, which notices go first must not depend on map order:
	// groups by (cohort, model), devices by ID.
	order := make([]*group, 0, len(tr.groups))
	for _, g := range tr.groups {
		order = append(order, g)
	}
	sort.Slice(order, func(i, j int) bool {
		a, b := order[i].key, order[j].key
		if a.cohort != b.cohort {
			return a.cohort < b.cohort
		}
		return a.model < b.model
	})
	// devices lists a group's targets in started waves by ID: only
	// groups that go device by device need it.
	devices := func(g *group) []*target {
		var out []*target
		for _, i := range g.members {
			if t := &tr.targets[i]; started(t.wave) {
				out = append(out, t)
			}
		}
		sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
		return out
	}
	uid := string(in.Rollout.UID)
	has := func(topic string) bool { n, ok := in.Notices[topic]; return ok && n.RolloutUID == uid }
	// Outside maintenance windows, and while the rollout is held, no
	// device gets a new notice; those out already stay.
	open := !hold && sel.windows.Open(in.Now)
	maxInProgress := int(in.Rollout.Spec.Strategy.MaxInProgress)
	outstanding := tr.tally.outstanding()
	budget := in.DeviceBudget
	desired = map[string]Action{}
	for _, g := range order {
		inStarted, complete := g.span(started, sel.perDevice)
		if inStarted == 0 {
			continue
		}
		if complete {
			topic := in.Topics.GroupNotice(g.key.model, g.key.cohort)
			if has(topic) {
				desired[topic] = Action{Topic: topic}
				continue
			}
			fresh := int(g.waiting)
			// New notices respect the in-progress cap, though the first
			// always goes so that a cap below a group's size cannot stall
			// the rollout.
			if maxInProgress > 0 && outstanding > 0 && outstanding+fresh > maxInProgress {
				continue
			}
			// A group larger than the device rate allows now goes out
			// device by device instead.
			if open && (budget < 0 || fresh <= budget) {
				outstanding += fresh
				if budget >= 0 {
					budget -= fresh
				}
				desired[topic] = Action{Topic: topic, Devices: fresh}
				continue
			}
		}
		for _, t := range devices(g) {
			if t.current || t.progress == skipped || sel.skip[t.id] || t.attempt > 1 || t.progress == retrying {
				continue // retries: below; listed devices get none
			}
			topic := in.Topics.DeviceNotice(t.id)
			a := Action{Topic: topic, Device: t.id, Attempt: 1}
			if !has(topic) && t.progress == waiting {
				if maxInProgress > 0 && outstanding >= maxInProgress || !open {
					continue
				}
				if budget == 0 {
					held = true
					continue
				}
				outstanding++
				if budget > 0 {
					budget--
				}
				a.Devices = 1
			}
			desired[topic] = a
		}
	}
	// Retries go device by device whatever the group does, with the
	// next attempt once the backoff has passed, and are paced like new
	// devices. A device's retry notice stays while it works on it.
	again := tr.retryTargets(func(t *target) bool { return started(t.wave) })
	for _, t := range again {
		if t.current || t.progress == skipped || sel.skip[t.id] || (t.attempt <= 1 && t.progress != retrying) {
			continue // a listed device's retry notice is withdrawn
		}
		topic := in.Topics.DeviceNotice(t.id)
		a := Action{Topic: topic, Device: t.id, Attempt: int(t.attempt)}
		if t.progress == retrying && in.Now.Unix() >= t.retryAt {
			capped := maxInProgress > 0 && outstanding >= maxInProgress
			if open && !capped && budget != 0 {
				outstanding++
				if budget > 0 {
					budget--
				}
				a.Attempt, a.Devices = int(t.attempt)+1, 1
				desired[topic] = a
				continue
			}
			held = held || (open && !capped && budget == 0)
			// Blocked for now: the notice of the attempt that
			// failed stays, so nothing is withdrawn and sent anew.
		}
		if n, ok := in.Notices[topic]; ok && n.RolloutUID == uid && max(n.Attempt, 1) == int(t.attempt) {
			desired[topic] = a
		}
		// Otherwise it is not on the broker in this form: the device
		// has what it needs from the group notice.
	}
	return desired, held
}

// retryTargets is the targets on the retry path that keep says to plan,
// in the groups' order and then by ID, as the device rate takes them.
func (tr *Tracker) retryTargets(keep func(*target) bool) []*target {
	again := make([]*target, 0, len(tr.retries))
	for slot := range tr.retries {
		if t := tr.at(slot); keep(t) {
			again = append(again, t)
		}
	}
	slices.SortFunc(again, func(a, b *target) int {
		if a.cohort != b.cohort {
			return int(a.cohort) - int(b.cohort)
		}
		if c := strings.Compare(a.model, b.model); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	return again
}

// span counts g's targets in started waves, and reports whether that is
// all of them, so that a group notice may serve it (never under
// perDevice).
func (g *group) span(started func(wave int16) bool, perDevice bool) (inStarted int32, complete bool) {
	complete = !perDevice
	for w, n := range g.byWave {
		if started(int16(w)) {
			inStarted += n
		} else if n > 0 {
			complete = false
		}
	}
	return inStarted, complete
}

// DeviceRate is the rollout's device rate per minute given how many of its
// devices succeeded: the ramp's step, capped by maxDevicesPerMinute; 0
// means no limit.
func DeviceRate(s *v1.RolloutStrategy, succeeded int) int {
	limit := int(s.MaxDevicesPerMinute)
	r := s.Ramp
	if r == nil || r.StartPerMinute <= 0 || r.SuccessesPerStep <= 0 {
		return limit
	}
	factor := max(int(r.Factor), 2)
	rate := int(r.StartPerMinute)
	for steps := succeeded / int(r.SuccessesPerStep); steps > 0; steps-- {
		if limit > 0 && rate >= limit || rate > 1<<40 {
			break
		}
		rate *= factor
	}
	if limit > 0 {
		rate = min(rate, limit)
	}
	return rate
}

// NoticeWindows are the maintenance windows of ro's notices.
func NoticeWindows(ro *v1.FirmwareRollout) []protocol.MaintenanceWindow {
	var out []protocol.MaintenanceWindow
	for _, w := range ro.Spec.MaintenanceWindows {
		out = append(out, protocol.MaintenanceWindow{Schedule: w.Schedule, DurationSeconds: int64(w.Duration.Seconds()), TimeZone: w.TimeZone})
	}
	return out
}

// noticeActions is the plan's notices to publish and withdraw: what
// desiredNotices, diffed against the broker's retained notices, decides
// (TestTrackerDecidesLikePlan holds it to that), read from the tracker's
// counts and queues rather than from a walk over the started devices.
// A group going device by device costs a walk over its members only when
// one of its own notices needs publishing again, or, under group notices,
// withdrawing. It returns a retry delay when the publish budget cut the
// list short, and held when the device rate kept a device waiting.
func (tr *Tracker) noticeActions(in *Input, waves []v1.WaveStatus, hold bool) (actions []Action, retry time.Duration, held bool) {
	sel := tr.sel
	if started := startedWaves(waves); !slices.Equal(started, tr.started) {
		tr.reclassify(started)
	}
	isStarted := func(w int16) bool { return int(w) < len(tr.started) && tr.started[w] }
	order := tr.groupOrder()
	open := !hold && sel.windows.Open(in.Now)
	maxInProgress := int(in.Rollout.Spec.Strategy.MaxInProgress)
	outstanding := tr.tally.outstanding()
	capped := func() bool { return maxInProgress > 0 && outstanding >= maxInProgress }
	budget := in.DeviceBudget
	var publish, withdraw []Action
	wantGroup := map[string]bool{}
	now := in.Now.UnixNano()
	for _, g := range order {
		inStarted, complete := g.span(isStarted, sel.perDevice)
		if inStarted == 0 {
			continue // nothing of it is classified as started
		}
		byDevice := true
		if complete {
			topic := in.Topics.GroupNotice(g.key.model, g.key.cohort)
			fresh := int(g.waiting) // devices it would reach anew
			switch n, has := tr.notices.others[topic]; {
			case has:
				wantGroup[topic] = true
				if !n.fresh(1, now) {
					publish = append(publish, Action{Topic: topic})
				}
				byDevice = false
			case maxInProgress > 0 && outstanding > 0 && outstanding+fresh > maxInProgress:
				// New notices respect the cap, though the first always
				// goes so that a cap below a group's size cannot stall
				// the rollout.
				byDevice = false
			case open && (budget < 0 || fresh <= budget):
				outstanding += fresh
				if budget >= 0 {
					budget -= fresh
				}
				wantGroup[topic] = true
				publish = append(publish, Action{Topic: topic, Devices: fresh})
				byDevice = false
			}
			// Otherwise a group larger than the device rate allows now
			// goes device by device.
		}
		if !byDevice {
			if g.owned > 0 {
				// Its members' own first notices give way to the group's.
				for _, i := range g.members {
					if t := &tr.targets[i]; t.owned {
						withdraw = append(withdraw, Action{Topic: in.Topics.DeviceNotice(t.id), Withdraw: true})
					}
				}
			}
			continue
		}
		if g.renewals > 0 {
			for _, i := range g.members {
				if t := &tr.targets[i]; t.work == renewNotice {
					publish = append(publish, Action{Topic: in.Topics.DeviceNotice(t.id), Device: t.id, Attempt: 1})
				}
			}
		}
		if g.firstNotices == 0 || capped() || !open {
			continue
		}
		if budget == 0 {
			held = true
			continue
		}
		members := func(yield func(*target)) {
			for _, i := range g.members {
				yield(&tr.targets[i])
			}
		}
		for _, e := range tr.read(&g.queue, waitFirst, int(g.firstNotices), members) {
			t := tr.waiter(waitFirst, e)
			if t == nil {
				continue
			}
			if capped() {
				break
			}
			if budget == 0 {
				held = true
				break
			}
			outstanding++
			if budget > 0 {
				budget--
			}
			publish = append(publish, Action{Topic: in.Topics.DeviceNotice(t.id), Device: t.id, Attempt: 1, Devices: 1})
		}
		tr.dropServed(&g.queue, waitFirst)
	}
	// Retries go device by device whatever the group does, with the next
	// attempt once the backoff has passed, and are paced like new devices,
	// in the groups' order. A device's retry notice stays while it works
	// on it, or while its next attempt waits for the device rate.
	var sent map[int32]bool
	if rw := &tr.retryWork; rw.dues > 0 && open && !capped() {
		retryPath := func(yield func(*target)) {
			for slot := range tr.retries {
				yield(tr.at(slot))
			}
		}
		for _, e := range tr.read(&rw.queue, waitRetry, rw.dues, retryPath) {
			t := tr.waiter(waitRetry, e)
			if t == nil {
				continue
			}
			if budget == 0 || capped() {
				held = held || budget == 0 && !capped()
				break
			}
			outstanding++
			if budget > 0 {
				budget--
			}
			if sent == nil {
				sent = map[int32]bool{}
			}
			sent[t.slot] = true
			if n, own := tr.notices.byDevice[t.id]; !(own && n.fresh(int(t.attempt)+1, now)) {
				publish = append(publish, Action{Topic: in.Topics.DeviceNotice(t.id), Device: t.id, Attempt: int(t.attempt) + 1, Devices: 1})
			}
		}
		tr.dropServed(&rw.queue, waitRetry)
	}
	for slot := range tr.retryWork.renewals {
		if t := tr.at(slot); !sent[slot] {
			publish = append(publish, Action{Topic: in.Topics.DeviceNotice(t.id), Device: t.id, Attempt: int(t.attempt)})
		}
	}
	for slot := range tr.retryWork.drops {
		if t := tr.at(slot); !sent[slot] {
			// Not on the broker in the form this attempt needs: the
			// device has what it needs from the group notice.
			withdraw = append(withdraw, Action{Topic: in.Topics.DeviceNotice(t.id), Withdraw: true})
		}
	}
	for id := range tr.loose {
		withdraw = append(withdraw, Action{Topic: in.Topics.DeviceNotice(id), Withdraw: true})
	}
	for topic := range tr.notices.others {
		if !wantGroup[topic] {
			withdraw = append(withdraw, Action{Topic: topic, Withdraw: true})
		}
	}
	// In topic order, as the budget cuts: the same notices go first
	// whatever the maps' order.
	slices.SortFunc(publish, func(a, b Action) int { return strings.Compare(a.Topic, b.Topic) })
	if b := in.NoticeBudget; b >= 0 && len(publish) > b {
		publish, retry = publish[:b], rateLimitRetry
	}
	slices.SortFunc(withdraw, func(a, b Action) int { return strings.Compare(a.Topic, b.Topic) })
	return append(publish, withdraw...), retry, held
}

// withdrawals withdraws every notice of the rollout, in topic order.
func (tr *Tracker) withdrawals(topics protocol.Topics) []Action {
	all := make([]string, 0, len(tr.notices.byDevice)+len(tr.notices.others))
	for id := range tr.notices.byDevice {
		all = append(all, topics.DeviceNotice(id))
	}
	for topic := range tr.notices.others {
		all = append(all, topic)
	}
	slices.Sort(all)
	var out []Action
	for _, topic := range all {
		out = append(out, Action{Topic: topic, Withdraw: true})
	}
	return out
}

// groupOrder is the groups in (cohort, model) order: under a cap, which
// notices go first must not depend on map order.
func (tr *Tracker) groupOrder() []*group {
	order := make([]*group, 0, len(tr.groups))
	for _, g := range tr.groups {
		order = append(order, g)
	}
	slices.SortFunc(order, func(a, b *group) int {
		if a.key.cohort != b.key.cohort {
			return a.key.cohort - b.key.cohort
		}
		return strings.Compare(a.key.model, b.key.model)
	})
	return order
}
