package window_test

import (
	"fmt"
	"time"

	"github.com/heraldiot/herald/internal/window"
)

func Example() {
	// Weekday nights from 02:00 Berlin time, for three hours.
	w, err := window.Compile([]window.Spec{{Schedule: "0 2 * * 1-5", Duration: 3 * time.Hour, TimeZone: "Europe/Berlin"}})
	if err != nil {
		panic(err)
	}
	friday := time.Date(2026, 3, 6, 2, 30, 0, 0, time.UTC) // 03:30 in Berlin
	fmt.Println("open on Friday:", w.Open(friday))

	// A 2h timeout started now: 90 minutes on Friday, 30 on Monday.
	fmt.Println("deadline:", w.AddOpen(friday, 2*time.Hour).UTC())

	open, close := w.Next(time.Date(2026, 3, 7, 12, 0, 0, 0, time.UTC))
	fmt.Println("after Saturday noon:", open.UTC(), "to", close.UTC())
	// Output:
	// open on Friday: true
	// deadline: 2026-03-09 01:30:00 +0000 UTC
	// after Saturday noon: 2026-03-09 01:00:00 +0000 UTC to 2026-03-09 04:00:00 +0000 UTC
}
