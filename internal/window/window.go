package window

import (
	"errors"
	"fmt"
	"strings"
	"time"
	_ "time/tzdata" // the image hack/image builds has no /usr/share/zoneinfo

	"github.com/robfig/cron/v3"
)

const (
	// maxDuration bounds one window: a longer one is almost certainly a
	// slip of unit (hours for minutes) rather than an intent.
	maxDuration = 7 * 24 * time.Hour

	// horizonYears bounds how far ahead of its argument a call looks for
	// openings. A cron schedule that fires at all fires at least every
	// eight years (29 February skips eight around 2100), so no next
	// opening is lost; only open time beyond ten years of windows is.
	horizonYears = 10

	// maxWindows bounds the openings one call visits. A cron Next costs a
	// few microseconds, so a schedule that fires every minute, or an
	// absurd duration, stays within tens of milliseconds.
	maxWindows = 10_000
)

// farFuture is what "never" is: the start of year 9999 rather than its
// end, so that it stays a four-digit year in every time zone, which RFC
// 3339 (and so a Kubernetes status) needs.
func farFuture() time.Time {
	return time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
}

// never is the answer "not within reach", kept after t (and in t's
// location) so that callers comparing it with t get a consistent answer
// even for an absurd t beyond farFuture.
func never(t time.Time) time.Time {
	if far := farFuture(); t.Before(far) {
		return far.In(t.Location())
	}
	return t.Add(time.Nanosecond)
}

// Spec is one maintenance window as a rollout writes it.
type Spec struct {
	// Schedule says when the window opens: a five-field cron expression
	// (minute hour day-of-month month day-of-week) or a descriptor such as
	// @daily, as in a CronJob. It has no seconds field, and no TZ= or
	// CRON_TZ= prefix: the time zone has its own field.
	Schedule string
	// Duration is how long each window stays open: more than zero, at
	// most a week.
	Duration time.Duration
	// TimeZone is the IANA time zone the schedule reads in, such as
	// "Europe/Berlin"; "" means UTC.
	TimeZone string
}

// Windows is a compiled union of maintenance windows. A nil *Windows is
// always open, and every method works on it.
type Windows struct {
	schedules []schedule
}

// schedule is one compiled Spec.
type schedule struct {
	// cron fires at the openings; its Location is the window's time zone.
	cron     *cron.SpecSchedule
	duration time.Duration
}

// Compile checks specs and compiles them into their union. No specs means
// no restriction: it returns nil, which is always open. The error, meant
// for people, names every wrong field by its path in the rollout, such as
// maintenanceWindows[1].schedule, one per line.
func Compile(specs []Spec) (*Windows, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	w := &Windows{schedules: make([]schedule, 0, len(specs))}
	var errs []error
	for i, spec := range specs {
		s, err := compile(fmt.Sprintf("maintenanceWindows[%d]", i), spec)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		w.schedules = append(w.schedules, s)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return w, nil
}

// compile checks each field of spec on its own, so that one edit can fix
// them all, and reports each wrong one under path.
func compile(path string, spec Spec) (schedule, error) {
	var errs []error
	sched, err := parseSchedule(spec.Schedule)
	if err != nil {
		errs = append(errs, fmt.Errorf("%s.schedule %q: %w", path, spec.Schedule, err))
	}
	loc, err := loadLocation(spec.TimeZone)
	if err != nil {
		errs = append(errs, fmt.Errorf("%s.timeZone %q: %w", path, spec.TimeZone, err))
	}
	switch {
	case spec.Duration <= 0:
		errs = append(errs, fmt.Errorf("%s.duration %v: must be more than zero", path, spec.Duration))
	case spec.Duration > maxDuration:
		errs = append(errs, fmt.Errorf("%s.duration %v: longer than a week (%v); a window that long is almost certainly a mistake", path, spec.Duration, maxDuration))
	}
	if len(errs) > 0 {
		return schedule{}, errors.Join(errs...)
	}
	sched.Location = loc
	s := schedule{cron: sched, duration: spec.Duration}
	// A date that does not exist (February 30th) parses but never comes.
	// A schedule that fires at all does so within eight years of any
	// instant, so asking from one fixed instant keeps Compile pure.
	ref := time.Date(2000, 1, 1, 0, 0, 0, 0, loc)
	if s.next(ref, ref.AddDate(horizonYears, 0, 0)).IsZero() {
		return schedule{}, fmt.Errorf("%s.schedule %q: never fires: no date matches it", path, spec.Schedule)
	}
	return s, nil
}

// parseSchedule parses a CronJob schedule. What CronJob accepts and a
// window cannot use is refused here with a reason.
func parseSchedule(expr string) (*cron.SpecSchedule, error) {
	switch {
	case expr == "":
		return nil, errors.New("must not be empty")
	case strings.Contains(expr, "TZ="):
		// CronJob refuses these as well. Checking first also keeps
		// robfig's parser, which panics on "TZ=x" without a space, away.
		return nil, errors.New("set the time zone in timeZone, not in the schedule")
	case strings.HasPrefix(expr, "@every"):
		// An interval counts from whenever it is asked, so the same
		// rollout would see different windows on every reconcile.
		return nil, errors.New(`@every is an interval, not a time of day; use a cron expression such as "0 */6 * * *"`)
	}
	parsed, err := cron.ParseStandard(expr)
	if err != nil {
		return nil, err
	}
	sched, ok := parsed.(*cron.SpecSchedule)
	if !ok {
		return nil, fmt.Errorf("not a calendar schedule (%T)", parsed)
	}
	// A field of bare commas ("0 0 , * *") matches nothing. Refusing it
	// here is cheaper than letting Next search five years minute by minute.
	if sched.Minute == 0 || sched.Hour == 0 || sched.Dom == 0 || sched.Month == 0 || sched.Dow == 0 {
		return nil, errors.New("never fires: a field matches no value")
	}
	return sched, nil
}

// loadLocation loads an IANA time zone; "" is UTC.
func loadLocation(name string) (*time.Location, error) {
	if name == "Local" {
		// time.LoadLocation would return the operator's own zone, which
		// differs between machines (CronJob refuses it too).
		return nil, errors.New(`"Local" means the zone of whichever machine reads it; name a zone such as "Europe/Berlin"`)
	}
	return time.LoadLocation(name)
}

// next returns the first opening strictly after t, in t's location, or
// the zero time if none comes before until.
func (s schedule) next(t, until time.Time) time.Time {
	// robfig gives up (zero) after searching to the end of the fifth year
	// ahead, but 29 February skips eight years around 2100; one more
	// search from five years on, which it has covered, bridges that.
	for range 2 {
		n := s.cron.Next(t)
		if n.After(until) {
			return time.Time{}
		}
		if !n.IsZero() {
			return n
		}
		t = t.AddDate(5, 0, 0)
	}
	return time.Time{}
}

// Open reports whether t is inside some window: start <= t < start+Duration.
func (w *Windows) Open(t time.Time) bool {
	if w == nil {
		return true
	}
	for _, s := range w.schedules {
		// A window open at t started less than its duration before t,
		// so t is inside one if some opening follows t-duration by t.
		if !s.next(t.Add(-s.duration), t).IsZero() {
			return true
		}
	}
	return false
}

// Next returns the open stretch that contains t (open <= t < close) or, if
// t is in none, the next one to open (t < open < close). Overlapping and
// touching windows merge: close is where the merged stretch ends. When t
// is inside, open is the start of the earliest window containing t, which
// may be later than the start of the whole stretch: finding that would
// walk back without bound.
//
// Next looks ten years ahead of t and visits at most 10,000 openings. With
// no opening in those ten years both results are "never", the start of
// year 9999; a stretch that does not end within those bounds (a window
// longer than its schedule's period, every hour for 90 minutes, never
// ends) closes "never". A nil *Windows returns t and "never".
func (w *Windows) Next(t time.Time) (open, close time.Time) {
	if w == nil {
		return t, never(t)
	}
	c := w.from(t)
	open, close, ok := c.pop()
	if !ok {
		return never(t), never(t)
	}
	for {
		start, ok := c.peek()
		switch {
		case !ok && close.After(c.until):
			// Open until past the horizon: that is as good as never.
			return open, never(t)
		case !ok, start.After(close):
			return open, close
		}
		_, end, ok := c.pop()
		if !ok {
			// Out of budget while still open.
			return open, never(t)
		}
		close = later(close, end)
	}
}

// AddOpen returns the earliest instant by which d of open time has passed
// since t, counting only time inside windows: a device's deadline when its
// timeout must not run while it waits for a window. It returns t when d <=
// 0, and t+d for a nil *Windows. It saturates to "never" (the start of year
// 9999) rather than walk on when the windows of the ten years after t do
// not hold d, or when counting d would visit more than 10,000 openings.
func (w *Windows) AddOpen(t time.Time, d time.Duration) time.Time {
	switch {
	case d <= 0:
		return t
	case w == nil:
		return t.Add(d)
	}
	c := w.from(t)
	// Openings come in order of start, so the open time they add is what
	// lies beyond counted, the latest end seen (or t, before any).
	counted := t
	for {
		start, end, ok := c.pop()
		if !ok {
			return never(t)
		}
		start = later(start, counted)
		if !end.After(start) {
			continue
		}
		if left := end.Sub(start); d <= left {
			return start.Add(d)
		}
		d -= end.Sub(start)
		counted = end
	}
}

// cursor visits the openings of every schedule, in order of start,
// beginning with the windows still open at some instant.
type cursor struct {
	schedules []schedule
	// starts holds each schedule's next opening to visit; zero once it
	// has none by until.
	starts []time.Time
	// until is the horizon: openings after it are not visited.
	until time.Time
	// budget is how many more openings pop may visit.
	budget int
}

// from returns a cursor at the first window of each schedule that is open
// at t or opens after it.
func (w *Windows) from(t time.Time) *cursor {
	c := &cursor{
		schedules: w.schedules,
		starts:    make([]time.Time, len(w.schedules)),
		until:     t.AddDate(horizonYears, 0, 0),
		budget:    maxWindows,
	}
	for i, s := range w.schedules {
		c.starts[i] = s.next(t.Add(-s.duration), c.until)
	}
	return c
}

// earliest is the index of the schedule whose next opening comes first,
// or -1 if none has one.
func (c *cursor) earliest() int {
	first := -1
	for i, start := range c.starts {
		if !start.IsZero() && (first < 0 || start.Before(c.starts[first])) {
			first = i
		}
	}
	return first
}

// peek returns the start of the next opening without visiting it.
func (c *cursor) peek() (time.Time, bool) {
	i := c.earliest()
	if i < 0 {
		return time.Time{}, false
	}
	return c.starts[i], true
}

// pop visits the next opening and returns its window. ok is false when
// there is none by the horizon or the budget is spent.
func (c *cursor) pop() (start, end time.Time, ok bool) {
	i := c.earliest()
	if i < 0 || c.budget == 0 {
		return time.Time{}, time.Time{}, false
	}
	c.budget--
	s := c.schedules[i]
	start = c.starts[i]
	c.starts[i] = s.next(start, c.until)
	return start, start.Add(s.duration), true
}

// later returns the later of a and b.
func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
