package controllers

import (
	"fmt"
	"sort"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/internal/fleet"
	"github.com/heraldiot/herald/protocol"
)

// planInput is everything a rollout decision depends on. Planning is a
// pure function of it, so every rule of the campaign is unit-testable.
type planInput struct {
	rollout *v1.FirmwareRollout
	// devices visits the fleet's devices; the callback must not keep them.
	devices func(func(*fleet.Device))
	notices map[string]fleet.NoticeRef // retained notices on the broker, by topic
	topics  protocol.Topics
	now     time.Time
	// offlineGrace is the fleet's grace before an offline device stops
	// holding back wave completion.
	offlineGrace time.Duration
	// supersededModels are this rollout's models that a newer rollout for
	// the same fleet has taken over.
	supersededModels map[string]bool
	// noticeBudget is how many new notices may be published now (rate limit); <0 means unlimited.
	noticeBudget int
}

// noticeAction is a retained notice to publish or withdraw.
type noticeAction struct {
	topic    string
	withdraw bool
	// device is set for per-device notices.
	device string
}

// planOutput is the decided status and broker actions.
type planOutput struct {
	status       v1.FirmwareRolloutStatus
	actions      []noticeAction
	requeueAfter time.Duration
	// events are transitions worth a Kubernetes Event: (type, reason, message).
	events [][3]string
	// withdrawAll is set when every notice of the rollout must go (cancel, abort).
	withdrawAll  bool
	cancelNotice bool
}

// deviceProgress is where one targeted device stands in this rollout.
type deviceProgress byte

const (
	progWaiting deviceProgress = iota
	progNotified
	progInProgress
	progSucceeded
	progFailed
	progRejected
	progCanceled
)

func (p deviceProgress) finished() bool { return p >= progSucceeded }

type targetDevice struct {
	id         string
	model      string
	group      string // the group notice topic that reaches it
	cohort     int
	wave       int // index of the wave that covers it
	progress   deviceProgress
	current    bool // already on the target version
	offline    bool // offline beyond the grace period
	reason     string
	reportedAt int64
	// deadline is when an in-progress device times out (unix seconds).
	deadline int64
}

// plan decides the rollout's next step.
func plan(in planInput) (planOutput, error) {
	r := in.rollout
	prev := r.Status
	out := planOutput{}
	st := v1.FirmwareRolloutStatus{
		ObservedGeneration: r.Generation,
		Conditions:         prev.Conditions,
		Phase:              prev.Phase,
		StartTime:          prev.StartTime,
		CompletionTime:     prev.CompletionTime,
	}
	// A finished rollout's status is final: later device traffic (late
	// joiners on a retained notice, a newer rollout) does not rewrite its
	// result. Aborted and canceled rollouts keep withdrawing whatever of
	// theirs is still on the broker; a succeeded one can still be canceled.
	if prev.Phase.Terminal() && prev.Phase != v1.PhaseFailed && !(prev.Phase == v1.PhaseSucceeded && r.Spec.Canceled) {
		out.status = *prev.DeepCopy()
		out.status.ObservedGeneration = r.Generation
		if prev.Phase != v1.PhaseSucceeded {
			out.actions, _ = noticeActions(in, nil, true)
		}
		return out, nil
	}
	superseded := len(r.Spec.Firmware.Models) > 0
	for _, m := range r.Spec.Firmware.Models {
		superseded = superseded && in.supersededModels[m]
	}

	waves := r.Spec.Strategy.Waves
	st.Waves = make([]v1.WaveStatus, len(waves))
	for i := range waves {
		st.Waves[i].State = v1.WavePending
		if i < len(prev.Waves) {
			st.Waves[i].StartTime = prev.Waves[i].StartTime
			st.Waves[i].CompletionTime = prev.Waves[i].CompletionTime
		}
	}

	targets, groupsClean, err := selectTargets(in)
	if err != nil {
		return out, err
	}
	uid := string(r.UID)
	// Which devices a notice of ours reaches: by group topic, or by device
	// for per-device notices. Looked up per device, so built once here
	// from the (few) notices rather than per device from topic strings.
	ownDevices := map[string]bool{}
	for topic, n := range in.notices {
		if n.RolloutUID != uid {
			continue
		}
		if id, kind, err := in.topics.ParseDeviceTopic(topic); err == nil && kind == protocol.TopicNotice {
			ownDevices[id] = true
		}
	}
	notified := func(d *targetDevice) bool {
		if ownDevices[d.id] {
			return true
		}
		n, ok := in.notices[d.group]
		return ok && n.RolloutUID == uid
	}
	for i := range targets {
		d := &targets[i]
		if !d.progress.finished() && d.progress != progInProgress && notified(d) {
			d.progress = progNotified
		}
	}

	// Failure policy over devices that finished in this rollout.
	var finished, failed int
	for i := range targets {
		switch targets[i].progress {
		case progSucceeded:
			if !targets[i].current {
				finished++
			}
		case progFailed:
			finished++
			failed++
		}
	}
	tripped := policyTripped(r.Spec.FailurePolicy, finished, failed)
	abort := tripped && r.Spec.FailurePolicy.Action == v1.FailureAbort

	// Terminal decisions first: they withdraw everything.
	switch {
	case r.Spec.Canceled || prev.Phase == v1.PhaseCanceled:
		st.Phase = v1.PhaseCanceled
		st.Message = "canceled by spec.canceled: notices withdrawn"
		out.withdrawAll, out.cancelNotice = true, true
	case superseded:
		st.Phase = v1.PhaseCanceled
		st.Message = "superseded by a newer rollout for the same fleet and models: notices withdrawn"
		out.withdrawAll = true
	case abort || prev.Phase == v1.PhaseAborted:
		st.Phase = v1.PhaseAborted
		st.Message = fmt.Sprintf("failure policy tripped (%d of %d finished devices failed): notices withdrawn", failed, finished)
		if prev.Phase == v1.PhaseAborted {
			st.Message = prev.Message
		}
		out.withdrawAll, out.cancelNotice = true, true
	}

	// Walk the waves: which are started, complete, gated.
	gated := 0
	active := -1  // first incomplete wave
	blocked := "" // why the active wave cannot start
	var soakUntil time.Time
	for i := range waves {
		if waves[i].RequireApproval {
			gated++
		}
		ws := &st.Waves[i]
		if ws.StartTime == nil && active < 0 && !out.withdrawAll {
			// Gates before starting wave i.
			switch {
			case r.Spec.Paused:
				blocked = v1.ReasonPausedBySpec
			case tripped:
				blocked = v1.ReasonFailureThreshold
			case waves[i].RequireApproval && r.Spec.ApprovedWaves < int32(gated):
				blocked = v1.ReasonWaitingForApproval
				ws.State = v1.WaveWaitingForApproval
			case i > 0 && waves[i-1].PauseAfter != nil && st.Waves[i-1].CompletionTime != nil &&
				in.now.Before(st.Waves[i-1].CompletionTime.Add(waves[i-1].PauseAfter.Duration)):
				blocked = v1.ReasonSoaking
				soakUntil = st.Waves[i-1].CompletionTime.Add(waves[i-1].PauseAfter.Duration)
				st.Waves[i-1].State = v1.WaveSoaking
			default:
				t := metav1.NewTime(in.now)
				ws.StartTime = &t
				out.events = append(out.events, [3]string{"Normal", "WaveStarted", fmt.Sprintf("wave %d of %d started", i+1, len(waves))})
			}
		}
		if ws.StartTime == nil {
			if active < 0 {
				active = i
			}
			continue
		}
		complete := true
		for j := range targets {
			d := &targets[j]
			if d.wave == i && !d.progress.finished() && !d.offline {
				complete = false
				break
			}
		}
		if complete && ws.CompletionTime == nil {
			t := metav1.NewTime(in.now)
			ws.CompletionTime = &t
			out.events = append(out.events, [3]string{"Normal", "WaveCompleted", fmt.Sprintf("wave %d of %d completed", i+1, len(waves))})
		}
		switch {
		case ws.CompletionTime != nil:
			if ws.State != v1.WaveSoaking {
				ws.State = v1.WaveCompleted
			}
		default:
			ws.State = v1.WaveProgressing
			if active < 0 {
				active = i
			}
		}
	}
	st.CurrentWave = 0
	for i := range st.Waves {
		if st.Waves[i].StartTime != nil {
			st.CurrentWave = int32(i + 1)
		}
	}
	if st.StartTime == nil && st.CurrentWave > 0 {
		t := metav1.NewTime(in.now)
		st.StartTime = &t
	}

	// Desired notices: devices of started waves, grouped where a group
	// notice reaches exactly the targeted devices.
	desired := map[string]noticeAction{}
	if !out.withdrawAll {
		desired = desiredNotices(in, targets, groupsClean, st.Waves)
	}
	out.actions, out.requeueAfter = noticeActions(in, desired, out.withdrawAll)

	// Count.
	fillTotals(&st, targets)
	st.FailureSample = failureSample(targets)

	// Phase.
	if !out.withdrawAll {
		switch {
		case tripped:
			st.Phase = v1.PhasePaused
			st.Message = fmt.Sprintf("paused by the failure policy: %d of %d finished devices failed", failed, finished)
		case r.Spec.Paused:
			st.Phase = v1.PhasePaused
			st.Message = "paused by spec.paused"
		case active < 0:
			st.Phase = v1.PhaseSucceeded
			st.Message = fmt.Sprintf("all %d waves completed: %d of %d devices on %s", len(waves), st.Totals.Succeeded, st.Totals.Targeted, r.Spec.Firmware.Version)
		case blocked == v1.ReasonWaitingForApproval:
			st.Phase = v1.PhaseWaitingForApproval
			st.Message = fmt.Sprintf("wave %d waits for approval: set spec.approvedWaves to %d", active+1, gated)
		case st.CurrentWave == 0:
			st.Phase = v1.PhasePending
			st.Message = "waiting to start"
		default:
			st.Phase = v1.PhaseProgressing
			st.Message = fmt.Sprintf("wave %d of %d in progress", active+1, len(waves))
			if blocked == v1.ReasonSoaking {
				st.Message = fmt.Sprintf("wave %d soaking until %s", active, soakUntil.UTC().Format(time.RFC3339))
			}
		}
	}
	if st.Phase.Terminal() && st.CompletionTime == nil {
		t := metav1.NewTime(in.now)
		st.CompletionTime = &t
	}
	if prev.Phase != st.Phase {
		out.events = append(out.events, phaseEvent(st.Phase, st.Message))
	}
	setRolloutConditions(&st, r.Generation, tripped, blocked, superseded)

	// Come back for what no device message will announce: a soak ending,
	// a device timing out.
	if !st.Phase.Terminal() {
		next := 30 * time.Second
		if !soakUntil.IsZero() {
			next = min(next, max(soakUntil.Sub(in.now), time.Second))
		}
		for i := range targets {
			if d := &targets[i]; d.progress == progInProgress {
				next = min(next, max(time.Unix(d.deadline, 0).Sub(in.now)+time.Second, time.Second))
			}
		}
		if out.requeueAfter == 0 || next < out.requeueAfter {
			out.requeueAfter = next
		}
	}
	out.status = st
	return out, nil
}

// selectTargets finds the devices the rollout targets and where each
// stands. groupsClean reports, per group notice topic, whether every
// device a group notice would reach is a target (or filters itself out
// by model or version), so that a group notice is exact.
func selectTargets(in planInput) ([]targetDevice, map[string]bool, error) {
	r := in.rollout
	spec := &r.Spec
	models := map[string]bool{}
	for _, m := range spec.Firmware.Models {
		models[m] = true
	}
	sel := labels.Everything()
	var constraint *protocol.Constraint
	if s := spec.Selector; s != nil {
		if s.Labels != nil {
			var err error
			if sel, err = metav1.LabelSelectorAsSelector(s.Labels); err != nil {
				return nil, nil, fmt.Errorf("selector.labels: %w", err)
			}
		}
		if s.CurrentVersion != "" {
			var err error
			// Devices evaluate the same grammar (docs/protocol.md).
			if constraint, err = protocol.ParseConstraint(s.CurrentVersion); err != nil {
				return nil, nil, fmt.Errorf("selector.currentVersion %q: %w", s.CurrentVersion, err)
			}
		}
	}
	// Devices compare versions as exact strings (docs/protocol.md).
	target := spec.Firmware.Version
	if err := protocol.ValidVersion(target); err != nil {
		return nil, nil, fmt.Errorf("firmware.version %q: %w", target, err)
	}
	timeout := 30 * time.Minute
	if spec.DeviceTimeout != nil {
		timeout = spec.DeviceTimeout.Duration
	}
	uid := string(r.UID)
	groupsClean := map[string]bool{}
	// A fleet has at most models × 100 group topics: build each once.
	type groupKey struct {
		model  string
		cohort uint8
	}
	groupTopics := map[groupKey]string{}
	var out []targetDevice
	in.devices(func(d *fleet.Device) {
		if !d.HasInventory || !models[d.Model] || in.supersededModels[d.Model] {
			return
		}
		gk := groupKey{d.Model, d.Cohort}
		group, ok := groupTopics[gk]
		if !ok {
			group = in.topics.GroupNotice(d.Model, int(d.Cohort))
			groupTopics[gk] = group
		}
		if _, seen := groupsClean[group]; !seen {
			groupsClean[group] = true
		}
		// A device this rollout updated reports on it; only devices that
		// were on the target already count as "current", outside the
		// failure policy's arithmetic. Neither is subject to the version
		// constraint, which selects devices before their update.
		onTarget, reported := d.FirmwareVersion == target, d.StatusRollout == uid
		current := onTarget && !reported
		if !sel.Matches(labels.Set(d.Labels)) {
			if !onTarget {
				// A group notice would reach this device although the
				// label selector excludes it.
				groupsClean[group] = false
			}
			return
		}
		if !onTarget && !reported && constraint != nil && !allows(constraint, d.FirmwareVersion) {
			// Devices check currentVersion themselves (it is in the
			// notice), so this exclusion keeps the group clean.
			return
		}
		td := targetDevice{id: d.ID, model: d.Model, group: group, cohort: int(d.Cohort), current: current}
		offlineFor := time.Duration(0)
		if !d.Online {
			offlineFor = in.now.Sub(time.Unix(d.OfflineSince, 0))
			if d.OfflineSince == 0 {
				offlineFor = time.Duration(1<<62 - 1)
			}
		}
		td.offline = !d.Online && offlineFor >= in.offlineGrace
		switch {
		case current:
			td.progress = progSucceeded
		case d.StatusRollout == uid:
			td.reportedAt = d.StatusTime
			td.reason = d.StatusReason
			switch d.StatusState {
			case protocol.StateAccepted, protocol.StateDownloading, protocol.StateInstalling:
				td.progress = progInProgress
				td.deadline = time.Unix(d.StatusTime, 0).Add(timeout).Unix()
				if in.now.Sub(time.Unix(d.StatusTime, 0)) > timeout {
					td.progress, td.reason = progFailed, fmt.Sprintf("timeout: no outcome %s after %s", timeout, d.StatusState)
				}
			case protocol.StateSucceeded:
				// The device reports success before it reboots into the
				// new version; trust the report.
				td.progress = progSucceeded
			case protocol.StateFailed:
				td.progress = progFailed
			case protocol.StateRejected:
				td.progress = progRejected
			case protocol.StateCanceled:
				td.progress = progCanceled
			}
		}
		out = append(out, td)
	})
	assignWaves(spec.Strategy.Waves, out)
	return out, groupsClean, nil
}

// assignWaves puts each target in the first wave that covers it: by cohort
// for percent waves, by rank in (cohort, ID) order for count waves, so a
// device's wave is stable as the fleet grows.
func assignWaves(waves []v1.Wave, targets []targetDevice) {
	sort.Slice(targets, func(i, j int) bool {
		if targets[i].cohort != targets[j].cohort {
			return targets[i].cohort < targets[j].cohort
		}
		return targets[i].id < targets[j].id
	})
	for rank := range targets {
		d := &targets[rank]
		d.wave = len(waves) // beyond the last wave: never notified
		for i, w := range waves {
			if (w.Percent != nil && d.cohort < int(*w.Percent)) || (w.Count != nil && rank < int(*w.Count)) {
				d.wave = i
				break
			}
		}
	}
}

func policyTripped(p *v1.FailurePolicy, finished, failed int) bool {
	if p == nil {
		return false
	}
	if p.MaxFailed != nil && failed > int(*p.MaxFailed) {
		return true
	}
	return p.MaxFailedPercent != nil && finished > 0 && finished >= int(p.MinFinished) &&
		failed*100 > int(*p.MaxFailedPercent)*finished
}

// desiredNotices lists the notice topics the started waves call for:
// exact group notices where possible, per-device notices otherwise,
// within the in-progress cap.
func desiredNotices(in planInput, targets []targetDevice, groupsClean map[string]bool, waves []v1.WaveStatus) map[string]noticeAction {
	started := func(w int) bool { return w < len(waves) && waves[w].StartTime != nil }
	// Devices of started waves per group, and whether the whole group
	// (every target in it) is in started waves.
	type group struct {
		devices  []*targetDevice
		complete bool
	}
	groups := map[string]*group{}
	var order []string
	for i := range targets {
		d := &targets[i]
		topic := d.group
		g := groups[topic]
		if g == nil {
			g = &group{complete: true}
			groups[topic] = g
			order = append(order, topic)
		}
		if started(d.wave) {
			g.devices = append(g.devices, d)
		} else {
			g.complete = false
		}
	}
	maxInProgress := int(in.rollout.Spec.Strategy.MaxInProgress)
	outstanding := 0
	uid := string(in.rollout.UID)
	has := func(topic string) bool { n, ok := in.notices[topic]; return ok && n.RolloutUID == uid }
	for i := range targets {
		d := &targets[i]
		if d.progress == progNotified || d.progress == progInProgress {
			outstanding++
		}
	}
	desired := map[string]noticeAction{}
	for _, topic := range order {
		g := groups[topic]
		if len(g.devices) == 0 {
			continue
		}
		if g.complete && groupsClean[topic] {
			// Already published notices stay; new ones respect the cap.
			if !has(topic) && maxInProgress > 0 {
				fresh := 0
				for _, d := range g.devices {
					if d.progress == progWaiting {
						fresh++
					}
				}
				if outstanding > 0 && outstanding+fresh > maxInProgress {
					continue
				}
				outstanding += fresh
			}
			desired[topic] = noticeAction{topic: topic}
			continue
		}
		for _, d := range g.devices {
			if d.current {
				continue
			}
			dt := in.topics.DeviceNotice(d.id)
			if !has(dt) && maxInProgress > 0 && d.progress == progWaiting {
				if outstanding >= maxInProgress {
					continue
				}
				outstanding++
			}
			desired[dt] = noticeAction{topic: dt, device: d.id}
		}
	}
	return desired
}

// noticeActions diffs desired notices against the broker's retained ones,
// within the publish budget. It returns a retry delay when the budget cut
// the list short.
func noticeActions(in planInput, desired map[string]noticeAction, withdrawAll bool) ([]noticeAction, time.Duration) {
	uid := string(in.rollout.UID)
	var actions []noticeAction
	var topics []string
	for topic := range desired {
		topics = append(topics, topic)
	}
	sort.Strings(topics)
	budget := in.noticeBudget
	var retry time.Duration
	for _, topic := range topics {
		// A notice carries a v5 message expiry; publish it again, with the
		// same bytes, well before the broker drops it.
		if n, ok := in.notices[topic]; ok && n.RolloutUID == uid && in.now.Sub(n.SeenAt) < noticeExpiry/2 {
			continue
		}
		if budget == 0 {
			retry = 5 * time.Second
			break
		}
		budget--
		actions = append(actions, desired[topic])
	}
	var ours []string
	for topic, n := range in.notices {
		if n.RolloutUID != uid {
			continue
		}
		if _, want := desired[topic]; !want || withdrawAll {
			ours = append(ours, topic)
		}
	}
	sort.Strings(ours)
	for _, topic := range ours {
		actions = append(actions, noticeAction{topic: topic, withdraw: true})
	}
	return actions, retry
}

func fillTotals(st *v1.FirmwareRolloutStatus, targets []targetDevice) {
	t := &st.Totals
	*t = v1.DeviceTotals{}
	for i := range targets {
		d := &targets[i]
		t.Targeted++
		if d.wave < len(st.Waves) {
			w := &st.Waves[d.wave]
			w.Targeted++
			if d.progress != progWaiting {
				w.Notified++
			}
			switch d.progress {
			case progSucceeded:
				w.Succeeded++
			case progFailed, progRejected:
				w.Failed++
			}
		}
		switch d.progress {
		case progWaiting:
			t.Waiting++
		case progNotified:
			t.Notified++
		case progInProgress:
			t.InProgress++
		case progSucceeded:
			t.Succeeded++
		case progFailed:
			t.Failed++
		case progRejected:
			t.Rejected++
		case progCanceled:
			t.Canceled++
		}
		if d.offline && !d.progress.finished() {
			t.Offline++
		}
	}
	st.Progress = fmt.Sprintf("%d/%d", t.Succeeded, t.Targeted)
}

func failureSample(targets []targetDevice) []v1.DeviceFailure {
	var failed []*targetDevice
	for i := range targets {
		if targets[i].progress == progFailed {
			failed = append(failed, &targets[i])
		}
	}
	sort.Slice(failed, func(i, j int) bool {
		if failed[i].reportedAt != failed[j].reportedAt {
			return failed[i].reportedAt > failed[j].reportedAt
		}
		return failed[i].id < failed[j].id
	})
	if len(failed) > 10 {
		failed = failed[:10]
	}
	var out []v1.DeviceFailure
	for _, d := range failed {
		reason := d.reason
		if reason == "" {
			reason = "failed"
		}
		out = append(out, v1.DeviceFailure{Device: d.id, Reason: reason, Time: metav1.Unix(d.reportedAt, 0)})
	}
	return out
}

func phaseEvent(p v1.RolloutPhase, msg string) [3]string {
	switch p {
	case v1.PhaseSucceeded:
		return [3]string{"Normal", v1.ReasonRolloutSucceeded, msg}
	case v1.PhaseAborted:
		return [3]string{"Warning", v1.ReasonRolloutAborted, msg}
	case v1.PhaseCanceled:
		return [3]string{"Normal", v1.ReasonRolloutCanceled, msg}
	case v1.PhasePaused:
		return [3]string{"Warning", "RolloutPaused", msg}
	case v1.PhaseWaitingForApproval:
		return [3]string{"Normal", v1.ReasonWaitingForApproval, msg}
	}
	return [3]string{"Normal", "Rollout" + string(p), msg}
}

func allows(c *protocol.Constraint, version string) bool {
	ok, err := c.Allows(version)
	return err == nil && ok
}
