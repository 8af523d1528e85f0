package view

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
)

// barWidth is the number of cells between the brackets of a progress bar.
const barWidth = 30

// segment is one part of a progress bar: n devices drawn with ch.
type segment struct {
	n  int64
	ch byte
}

// bar draws segments into width cells, in order, between brackets. Cells
// are shared out in proportion, remainders going to the largest
// fractions, and every segment with devices gets at least one cell, so that
// a single failure among thousands still shows. An empty bar has no
// devices to draw.
func bar(width int, segs ...segment) string {
	var total int64
	nonzero := 0
	for _, s := range segs {
		if s.n > 0 {
			total += s.n
			nonzero++
		}
	}
	if total == 0 {
		return "[" + strings.Repeat(" ", width) + "]"
	}
	cells := make([]int, len(segs))
	rem := make([]int64, len(segs))
	used := 0
	for i, s := range segs {
		if s.n <= 0 {
			continue
		}
		cells[i] = int(s.n * int64(width) / total)
		rem[i] = s.n * int64(width) % total
		used += cells[i]
	}
	// Flooring lost fewer cells than there are segments with devices.
	for used < width {
		best := -1
		for i, s := range segs {
			if s.n > 0 && rem[i] >= 0 && (best < 0 || rem[i] > rem[best]) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		cells[best]++
		rem[best] = -1
		used++
	}
	if nonzero <= width {
		for i, s := range segs {
			if s.n <= 0 || cells[i] > 0 {
				continue
			}
			widest := 0
			for j := range cells {
				if cells[j] > cells[widest] {
					widest = j
				}
			}
			cells[widest]--
			cells[i]++
		}
	}
	var b strings.Builder
	b.WriteByte('[')
	for i, s := range segs {
		b.WriteString(strings.Repeat(string(s.ch), cells[i]))
	}
	b.WriteByte(']')
	return b.String()
}

// human prints a duration the way kubectl prints ages ("45s", "12m",
// "3h5m"). A negative one, from clock skew between the operator and this
// machine, prints as 0s.
func human(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	return duration.HumanDuration(d)
}

// ago prints how long before now t was, or "-" for no time.
func ago(now time.Time, t *metav1.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return human(now.Sub(t.Time)) + " ago"
}

// age prints how long before now t was, kubectl's AGE column, or "-".
func age(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return human(now.Sub(t))
}

// Table collects rows of cells and writes them aligned, each line after
// Indent. Cells must not hold tabs or newlines.
type Table struct {
	Indent string
	rows   [][]string
}

// Row adds a row.
func (t *Table) Row(cells ...string) { t.rows = append(t.rows, cells) }

// Write prints the table. Lines lose the padding tabwriter gives a cell
// followed by empty ones.
func (t *Table) Write(w io.Writer) {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 8, 2, ' ', 0)
	for _, r := range t.rows {
		fmt.Fprintln(tw, t.Indent+strings.Join(r, "\t"))
	}
	tw.Flush()
	for line := range strings.Lines(b.String()) {
		io.WriteString(w, strings.TrimRight(line, " \n")+"\n")
	}
}

// OneLine makes text from the cluster or a device safe for one table cell:
// control characters, tabs and newlines become spaces, so that a message
// can neither break the layout nor send escape sequences to a terminal.
func OneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (0x80 <= r && r <= 0x9f) {
			return ' '
		}
		return r
	}, s)
}

// OrDash returns s, or "-" when it is empty.
func OrDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ShellQuote quotes s for a POSIX shell when it holds anything but
// characters that never need quoting.
func ShellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./_-") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Plural returns "1 device" or "3 devices".
func Plural(n int64, word string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}
