package rollout

import (
	"fmt"
	"slices"
	"strings"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
)

// fillTotals writes the tally's counts, overall and per wave.
func fillTotals(st *v1.FirmwareRolloutStatus, c *tally) {
	st.Totals = c.totals
	for i := range st.Waves {
		w := &st.Waves[i]
		var n waveTally
		if i < len(c.waves) {
			n = c.waves[i]
		}
		w.Targeted, w.Notified, w.Succeeded, w.Failed, w.Rejected, w.Skipped = n.targeted, n.notified, n.succeeded, n.failed, n.rejected, n.skipped
	}
	st.Progress = fmt.Sprintf("%d/%d", st.Totals.Succeeded, st.Totals.Targeted)
}

// maxFailureSample bounds status.failureSample.
const maxFailureSample = 10

// failureSample is the most recent failed and rejecting devices.
func (tr *Tracker) failureSample() []v1.DeviceFailure {
	// The newest few of what may be a wave of failures: kept in order as
	// they are found, not sorted all.
	newer := func(a, b *target) bool {
		if a.reportedAt != b.reportedAt {
			return a.reportedAt > b.reportedAt
		}
		return a.id < b.id
	}
	bad := make([]*target, 0, maxFailureSample+1)
	for slot := range tr.bad {
		t := tr.at(slot)
		if len(bad) == maxFailureSample && !newer(t, bad[len(bad)-1]) {
			continue
		}
		i := len(bad)
		for i > 0 && newer(t, bad[i-1]) {
			i--
		}
		bad = slices.Insert(bad, i, t)
		if len(bad) > maxFailureSample {
			bad = bad[:maxFailureSample]
		}
	}
	var out []v1.DeviceFailure
	for _, t := range bad {
		state, reason := "failed", t.reason
		if t.progress == rejected {
			state = "rejected"
		}
		if reason == "" {
			reason = state
		}
		out = append(out, v1.DeviceFailure{Device: t.id, State: state, Reason: reason, Time: metav1.Unix(t.reportedAt, 0)})
	}
	return out
}

// outcome is a one-line account of the devices, for messages and events.
func outcome(t *v1.DeviceTotals) string {
	parts := []string{fmt.Sprintf("%d succeeded", t.Succeeded)}
	for _, c := range []struct {
		n    int32
		what string
	}{
		{t.Failed, "failed"}, {t.Rejected, "rejected"}, {t.Canceled, "canceled"},
		{t.Skipped, "skipped"}, {t.InProgress, "in progress"}, {t.Retrying, "waiting for a retry"}, {t.Notified, "not answered yet"},
	} {
		if c.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c.n, c.what))
		}
	}
	return fmt.Sprintf("%s of %d targeted", strings.Join(parts, ", "), t.Targeted)
}

func waveOutcome(w *v1.WaveStatus) string {
	parts := []string{fmt.Sprintf("%d succeeded", w.Succeeded)}
	for _, c := range []struct {
		n    int32
		what string
	}{{w.Failed, "failed"}, {w.Rejected, "rejected"}, {w.Skipped, "skipped"}} {
		if c.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c.n, c.what))
		}
	}
	return fmt.Sprintf("%s of %d devices", strings.Join(parts, ", "), w.Targeted)
}

// setCondition sets or updates a condition; the transition time moves only
// when the status does.
func setCondition(conds *[]metav1.Condition, gen int64, typ string, status bool, reason, msg string) {
	s := metav1.ConditionFalse
	if status {
		s = metav1.ConditionTrue
	}
	apimeta.SetStatusCondition(conds, metav1.Condition{Type: typ, Status: s, Reason: reason, Message: msg, ObservedGeneration: gen})
}

// setAbnormal sets Reconciling or Stalled when on and removes it when off:
// kstatus reads them as "abnormal-true" conditions, present only when true.
func setAbnormal(conds *[]metav1.Condition, gen int64, typ string, on bool, reason, msg string) {
	if !on {
		apimeta.RemoveStatusCondition(conds, typ)
		return
	}
	setCondition(conds, gen, typ, true, reason, msg)
}

// setConditions derives every condition from the phase, so they never
// disagree with it. The mapping is what kstatus (Flux, Argo CD via its
// health checks, kubectl wait) reads:
//
//	Pending, Progressing           Reconciling=True               InProgress
//	Paused, WaitingForApproval     Ready=False                    InProgress (a person must act)
//	Succeeded, Canceled, DryRun    Ready=True                     Current
//	Aborted, Failed                Stalled=True                   Failed
//
// Finished is True in every terminal phase, whatever the outcome.
//
// endReason, when set, is why a Canceled rollout ended other than by its
// spec (Superseded, ScheduleEnded).
func setConditions(st *v1.FirmwareRolloutStatus, gen int64, pol policy, gate, endReason string) {
	c := &st.Conditions
	msg := st.Message
	reason := map[v1.RolloutPhase]string{
		v1.PhasePending:            "Pending",
		v1.PhaseDryRun:             v1.ReasonDryRun,
		v1.PhaseProgressing:        v1.ReasonWaveProgressing,
		v1.PhasePaused:             v1.ReasonPausedBySpec,
		v1.PhaseWaitingForApproval: v1.ReasonWaitingForApproval,
		v1.PhaseSucceeded:          v1.ReasonRolloutSucceeded,
		v1.PhaseFailed:             v1.ReasonInvalidSpec,
		v1.PhaseAborted:            v1.ReasonRolloutAborted,
		v1.PhaseCanceled:           v1.ReasonRolloutCanceled,
	}[st.Phase]
	switch {
	case st.Phase == v1.PhasePaused && pol.tripped:
		reason = v1.ReasonFailureThreshold
	case st.Phase == v1.PhaseProgressing && gate == v1.ReasonSoaking:
		reason = v1.ReasonSoaking
	case st.Phase == v1.PhasePending && gate == v1.ReasonScheduled:
		reason = v1.ReasonScheduled
	case (st.Phase == v1.PhasePending || st.Phase == v1.PhaseProgressing) && gate == v1.ReasonOutsideMaintenanceWindow:
		reason = v1.ReasonOutsideMaintenanceWindow
	case st.Phase == v1.PhaseCanceled && (endReason == v1.ReasonSuperseded || endReason == v1.ReasonScheduleEnded):
		reason = endReason
	}
	working := st.Phase == v1.PhasePending || st.Phase == v1.PhaseProgressing
	terminal := st.Phase.Terminal()
	setCondition(c, gen, v1.ConditionReady, st.Phase == v1.PhaseSucceeded || st.Phase == v1.PhaseCanceled || st.Phase == v1.PhaseDryRun, reason, msg)
	setAbnormal(c, gen, v1.ConditionReconciling, working, reason, msg)
	setAbnormal(c, gen, v1.ConditionStalled, st.Phase == v1.PhaseAborted || st.Phase == v1.PhaseFailed, reason, msg)
	finishedReason := reason
	if !terminal {
		finishedReason = v1.ReasonRunning
	}
	setCondition(c, gen, v1.ConditionFinished, terminal, finishedReason, msg)
	setCondition(c, gen, v1.ConditionProgressing, working, reason, msg)
	setCondition(c, gen, v1.ConditionPaused, st.Phase == v1.PhasePaused, reason, msg)
	degradedReason, degradedMsg := v1.ReasonWithinPolicy, "failures are within the failure policy"
	if pol.tripped {
		degradedReason, degradedMsg = v1.ReasonFailureThreshold, msg
	}
	setCondition(c, gen, v1.ConditionDegraded, pol.tripped, degradedReason, degradedMsg)
}

// phaseEvent announces a new phase.
func phaseEvent(p v1.RolloutPhase, msg string) (Event, bool) {
	switch p {
	case v1.PhaseSucceeded:
		return Event{"Normal", v1.ReasonRolloutSucceeded, msg}, true
	case v1.PhaseAborted:
		return Event{"Warning", v1.ReasonRolloutAborted, msg}, true
	case v1.PhaseCanceled:
		return Event{"Normal", v1.ReasonRolloutCanceled, msg}, true
	case v1.PhasePaused:
		return Event{"Warning", "RolloutPaused", msg}, true
	case v1.PhaseWaitingForApproval:
		return Event{"Normal", v1.ReasonWaitingForApproval, msg}, true
	case v1.PhaseProgressing:
		return Event{"Normal", "RolloutProgressing", msg}, true
	case v1.PhaseFailed:
		return Event{"Warning", v1.ReasonInvalidSpec, msg}, true
	case v1.PhaseDryRun:
		return Event{"Normal", v1.ReasonDryRun, msg}, true
	}
	return Event{}, false
}
