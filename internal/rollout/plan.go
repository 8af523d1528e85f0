package rollout

import (
	"fmt"
	"slices"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/internal/fleet"
)

// Plan decides the rollout's next step. It is a pure function of in, and
// walks every device of the fleet; a Tracker decides the same while
// keeping what it learned for the next plan.
func Plan(in Input) Output {
	var tr Tracker
	return tr.Plan(in, nil)
}

// Plan decides the rollout's next step exactly as the package's Plan
// does, but costs what changed since the tracker's last plan: in.Devices
// must visit state's devices, and state is the fleet's state as the
// session keeps it (nil to plan from scratch).
func (tr *Tracker) Plan(in Input, state *fleet.State) Output {
	ro := in.Rollout
	prev := &ro.Status
	// A succeeded rollout's result is final: later device traffic (late
	// joiners on a retained notice, a newer rollout) does not rewrite it.
	// It can still be canceled.
	if prev.Phase == v1.PhaseSucceeded && !ro.Spec.Canceled {
		out := Output{Status: *prev.DeepCopy()}
		out.Status.ObservedGeneration = ro.Generation
		return out
	}
	ending := prev.Phase == v1.PhaseAborted || prev.Phase == v1.PhaseCanceled
	if err := tr.follow(&in, state, ending); err != nil {
		return invalid(in, err)
	}
	sel := tr.sel
	if ending {
		// Nothing is retried any more: failures are final.
		return ended(in, tr, evaluatePolicy(ro.Spec.FailurePolicy, &tr.tally))
	}
	pol := evaluatePolicy(ro.Spec.FailurePolicy, &tr.tally)
	snapshotting := ro.Spec.Targeting == v1.TargetingSnapshot
	if ro.Spec.DryRun && !started(prev) && !ro.Spec.Canceled {
		return dryRun(in, sel, tr, pol)
	}

	st := v1.FirmwareRolloutStatus{
		ObservedGeneration: ro.Generation,
		Conditions:         prev.Conditions,
		Phase:              prev.Phase,
		StartTime:          prev.StartTime,
		CompletionTime:     prev.CompletionTime,
		Snapshot:           prev.Snapshot,
		Waves:              make([]v1.WaveStatus, len(ro.Spec.Strategy.Waves)),
	}
	for i := range st.Waves {
		st.Waves[i].State = v1.WavePending
		if i < len(prev.Waves) {
			st.Waves[i].StartTime = prev.Waves[i].StartTime
			st.Waves[i].CompletionTime = prev.Waves[i].CompletionTime
		}
	}
	var out Output
	endReason := ""
	switch sched := ro.Spec.Schedule; {
	case ro.Spec.Canceled:
		st.Phase, st.Message = v1.PhaseCanceled, "canceled by spec.canceled: notices withdrawn"
		out.WithdrawAll, out.CancelNotice = true, true
	case Superseded(ro, in.SupersededModels):
		st.Phase, st.Message = v1.PhaseCanceled, "superseded by a newer rollout for the same fleet and models: notices withdrawn"
		out.WithdrawAll, endReason = true, v1.ReasonSuperseded
	case sched != nil && sched.EndTime != nil && !in.Now.Before(sched.EndTime.Time):
		// Devices at work finish: they hear no cancel.
		st.Phase = v1.PhaseCanceled
		st.Message = fmt.Sprintf("schedule ended at %s: notices withdrawn", sched.EndTime.UTC().Format(time.RFC3339))
		out.WithdrawAll, endReason = true, v1.ReasonScheduleEnded
	case pol.abort:
		st.Phase = v1.PhaseAborted
		st.Message = fmt.Sprintf("failure policy tripped (%d of %d finished devices failed): notices withdrawn", pol.failed, pol.finished)
		out.WithdrawAll, out.CancelNotice = true, true
	}

	walk := walkWaves(&in, sel, &st, &tr.tally, pol, out.WithdrawAll)
	if snapshotting && sel.snapshot == nil && len(walk.started) > 0 && !out.WithdrawAll {
		// The first wave starts now: freeze who it is for before any
		// notice goes out.
		ids := make(Snapshot, len(tr.targets))
		for i := range tr.targets {
			ids[i] = tr.targets[i].id
		}
		slices.Sort(ids)
		return Output{Status: *prev.DeepCopy(), TakeSnapshot: ids}
	}
	st.CurrentWave = 0
	for i := range st.Waves {
		if st.Waves[i].StartTime != nil {
			st.CurrentWave = int32(i + 1)
		}
	}
	if st.StartTime == nil && st.CurrentWave > 0 {
		t := metav1.NewTime(in.Now)
		st.StartTime = &t
	}

	held := false
	if !out.WithdrawAll {
		// Paused (by spec, a dry run or the failure policy), no device
		// gets a new notice or a retry; those out already stay.
		hold := ro.Spec.Paused || ro.Spec.DryRun || pol.tripped
		out.Actions, out.RequeueAfter, held = tr.noticeActions(&in, st.Waves, hold)
	} else {
		// Counted as what they are now that nothing will retry them.
		tr.end(&in)
		out.Actions = tr.withdrawals(in.Topics)
	}
	if held && (out.RequeueAfter == 0 || out.RequeueAfter > rateLimitRetry) {
		out.RequeueAfter = rateLimitRetry
	}

	fillTotals(&st, &tr.tally)
	st.FailureSample = tr.failureSample()
	if !out.WithdrawAll {
		st.Phase, st.Message = phase(&in, &st, pol, walk)
	} else {
		st.Message += "; " + outcome(&st.Totals)
	}
	if st.Phase.Terminal() && st.CompletionTime == nil {
		t := metav1.NewTime(in.Now)
		st.CompletionTime = &t
	}
	setConditions(&st, ro.Generation, pol, walk.gate, endReason)

	n := len(st.Waves)
	for _, i := range walk.started {
		out.Events = append(out.Events, Event{"Normal", "WaveStarted",
			fmt.Sprintf("wave %d of %d started: %d devices", i+1, n, st.Waves[i].Targeted)})
	}
	for _, i := range walk.completed {
		out.Events = append(out.Events, Event{"Normal", "WaveCompleted",
			fmt.Sprintf("wave %d of %d completed: %s", i+1, n, waveOutcome(&st.Waves[i]))})
	}
	if prev.Phase != st.Phase {
		if e, ok := phaseEvent(st.Phase, st.Message); ok {
			out.Events = append(out.Events, e)
		}
	}
	if !st.Phase.Terminal() {
		out.RequeueAfter = requeue(&in, sel, tr, walk, out.RequeueAfter)
	}
	out.Status = st
	return out
}

// invalid is the plan for a spec that cannot be acted on: the rollout is
// Failed (Stalled) until the spec changes, and nothing is published.
func invalid(in Input, err error) Output {
	ro := in.Rollout
	st := *ro.Status.DeepCopy()
	st.ObservedGeneration = ro.Generation
	st.Phase, st.Message = v1.PhaseFailed, err.Error()
	setConditions(&st, ro.Generation, policy{}, "", "")
	out := Output{Status: st}
	if ro.Status.Phase != v1.PhaseFailed || ro.Status.Message != st.Message {
		e, _ := phaseEvent(v1.PhaseFailed, st.Message)
		out.Events = append(out.Events, e)
	}
	return out
}

// ended is the plan for an aborted or canceled rollout: its phase, waves
// and message stand, its counts go on following what devices report (the
// cancels they acknowledge, installs that finish anyway), and whatever of
// its notices is still on the broker goes.
func ended(in Input, tr *Tracker, pol policy) Output {
	ro := in.Rollout
	st := *ro.Status.DeepCopy()
	st.ObservedGeneration = ro.Generation
	if len(st.Waves) != len(ro.Spec.Strategy.Waves) {
		// The spec changed shape after the end; keep counting by the new one.
		waves := make([]v1.WaveStatus, len(ro.Spec.Strategy.Waves))
		copy(waves, st.Waves)
		st.Waves = waves
	}
	fillTotals(&st, &tr.tally)
	// Retry notices are withdrawn with the rest, so the attempts devices
	// answered are all that is left to count: keep the count it had.
	st.Totals.Retries = max(st.Totals.Retries, ro.Status.Totals.Retries)
	st.FailureSample = tr.failureSample()
	// Why it ended is in the Ready condition written when it did.
	endReason := ""
	if c := apimeta.FindStatusCondition(st.Conditions, v1.ConditionReady); c != nil {
		endReason = c.Reason
	}
	setConditions(&st, ro.Generation, pol, "", endReason)
	out := Output{Status: st, WithdrawAll: true, Actions: tr.withdrawals(in.Topics)}
	return out
}

// started reports whether any wave of the status has started.
func started(st *v1.FirmwareRolloutStatus) bool {
	for i := range st.Waves {
		if st.Waves[i].StartTime != nil {
			return true
		}
	}
	return false
}

// Superseded reports whether newer rollouts took over every model of ro
// (superseded holds the models they took, as Input.SupersededModels).
func Superseded(ro *v1.FirmwareRollout, superseded map[string]bool) bool {
	models := ro.Spec.Firmware.Models
	for _, m := range models {
		if !superseded[m] {
			return false
		}
	}
	return len(models) > 0
}

// Ending reports whether every plan of ro from now on only withdraws its
// notices: it is canceled, aborted or superseded. Such a plan needs no
// target set.
func Ending(ro *v1.FirmwareRollout, superseded map[string]bool) bool {
	return ro.Spec.Canceled || ro.Status.Phase == v1.PhaseAborted || ro.Status.Phase == v1.PhaseCanceled ||
		Superseded(ro, superseded)
}

// phase is the phase and message of a rollout that has not ended.
func phase(in *Input, st *v1.FirmwareRolloutStatus, pol policy, walk waveWalk) (v1.RolloutPhase, string) {
	spec := &in.Rollout.Spec
	waves := len(spec.Strategy.Waves)
	switch {
	case pol.tripped:
		return v1.PhasePaused, fmt.Sprintf("paused by the failure policy: %d of %d finished devices failed; %s", pol.failed, pol.finished, outcome(&st.Totals))
	case spec.Paused:
		return v1.PhasePaused, "paused by spec.paused; " + outcome(&st.Totals)
	case spec.DryRun:
		return v1.PhasePaused, "paused by spec.dryRun (the rollout had started); " + outcome(&st.Totals)
	case walk.active < 0:
		return v1.PhaseSucceeded, fmt.Sprintf("all %d waves completed: %d of %d devices on %s; %s",
			waves, st.Totals.Succeeded, st.Totals.Targeted, spec.Firmware.Version, outcome(&st.Totals))
	case walk.gate == v1.ReasonWaitingForApproval:
		return v1.PhaseWaitingForApproval, fmt.Sprintf("wave %d waits for approval: set spec.approvedWaves to %d", walk.active+1, walk.gated)
	case walk.gate == v1.ReasonScheduled:
		return v1.PhasePending, fmt.Sprintf("scheduled to start at %s", walk.until.UTC().Format(time.RFC3339))
	case walk.gate == v1.ReasonOutsideMaintenanceWindow && st.CurrentWave == 0:
		return v1.PhasePending, fmt.Sprintf("waiting for the maintenance window that opens at %s", walk.until.UTC().Format(time.RFC3339))
	case walk.gate == v1.ReasonOutsideMaintenanceWindow:
		return v1.PhaseProgressing, fmt.Sprintf("wave %d waits for the maintenance window that opens at %s; %s",
			walk.active+1, walk.until.UTC().Format(time.RFC3339), outcome(&st.Totals))
	case st.CurrentWave == 0:
		return v1.PhasePending, "waiting to start"
	case walk.gate == v1.ReasonSoaking:
		return v1.PhaseProgressing, fmt.Sprintf("wave %d soaking until %s", walk.active, walk.until.UTC().Format(time.RFC3339))
	}
	return v1.PhaseProgressing, fmt.Sprintf("wave %d of %d in progress: %s", walk.active+1, waves, outcome(&st.Totals))
}

// requeue is when to come back for what no device message announces: a
// soak ending, a device timing out. retry is the rate limit's delay, if any.
func requeue(in *Input, sel *selection, tr *Tracker, walk waveWalk, retry time.Duration) time.Duration {
	next := idleRequeue
	if open, closes := sel.windows.Next(in.Now); open.After(in.Now) {
		next = min(next, max(open.Sub(in.Now), time.Second))
	} else if sel.windows != nil {
		next = min(next, max(closes.Sub(in.Now), time.Second))
	}
	if !walk.until.IsZero() {
		next = min(next, max(walk.until.Sub(in.Now), time.Second))
	}
	if s := in.Rollout.Spec.Schedule; s != nil && s.EndTime != nil {
		next = min(next, max(s.EndTime.Sub(in.Now), time.Second))
	}
	// A target's deadline, offline grace or retry: one second past it,
	// so that it has passed; compared in seconds first, as a far time
	// overflows a Duration.
	if at := tr.nextWake(); at != 0 {
		if d := at/int64(time.Second) - in.Now.Unix(); d < int64(next/time.Second) {
			next = time.Duration(d+1) * time.Second
		}
	}
	if retry > 0 && retry < next {
		next = retry
	}
	return next
}
