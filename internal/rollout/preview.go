package rollout

import (
	"fmt"
	"sort"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
)

// previewSample bounds the device IDs a preview lists per wave.
const previewSample = 10

// dryRun is the plan while spec.dryRun holds a rollout that has not
// started: targets, waves and the cost of starting each wave, and nothing
// published.
func dryRun(in Input, sel *selection, tr *Tracker, pol policy) Output {
	ro := in.Rollout
	st := v1.FirmwareRolloutStatus{
		ObservedGeneration: ro.Generation,
		Conditions:         ro.Status.Conditions,
		Phase:              v1.PhaseDryRun,
		Waves:              make([]v1.WaveStatus, len(ro.Spec.Strategy.Waves)),
	}
	for i := range st.Waves {
		st.Waves[i].State = v1.WavePending
	}
	fillTotals(&st, &tr.tally)
	st.FailureSample = tr.failureSample()
	st.Preview = preview(&in, sel, tr)
	groups, devices := 0, 0
	for _, w := range st.Preview.Waves {
		groups += int(w.GroupNotices)
		devices += int(w.DeviceNotices)
	}
	st.Message = fmt.Sprintf("dry run: %d devices targeted in %d waves; running it would publish %d group and %d per-device notices; set spec.dryRun to false to start",
		st.Totals.Targeted, len(st.Waves), groups, devices)
	setConditions(&st, ro.Generation, pol, "", "")
	out := Output{Status: st}
	if ro.Status.Phase != v1.PhaseDryRun {
		e, _ := phaseEvent(v1.PhaseDryRun, st.Message)
		out.Events = append(out.Events, e)
	}
	// A dry run that follows a real start cannot happen (it acts as a
	// pause then), but notices of an earlier run of this object could
	// still be out: nothing of a dry run stays on the broker.
	out.Actions = tr.withdrawals(in.Topics)
	return out
}

// preview counts, wave by wave, the notices starting it would add to those
// of the waves before, as desiredNotices would choose them with no cap.
func preview(in *Input, sel *selection, tr *Tracker) *v1.RolloutPreview {
	ro := *in.Rollout
	ro.Spec.Strategy.MaxInProgress = 0
	// What starting a wave publishes, whenever it starts: windows only
	// decide when.
	openSel := *sel
	openSel.windows = nil
	uncapped := *in
	uncapped.Rollout = &ro
	uncapped.Notices = nil
	uncapped.DeviceBudget = -1
	n := len(ro.Spec.Strategy.Waves)
	p := &v1.RolloutPreview{Waves: make([]v1.PreviewWave, n)}
	waves := make([]v1.WaveStatus, n)
	start := metav1.NewTime(in.Now)
	before := map[string]bool{}
	ordered := make([]*target, 0, len(tr.targets))
	for i := range tr.targets {
		ordered = append(ordered, &tr.targets[i])
	}
	sort.Slice(ordered, func(i, j int) bool { return targetBefore(ordered[i], ordered[j]) })
	for i := range n {
		waves[i].StartTime = &start
		pw := &p.Waves[i]
		desired, _ := desiredNotices(&uncapped, &openSel, tr, waves, false)
		for topic, a := range desired {
			if before[topic] {
				continue
			}
			before[topic] = true
			if a.Device != "" {
				pw.DeviceNotices++
			} else {
				pw.GroupNotices++
			}
		}
		for _, t := range ordered {
			if int(t.wave) != i {
				continue
			}
			pw.Targeted++
			if len(pw.Sample) < previewSample {
				pw.Sample = append(pw.Sample, t.id)
			}
		}
	}
	return p
}
