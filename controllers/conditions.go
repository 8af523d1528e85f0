package controllers

import (
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
