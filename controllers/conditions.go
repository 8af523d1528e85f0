package controllers

import (
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
)

// setCondition sets or updates a condition; the transition time moves only
// when the status does.
func setCondition(conds *[]metav1.Condition, gen int64, typ string, status metav1.ConditionStatus, reason, msg string) {
	apimeta.SetStatusCondition(conds, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: gen,
	})
}

// setAbnormal sets Reconciling or Stalled when true and removes it when
// false, as kstatus reads them ("abnormal-true" conditions).
func setAbnormal(conds *[]metav1.Condition, gen int64, typ string, on bool, reason, msg string) {
	if !on {
		apimeta.RemoveStatusCondition(conds, typ)
		return
	}
	setCondition(conds, gen, typ, metav1.ConditionTrue, reason, msg)
}

func boolStatus(b bool) metav1.ConditionStatus {
	if b {
		return metav1.ConditionTrue
	}
	return metav1.ConditionFalse
}

// setRolloutConditions derives every condition from the phase, so that
// they never disagree with it.
func setRolloutConditions(st *v1.FirmwareRolloutStatus, gen int64, tripped bool, blocked string, superseded bool) {
	c := &st.Conditions
	msg := st.Message
	readyReason := map[v1.RolloutPhase]string{
		v1.PhasePending:            "Pending",
		v1.PhaseProgressing:        v1.ReasonWaveProgressing,
		v1.PhasePaused:             v1.ReasonPausedBySpec,
		v1.PhaseWaitingForApproval: v1.ReasonWaitingForApproval,
		v1.PhaseSucceeded:          v1.ReasonRolloutSucceeded,
		v1.PhaseFailed:             v1.ReasonInvalidSpec,
		v1.PhaseAborted:            v1.ReasonRolloutAborted,
		v1.PhaseCanceled:           v1.ReasonRolloutCanceled,
	}[st.Phase]
	if st.Phase == v1.PhasePaused && tripped {
		readyReason = v1.ReasonFailureThreshold
	}
	if st.Phase == v1.PhaseProgressing && blocked == v1.ReasonSoaking {
		readyReason = v1.ReasonSoaking
	}
	if superseded && st.Phase == v1.PhaseCanceled {
		readyReason = v1.ReasonSuperseded
	}
	setCondition(c, gen, v1.ConditionReady, boolStatus(st.Phase == v1.PhaseSucceeded), readyReason, msg)
	working := st.Phase == v1.PhasePending || st.Phase == v1.PhaseProgressing
	setAbnormal(c, gen, v1.ConditionReconciling, working, readyReason, msg)
	setAbnormal(c, gen, v1.ConditionStalled, st.Phase == v1.PhaseAborted || st.Phase == v1.PhaseFailed, readyReason, msg)
	setCondition(c, gen, v1.ConditionProgressing, boolStatus(working), readyReason, msg)
	setCondition(c, gen, v1.ConditionPaused, boolStatus(st.Phase == v1.PhasePaused), readyReason, msg)
	degradedReason, degradedMsg := v1.ReasonWithinPolicy, "failures are within the failure policy"
	if tripped {
		degradedReason, degradedMsg = v1.ReasonFailureThreshold, msg
	}
	setCondition(c, gen, v1.ConditionDegraded, boolStatus(tripped), degradedReason, degradedMsg)
}
