package controllers

import (
	"maps"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
)

// sample is one gauge series as gathered: its labels and value.
type sample struct {
	labels prometheus.Labels
	value  float64
}

// gather returns the series of the metric called name.
func gather(t *testing.T, reg *prometheus.Registry, name string) []sample {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []sample
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			s := sample{labels: prometheus.Labels{}, value: m.GetGauge().GetValue()}
			for _, l := range m.GetLabel() {
				s.labels[l.GetName()] = l.GetValue()
			}
			out = append(out, s)
		}
	}
	return out
}

// TestRolloutPhaseAndConditions checks the series the dashboard and the
// HeraldRolloutPausedByFailurePolicy alert read: the current phase at 1
// and the others at 0, a condition's status at 1 and its other statuses at
// 0, a missing condition at 0, and a pause by spec.paused told apart from
// one by the failure policy by the Degraded condition.
func TestRolloutPhaseAndConditions(t *testing.T) {
	cond := func(typ string, status metav1.ConditionStatus, reason string) metav1.Condition {
		return metav1.Condition{Type: typ, Status: status, Reason: reason}
	}
	phase := func(p string) prometheus.Labels { return prometheus.Labels{"phase": p} }
	condition := func(typ, status string) prometheus.Labels {
		return prometheus.Labels{"condition": typ, "status": status}
	}
	tests := map[string]struct {
		status v1.FirmwareRolloutStatus
		// want are series by metric, with the labels after namespace
		// and rollout.
		want map[string][]sample
	}{
		"paused by the failure policy": {
			status: v1.FirmwareRolloutStatus{Phase: v1.PhasePaused, Conditions: []metav1.Condition{
				cond(v1.ConditionReady, metav1.ConditionFalse, v1.ReasonFailureThreshold),
				cond(v1.ConditionPaused, metav1.ConditionTrue, v1.ReasonFailureThreshold),
				cond(v1.ConditionDegraded, metav1.ConditionTrue, v1.ReasonFailureThreshold),
			}},
			want: map[string][]sample{
				"herald_rollout_phase": {{phase("Paused"), 1}, {phase("Progressing"), 0}},
				"herald_rollout_condition": {
					{condition("Degraded", "true"), 1}, {condition("Degraded", "false"), 0},
					{condition("Paused", "true"), 1},
					{condition("Ready", "false"), 1}, {condition("Ready", "true"), 0},
					{condition("Reconciling", "true"), 0}, {condition("Reconciling", "false"), 0},
				},
			},
		},
		"paused by spec": {
			status: v1.FirmwareRolloutStatus{Phase: v1.PhasePaused, Conditions: []metav1.Condition{
				cond(v1.ConditionPaused, metav1.ConditionTrue, v1.ReasonPausedBySpec),
				cond(v1.ConditionDegraded, metav1.ConditionFalse, v1.ReasonWithinPolicy),
			}},
			want: map[string][]sample{
				"herald_rollout_phase":     {{phase("Paused"), 1}},
				"herald_rollout_condition": {{condition("Degraded", "true"), 0}, {condition("Degraded", "false"), 1}},
			},
		},
		"progressing": {
			status: v1.FirmwareRolloutStatus{Phase: v1.PhaseProgressing, Conditions: []metav1.Condition{
				cond(v1.ConditionReconciling, metav1.ConditionTrue, v1.ReasonWaveProgressing),
				cond(v1.ConditionDegraded, metav1.ConditionUnknown, ""),
			}},
			want: map[string][]sample{
				"herald_rollout_phase": {{phase("Progressing"), 1}, {phase("Paused"), 0}},
				"herald_rollout_condition": {
					{condition("Reconciling", "true"), 1},
					{condition("Degraded", "unknown"), 1}, {condition("Degraded", "true"), 0},
				},
			},
		},
		"no status yet": {
			want: map[string][]sample{
				"herald_rollout_phase": {{phase("Pending"), 0}, {phase("Paused"), 0}},
				"herald_rollout_condition": {
					{condition("Ready", "true"), 0}, {condition("Ready", "false"), 0}, {condition("Ready", "unknown"), 0},
				},
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			m, err := NewMetrics(reg)
			if err != nil {
				t.Fatal(err)
			}
			ro := &v1.FirmwareRollout{Status: tc.status}
			ro.Namespace, ro.Name = "factory-7", "sensor-2.1.0"
			m.observeRollout(ro)
			for metric, want := range tc.want {
				got := gather(t, reg, metric)
				for _, w := range want {
					labels := prometheus.Labels{"namespace": ro.Namespace, "rollout": ro.Name}
					maps.Copy(labels, w.labels)
					found := false
					for _, g := range got {
						if maps.Equal(g.labels, labels) {
							found = true
							if g.value != w.value {
								t.Errorf("%s%v = %v, want %v", metric, labels, g.value, w.value)
							}
						}
					}
					if !found {
						t.Errorf("%s%v is not exported", metric, labels)
					}
				}
			}
			// Every value has a series from the start, so that a change
			// flips values instead of ending and starting series.
			if n := len(gather(t, reg, "herald_rollout_phase")); n != 9 {
				t.Errorf("%d herald_rollout_phase series, want one per phase (9)", n)
			}
			if n := len(gather(t, reg, "herald_rollout_condition")); n != 7*3 {
				t.Errorf("%d herald_rollout_condition series, want 3 statuses for each of 7 conditions", n)
			}
		})
	}
}

// TestForgetRollout: a deleted rollout's series go; another rollout's stay.
func TestForgetRollout(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"gone", "kept"} {
		ro := &v1.FirmwareRollout{Status: v1.FirmwareRolloutStatus{Phase: v1.PhaseProgressing}}
		ro.Namespace, ro.Name = "factory-7", name
		m.observeRollout(ro)
	}
	m.forgetRollout("factory-7", "gone")
	for _, metric := range []string{"herald_rollout_devices", "herald_rollout_phase", "herald_rollout_condition"} {
		kept := 0
		for _, s := range gather(t, reg, metric) {
			switch s.labels["rollout"] {
			case "gone":
				t.Errorf("%s still has a series of the deleted rollout: %v", metric, s.labels)
			case "kept":
				kept++
			}
		}
		if kept == 0 {
			t.Errorf("%s lost the other rollout's series", metric)
		}
	}
}
