package fleet

import (
	"cmp"
	"slices"
)

// changeLog logs what changed (device slots, notice topics), oldest
// first, so that a planner catches up on what changed since it last
// looked instead of reading everything. Positions count every entry ever
// added. The log is bounded: once it holds twice what it keeps, the older
// half goes, amortised O(1) per change, and a planner that fell further
// behind reads everything again, which costs about what reading that many
// changes would.
type changeLog[T cmp.Ordered] struct {
	entries []T
	base    uint64 // the position of entries[0]
}

// minChangeLog is how many changes a log keeps however small the fleet.
const minChangeLog = 1 << 12

// add logs v; the log keeps at least the last keep entries.
func (l *changeLog[T]) add(v T, keep int) {
	l.entries = append(l.entries, v)
	keep = max(keep, minChangeLog)
	if len(l.entries) >= 2*keep {
		drop := len(l.entries) - keep
		l.base += uint64(drop)
		l.entries = append(l.entries[:0:0], l.entries[drop:]...)
	}
}

// end is the position after the last entry: the cursor to pass next.
func (l *changeLog[T]) end() uint64 { return l.base + uint64(len(l.entries)) }

// since returns the entries logged from cursor on, sorted, each once,
// appended to dst; ok is false when the log no longer reaches back to
// cursor.
func (l *changeLog[T]) since(cursor uint64, dst []T) (out []T, ok bool) {
	if cursor < l.base || cursor > l.end() {
		return dst, false
	}
	out = append(dst, l.entries[cursor-l.base:]...)
	slices.Sort(out)
	return slices.Compact(out), true
}
