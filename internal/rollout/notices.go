package rollout

import (
	"sort"
	"time"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/protocol"
)

// desiredNotices lists the notice topics the started waves call for, within
// the in-progress cap. Without a label selector, a group notice serves a
// (model, cohort) whose targets are all in started waves; every device a
// group notice reaches is then a target, or filters itself out by model or
// current version exactly as the operator does. Otherwise, and always under
// a label selector, devices get per-device notices.
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
		// How many of the group's targets are in started waves, and
		// whether that is all of them (then a group notice serves it).
		inStarted, complete := int32(0), !sel.perDevice
		for w, n := range g.byWave {
			if started(int16(w)) {
				inStarted += n
			} else if n > 0 {
				complete = false
			}
		}
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
	rank := make(map[groupKey]int, len(order))
	for i, g := range order {
		rank[g.key] = i
	}
	again := make([]*target, 0, len(tr.retries))
	for slot := range tr.retries {
		if t := tr.at(slot); started(t.wave) {
			again = append(again, t)
		}
	}
	sort.Slice(again, func(i, j int) bool {
		a, b := again[i], again[j]
		if ra, rb := rank[groupKey{a.model, int(a.cohort)}], rank[groupKey{b.model, int(b.cohort)}]; ra != rb {
			return ra < rb
		}
		return a.id < b.id
	})
	now := in.Now.Unix()
	for _, t := range again {
		if t.current || t.progress == skipped || sel.skip[t.id] || (t.attempt <= 1 && t.progress != retrying) {
			continue // a listed device's retry notice is withdrawn
		}
		topic := in.Topics.DeviceNotice(t.id)
		a := Action{Topic: topic, Device: t.id, Attempt: int(t.attempt)}
		if t.progress == retrying && now >= t.retryAt {
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

// noticeActions diffs desired notices against the broker's retained ones,
// within the publish budget. It returns a retry delay when the budget cut
// the list short.
func noticeActions(in *Input, desired map[string]Action, withdrawAll bool) ([]Action, time.Duration) {
	uid := string(in.Rollout.UID)
	topics := make([]string, 0, len(desired))
	for topic := range desired {
		topics = append(topics, topic)
	}
	sort.Strings(topics)
	var actions []Action
	budget := in.NoticeBudget
	var retry time.Duration
	windows := protocol.WindowsKey(NoticeWindows(in.Rollout))
	for _, topic := range topics {
		// A notice carries an MQTT 5 message expiry; publish it again,
		// with the same bytes, well before the broker drops it. One whose
		// maintenance windows changed in the spec goes out again too, so
		// devices install by the windows the operator times them by.
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
		if n.RolloutUID != uid {
			continue
		}
		if _, want := desired[topic]; !want || withdrawAll {
			ours = append(ours, topic)
		}
	}
	sort.Strings(ours)
	for _, topic := range ours {
		actions = append(actions, Action{Topic: topic, Withdraw: true})
	}
	return actions, retry
}
