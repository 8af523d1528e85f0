package rollout

import (
	v1 "github.com/heraldiot/herald/api/v1alpha1"
)

// tally is what a plan needs to know of all the targets together, kept as
// targets come, go and change, so that a plan reads counts instead of
// walking a million devices.
type tally struct {
	totals v1.DeviceTotals
	waves  []waveTally // by wave; targets beyond the last wave are in none
	// The failure policy's arithmetic: successes of this rollout (of
	// devices not already current), failures, rejections.
	succeeded, failed, rejected int
}

// waveTally is one wave's share of the tally.
type waveTally struct {
	targeted, notified, succeeded, failed, rejected, skipped int32
	// open counts devices neither finished nor offline beyond the grace:
	// the wave is done when none is left.
	open int32
}

func newTally(waves int) tally { return tally{waves: make([]waveTally, waves)} }

// add counts t n times (1 to add it, -1 to take it out).
func (c *tally) add(t *target, n int32) {
	s := &c.totals
	s.Targeted += n
	if int(t.wave) < len(c.waves) {
		w := &c.waves[t.wave]
		w.targeted += n
		if t.progress != waiting {
			w.notified += n
		}
		switch t.progress {
		case succeeded:
			w.succeeded += n
		case failed:
			w.failed += n
		case rejected:
			w.rejected += n
		case skipped:
			w.skipped += n
		}
		if !t.progress.finished() && !t.offline {
			w.open += n
		}
	}
	switch t.progress {
	case waiting:
		s.Waiting += n
	case notified:
		s.Notified += n
	case inProgress:
		s.InProgress += n
	case succeeded:
		s.Succeeded += n
		if !t.current {
			c.succeeded += int(n)
		}
	case failed:
		s.Failed += n
		c.failed += int(n)
		if t.timedOut {
			s.TimedOut += n
		}
	case rejected:
		s.Rejected += n
		c.rejected += int(n)
	case canceled:
		s.Canceled += n
	case skipped:
		s.Skipped += n
	case retrying:
		s.Retrying += n
	}
	// A device on attempt n was given n-1 retry notices.
	s.Retries += n * int32(max(t.attempt, 1)-1)
	if t.exhausted {
		s.RetriesExhausted += n
	}
	if t.offline && !t.progress.finished() {
		s.Offline += n
	}
}

// outstanding counts the devices a notice reached that have not finished
// with it: what spec.strategy.maxInProgress caps.
func (c *tally) outstanding() int { return int(c.totals.Notified + c.totals.InProgress) }

// waveDone reports whether every device of wave i has finished or is
// offline beyond the grace period.
func (c *tally) waveDone(i int) bool { return i >= len(c.waves) || c.waves[i].open == 0 }
