package view

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
)

// maxEvents is how many of the latest events a rollout view shows.
const maxEvents = 10

// minWatchForRate is how long a watch must have run before its own rate
// replaces the average since the rollout started: over seconds, a rate is
// noise.
const minWatchForRate = time.Minute

// The cells of a wave's progress bar.
const (
	cellSucceeded  = '#'
	cellInProgress = '>'
	cellFailed     = 'x'
	cellRejected   = 'r'
	cellSkipped    = '-'
	cellWaiting    = '.'
)

const barLegend = "# succeeded  > in progress  x failed  r rejected  - skipped  . waiting"

// RateSample is the rollout's counts at one moment, the start of a rate.
type RateSample struct {
	Time time.Time
	// Succeeded and Finished are status.totals.succeeded and the devices
	// that finished in any way (succeeded, failed, rejected, canceled,
	// skipped).
	Succeeded, Finished int32
}

// SampleOf takes the rollout's counts at now.
func SampleOf(ro *v1.FirmwareRollout, now time.Time) RateSample {
	t := &ro.Status.Totals
	return RateSample{Time: now, Succeeded: t.Succeeded, Finished: t.Succeeded + t.Failed + t.Rejected + t.Canceled + t.Skipped}
}

// RolloutView is everything `get rollout` shows. RenderRollout is a pure
// function of it.
type RolloutView struct {
	Rollout *v1.FirmwareRollout
	// Events regard the rollout, in any order.
	Events []eventsv1.Event
	// EventsErr says why Events could not be read ("" when they were).
	EventsErr string
	// Now is the time ages and rates are computed at.
	Now time.Time
	// Baseline is the rollout's counts when a watch started; nil for a
	// single look, whose rate is the average since the rollout started.
	Baseline *RateSample
}

// RenderRollout draws a rollout as text: summary, waves with progress bars,
// rates and ETA, what comes next, conditions, failures and recent events.
func RenderRollout(v RolloutView) string {
	ro := v.Rollout
	st := &ro.Status
	var b strings.Builder
	field := func(name, format string, args ...any) {
		fmt.Fprintf(&b, "%-12s %s\n", name+":", fmt.Sprintf(format, args...))
	}
	field("Name", "%s/%s", ro.Namespace, ro.Name)
	field("Fleet", "%s", ro.Spec.FleetRef.Name)
	field("Firmware", "%s for %s", ro.Spec.Firmware.Version, strings.Join(ro.Spec.Firmware.Models, ", "))
	field("Phase", "%s", OrDash(string(st.Phase)))
	if st.Message != "" {
		field("Message", "%s", OneLine(st.Message))
	}
	if n := len(ro.Spec.Strategy.Waves); st.CurrentWave > 0 {
		field("Wave", "%d of %d", st.CurrentWave, n)
	} else {
		field("Wave", "not started (%d waves)", n)
	}
	if st.StartTime != nil {
		field("Started", "%s (%s)", st.StartTime.UTC().Format(time.RFC3339), ago(v.Now, st.StartTime))
	}
	if st.CompletionTime != nil {
		field("Finished", "%s (%s)", st.CompletionTime.UTC().Format(time.RFC3339), ago(v.Now, st.CompletionTime))
	}
	if s := specSummary(ro); s != "" {
		field("Spec", "%s", s)
	}
	field("Devices", "%s", totalsSummary(&st.Totals))

	b.WriteString("\nWaves:\n")
	renderWaves(&b, ro)

	rate, eta, next := rateLine(v), etaLine(v), nextLine(ro, v.Now)
	if rate != "" || eta != "" || next != "" {
		b.WriteString("\n")
	}
	for _, l := range [][2]string{{"Rate", rate}, {"ETA", eta}, {"Next", next}} {
		if l[1] != "" {
			field(l[0], "%s", l[1])
		}
	}

	b.WriteString("\nConditions:\n")
	renderConditions(&b, st.Conditions, v.Now)

	if len(st.FailureSample) > 0 {
		b.WriteString("\nRecent failures:\n")
		t := Table{Indent: "  "}
		t.Row("DEVICE", "STATE", "REASON", "AGE")
		for _, f := range st.FailureSample {
			state := f.State
			if state == "" {
				state = "failed"
			}
			t.Row(OneLine(f.Device), OneLine(state), OneLine(OrDash(f.Reason)), age(v.Now, f.Time.Time))
		}
		t.Write(&b)
	}

	b.WriteString("\nEvents:")
	renderEvents(&b, v)
	return b.String()
}

// specSummary lists the spec fields a person drives, when set.
func specSummary(ro *v1.FirmwareRollout) string {
	var parts []string
	if gates := ApprovalGates(ro); len(gates) > 0 {
		parts = append(parts, fmt.Sprintf("approvedWaves %d of %d gates", ro.Spec.ApprovedWaves, len(gates)))
	}
	if ro.Spec.Paused {
		parts = append(parts, "paused")
	}
	if ro.Spec.DryRun {
		parts = append(parts, "dryRun")
	}
	if ro.Spec.Canceled {
		parts = append(parts, "canceled")
	}
	if n := len(ro.Spec.SkipDevices); n > 0 {
		parts = append(parts, Plural(int64(n), "device")+" in skipDevices")
	}
	return strings.Join(parts, ", ")
}

// totalsSummary is "31/300 succeeded" and the other states with devices.
func totalsSummary(t *v1.DeviceTotals) string {
	s := fmt.Sprintf("%d/%d succeeded", t.Succeeded, t.Targeted)
	add := func(n int32, what string) {
		if n > 0 {
			s += fmt.Sprintf(", %d %s", n, what)
		}
	}
	if t.TimedOut > 0 {
		add(t.Failed, fmt.Sprintf("failed (%d timed out)", t.TimedOut))
	} else {
		add(t.Failed, "failed")
	}
	add(t.Rejected, "rejected")
	add(t.InProgress, "in progress")
	add(t.Notified, "notified")
	add(t.Waiting, "waiting")
	add(t.Canceled, "canceled")
	add(t.Skipped, "skipped")
	add(t.Offline, "offline")
	return s
}

// waveCounts splits a wave's devices into the bar's segments.
type waveCounts struct {
	ok, run, failed, rejected, skipped, waiting int32
}

func countsOf(w *v1.WaveStatus) waveCounts {
	finished := w.Succeeded + w.Failed + w.Rejected + w.Skipped
	// Devices already on the target version count as succeeded without
	// a notice, so finished devices can outnumber notified ones.
	reached := max(w.Notified, finished)
	return waveCounts{
		ok: w.Succeeded, run: reached - finished, failed: w.Failed,
		rejected: w.Rejected, skipped: w.Skipped, waiting: max(0, w.Targeted-reached),
	}
}

func renderWaves(b *strings.Builder, ro *v1.FirmwareRollout) {
	spec, st := ro.Spec.Strategy.Waves, ro.Status.Waves
	t := Table{Indent: "  "}
	t.Row("", "WAVE", "SIZE", "STATE", "DEVICES", "PROGRESS", "OK", "RUN", "FAIL", "REJ", "SKIP", "WAIT", "GATE")
	for i := range max(len(spec), len(st)) {
		mark := ""
		if int32(i+1) == ro.Status.CurrentWave {
			mark = "*"
		}
		size, gate := "-", ""
		if i < len(spec) {
			size, gate = waveSize(&spec[i]), waveGate(&spec[i])
		}
		if i >= len(st) {
			t.Row(mark, strconv.Itoa(i+1), size, "-", "-", bar(barWidth), "-", "-", "-", "-", "-", "-", gate)
			continue
		}
		w := &st[i]
		c := countsOf(w)
		pb := bar(barWidth,
			segment{int64(c.ok), cellSucceeded}, segment{int64(c.run), cellInProgress},
			segment{int64(c.failed), cellFailed}, segment{int64(c.rejected), cellRejected},
			segment{int64(c.skipped), cellSkipped}, segment{int64(c.waiting), cellWaiting})
		num := func(n int32) string { return strconv.Itoa(int(n)) }
		t.Row(mark, strconv.Itoa(i+1), size, string(w.State), num(w.Targeted), pb,
			num(c.ok), num(c.run), num(c.failed), num(c.rejected), num(c.skipped), num(c.waiting), gate)
	}
	t.Write(b)
	fmt.Fprintf(b, "  %s\n", barLegend)
}

func waveSize(w *v1.Wave) string {
	switch {
	case w.Percent != nil:
		return fmt.Sprintf("%d%%", *w.Percent)
	case w.Count != nil:
		return strconv.Itoa(int(*w.Count))
	}
	return "-"
}

func waveGate(w *v1.Wave) string {
	var parts []string
	if w.RequireApproval {
		parts = append(parts, "approval")
	}
	if w.PauseAfter != nil && w.PauseAfter.Duration > 0 {
		parts = append(parts, "soak "+human(w.PauseAfter.Duration))
	}
	return strings.Join(parts, ", ")
}

// ApprovalGates are the indexes of the waves that require approval.
func ApprovalGates(ro *v1.FirmwareRollout) []int {
	var gates []int
	for i, w := range ro.Spec.Strategy.Waves {
		if w.RequireApproval {
			gates = append(gates, i)
		}
	}
	return gates
}

// rates returns devices per minute that succeeded and that finished, and
// over what they were measured; ok is false when nothing can be measured.
func rates(v RolloutView) (succeeded, finished float64, basis string, ok bool) {
	st := &v.Rollout.Status
	now := SampleOf(v.Rollout, v.Now)
	var from RateSample
	switch {
	case st.Phase.Terminal() && st.StartTime != nil && st.CompletionTime != nil:
		from = RateSample{Time: st.StartTime.Time}
		now.Time = st.CompletionTime.Time
		basis = "over the whole rollout"
	case v.Baseline != nil && v.Now.Sub(v.Baseline.Time) >= minWatchForRate:
		from = *v.Baseline
		basis = "over " + human(v.Now.Sub(from.Time)) + " of watching"
	case st.StartTime != nil:
		from = RateSample{Time: st.StartTime.Time}
		basis = "average since the first notice"
	default:
		return 0, 0, "", false
	}
	minutes := now.Time.Sub(from.Time).Minutes()
	if minutes <= 0 {
		return 0, 0, "", false
	}
	return float64(now.Succeeded-from.Succeeded) / minutes, float64(now.Finished-from.Finished) / minutes, basis, true
}

func rateLine(v RolloutView) string {
	succ, _, basis, ok := rates(v)
	if !ok {
		return ""
	}
	return fmt.Sprintf("%.1f devices/min succeeded, %s", succ, basis)
}

// etaLine estimates when the started waves finish, from the rate at which
// devices finish. It is computable only while waves progress and devices
// are finishing; gates and soaks ahead are not guessed at.
func etaLine(v RolloutView) string {
	st := &v.Rollout.Status
	if st.Phase != v1.PhaseProgressing {
		return ""
	}
	var left int32
	for i := range st.Waves {
		w := &st.Waves[i]
		if w.StartTime == nil || w.State != v1.WaveProgressing {
			continue
		}
		left += max(0, w.Targeted-w.Succeeded-w.Failed-w.Rejected-w.Skipped)
	}
	_, finished, _, ok := rates(v)
	if !ok || left == 0 || finished <= 0 {
		return ""
	}
	eta := time.Duration(float64(left) / finished * float64(time.Minute)).Round(time.Second)
	return fmt.Sprintf("~%s for wave %d (%s left, finishing %.1f/min)", human(eta), st.CurrentWave, Plural(int64(left), "device"), finished)
}

// nextLine says what the rollout waits for and, when a person can act, how.
func nextLine(ro *v1.FirmwareRollout, now time.Time) string {
	st := &ro.Status
	ref := ro.Name + " -n " + ro.Namespace
	switch st.Phase {
	case v1.PhaseWaitingForApproval:
		for i, w := range st.Waves {
			if w.State == v1.WaveWaitingForApproval {
				return fmt.Sprintf("wave %d waits for approval: kubectl herald approve %s", i+1, ref)
			}
		}
		return "a wave waits for approval: kubectl herald approve " + ref
	case v1.PhasePaused:
		switch {
		case ro.Spec.Paused:
			return "paused by spec.paused: kubectl herald resume " + ref
		case ro.Spec.DryRun:
			return "held by spec.dryRun: set it to false to go on"
		case apimeta.IsStatusConditionTrue(st.Conditions, v1.ConditionDegraded):
			return "paused by the failure policy: raise spec.failurePolicy's thresholds to go on"
		}
	case v1.PhaseDryRun:
		return "dry run: set spec.dryRun to false to start"
	case v1.PhasePending:
		if s := ro.Spec.Schedule; s != nil && s.StartTime != nil && s.StartTime.After(now) {
			return fmt.Sprintf("starts at %s (in %s)", s.StartTime.UTC().Format(time.RFC3339), human(s.StartTime.Sub(now)))
		}
	case v1.PhaseProgressing:
		for i, w := range st.Waves {
			if w.State != v1.WaveSoaking || w.CompletionTime == nil || i >= len(ro.Spec.Strategy.Waves) || i+1 >= len(ro.Spec.Strategy.Waves) {
				continue
			}
			soak := ro.Spec.Strategy.Waves[i].PauseAfter
			if soak == nil {
				continue
			}
			at := w.CompletionTime.Add(soak.Duration)
			if at.After(now) {
				return fmt.Sprintf("wave %d starts in ~%s (soak after wave %d)", i+2, human(at.Sub(now)), i+1)
			}
		}
	}
	return ""
}

func renderConditions(b *strings.Builder, conds []metav1.Condition, now time.Time) {
	if len(conds) == 0 {
		b.WriteString("  <none>\n")
		return
	}
	t := Table{Indent: "  "}
	t.Row("TYPE", "STATUS", "REASON", "AGE", "MESSAGE")
	for _, c := range conds {
		t.Row(OneLine(c.Type), string(c.Status), OneLine(OrDash(c.Reason)), age(now, c.LastTransitionTime.Time), OneLine(c.Message))
	}
	t.Write(b)
}

// eventTime is when an event (or the last of its series) happened.
func eventTime(e *eventsv1.Event) time.Time {
	switch {
	case e.Series != nil && !e.Series.LastObservedTime.IsZero():
		return e.Series.LastObservedTime.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	case !e.DeprecatedLastTimestamp.IsZero():
		return e.DeprecatedLastTimestamp.Time
	}
	return e.CreationTimestamp.Time
}

func renderEvents(b *strings.Builder, v RolloutView) {
	if v.EventsErr != "" {
		fmt.Fprintf(b, " <%s>\n", OneLine(v.EventsErr))
		return
	}
	if len(v.Events) == 0 {
		b.WriteString(" <none>\n")
		return
	}
	evs := make([]*eventsv1.Event, len(v.Events))
	for i := range v.Events {
		evs[i] = &v.Events[i]
	}
	// Oldest first, like kubectl describe, so the newest is next to the
	// prompt; ties by name keep the order stable.
	sort.Slice(evs, func(i, j int) bool {
		ti, tj := eventTime(evs[i]), eventTime(evs[j])
		if !ti.Equal(tj) {
			return ti.Before(tj)
		}
		return evs[i].Name < evs[j].Name
	})
	if len(evs) > maxEvents {
		evs = evs[len(evs)-maxEvents:]
	}
	b.WriteString("\n")
	t := Table{Indent: "  "}
	t.Row("AGE", "TYPE", "REASON", "MESSAGE")
	for _, e := range evs {
		when := age(v.Now, eventTime(e))
		if e.Series != nil && e.Series.Count > 1 {
			when += fmt.Sprintf(" (x%d)", e.Series.Count)
		}
		t.Row(when, OneLine(OrDash(e.Type)), OneLine(OrDash(e.Reason)), OneLine(e.Note))
	}
	t.Write(b)
}
