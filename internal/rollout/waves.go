package rollout

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
)

// waveWalk is what walking the waves found.
type waveWalk struct {
	// active is the first wave not complete, -1 when all are.
	active int
	// gate names what holds the active wave back from starting, "" if
	// nothing does; until is set when the gate lifts by itself at a
	// known time (a soak, a scheduled start).
	gate  string
	until time.Time
	// gated counts approval gates up to the active wave.
	gated int
	// started and completed are the waves that started or completed in
	// this plan, for events.
	started, completed []int
}

// holdingGate returns what holds wave i back from starting, "" if nothing
// does. The gates form an ordered chain: pause by spec (or a dry run), the
// failure policy, the scheduled start, an approval gate, then the soak
// after the wave before, and a closed maintenance window; the first that
// holds names the reason people see.
func holdingGate(in *Input, sel *selection, st *v1.FirmwareRolloutStatus, pol policy, i, gated int) (reason string, until time.Time) {
	spec := &in.Rollout.Spec
	switch {
	case spec.Paused || spec.DryRun:
		return v1.ReasonPausedBySpec, time.Time{}
	case pol.tripped:
		return v1.ReasonFailureThreshold, time.Time{}
	case i == 0 && spec.Schedule != nil && spec.Schedule.StartTime != nil && in.Now.Before(spec.Schedule.StartTime.Time):
		return v1.ReasonScheduled, spec.Schedule.StartTime.Time
	case spec.Strategy.Waves[i].RequireApproval && spec.ApprovedWaves < int32(gated):
		return v1.ReasonWaitingForApproval, time.Time{}
	}
	if i > 0 {
		soak, done := spec.Strategy.Waves[i-1].PauseAfter, st.Waves[i-1].CompletionTime
		if soak != nil && done != nil && in.Now.Before(done.Add(soak.Duration)) {
			return v1.ReasonSoaking, done.Add(soak.Duration)
		}
	}
	if open, _ := sel.windows.Next(in.Now); open.After(in.Now) {
		return v1.ReasonOutsideMaintenanceWindow, open
	}
	return "", time.Time{}
}

// walkWaves completes started waves whose devices have all finished or
// gone offline, and starts the first wave not started once every wave
// before it is complete and no gate holds it.
func walkWaves(in *Input, sel *selection, st *v1.FirmwareRolloutStatus, c *tally, pol policy, ending bool) waveWalk {
	waves := in.Rollout.Spec.Strategy.Waves
	w := waveWalk{active: -1}
	gated := 0
	for i := range waves {
		if waves[i].RequireApproval {
			gated++
		}
		ws := &st.Waves[i]
		if ws.StartTime == nil && w.active < 0 && !ending {
			w.gate, w.until = holdingGate(in, sel, st, pol, i, gated)
			w.gated = gated
			switch w.gate {
			case "":
				t := metav1.NewTime(in.Now)
				ws.StartTime = &t
				w.started = append(w.started, i)
			case v1.ReasonWaitingForApproval:
				ws.State = v1.WaveWaitingForApproval
			case v1.ReasonSoaking:
				st.Waves[i-1].State = v1.WaveSoaking
			}
		}
		if ws.StartTime == nil {
			if w.active < 0 {
				w.active = i
			}
			continue
		}
		if ws.CompletionTime == nil && c.waveDone(i) {
			t := metav1.NewTime(in.Now)
			ws.CompletionTime = &t
			w.completed = append(w.completed, i)
		}
		switch {
		case ws.CompletionTime == nil:
			ws.State = v1.WaveProgressing
			if w.active < 0 {
				w.active = i
			}
		case ws.State != v1.WaveSoaking:
			ws.State = v1.WaveCompleted
		}
	}
	return w
}
