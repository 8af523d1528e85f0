package window

import (
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/robfig/cron/v3"
)

// at parses an RFC 3339 instant; the tables write times in UTC unless a
// case is about offsets.
func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

// compiled compiles specs for a table, where a bad spec is a bug in the
// test itself.
func compiled(specs ...Spec) *Windows {
	w, err := Compile(specs)
	if err != nil {
		panic(err)
	}
	return w
}

func TestCompileErrors(t *testing.T) {
	hour := time.Hour
	for name, tc := range map[string]struct {
		specs []Spec
		want  string
	}{
		"hour out of range": {
			[]Spec{{Schedule: "@daily", Duration: hour}, {Schedule: "0 25 * * *", Duration: hour}},
			`maintenanceWindows[1].schedule "0 25 * * *": end of range (25) above maximum (23): 25`,
		},
		"too few fields": {
			[]Spec{{Schedule: "0 2 * *", Duration: hour}},
			`maintenanceWindows[0].schedule "0 2 * *": expected exactly 5 fields, found 4: [0 2 * *]`,
		},
		"a seconds field": {
			[]Spec{{Schedule: "0 0 2 * * *", Duration: hour}},
			`maintenanceWindows[0].schedule "0 0 2 * * *": expected exactly 5 fields, found 6: [0 0 2 * * *]`,
		},
		"zero step": {
			[]Spec{{Schedule: "*/0 * * * *", Duration: hour}},
			`maintenanceWindows[0].schedule "*/0 * * * *": step of range should be a positive number: */0`,
		},
		"misspelt day": {
			[]Spec{{Schedule: "0 2 * * MON-FRY", Duration: hour}},
			`maintenanceWindows[0].schedule "0 2 * * MON-FRY": failed to parse int from FRY: strconv.Atoi: parsing "FRY": invalid syntax`,
		},
		"unknown descriptor": {
			[]Spec{{Schedule: "@fortnightly", Duration: hour}},
			`maintenanceWindows[0].schedule "@fortnightly": unrecognized descriptor: @fortnightly`,
		},
		"empty": {
			[]Spec{{Schedule: "", Duration: hour}},
			`maintenanceWindows[0].schedule "": must not be empty`,
		},
		"@every": {
			[]Spec{{Schedule: "@every 1h", Duration: hour}},
			`maintenanceWindows[0].schedule "@every 1h": @every is an interval, not a time of day; use a cron expression such as "0 */6 * * *"`,
		},
		"CRON_TZ prefix": {
			[]Spec{{Schedule: "CRON_TZ=Europe/Berlin 0 2 * * *", Duration: hour}},
			`maintenanceWindows[0].schedule "CRON_TZ=Europe/Berlin 0 2 * * *": set the time zone in timeZone, not in the schedule`,
		},
		"TZ prefix without a space": { // robfig's parser would panic on it
			[]Spec{{Schedule: "TZ=UTC", Duration: hour}},
			`maintenanceWindows[0].schedule "TZ=UTC": set the time zone in timeZone, not in the schedule`,
		},
		"30 February": {
			[]Spec{{Schedule: "0 0 30 2 *", Duration: hour}},
			`maintenanceWindows[0].schedule "0 0 30 2 *": never fires: no date matches it`,
		},
		"31 April and June": {
			[]Spec{{Schedule: "0 0 31 4,6 *", Duration: hour}},
			`maintenanceWindows[0].schedule "0 0 31 4,6 *": never fires: no date matches it`,
		},
		"a field of commas": {
			[]Spec{{Schedule: "0 0 , * *", Duration: hour}},
			`maintenanceWindows[0].schedule "0 0 , * *": never fires: a field matches no value`,
		},
		"zero duration": {
			[]Spec{{Schedule: "@daily"}},
			`maintenanceWindows[0].duration 0s: must be more than zero`,
		},
		"negative duration": {
			[]Spec{{Schedule: "@daily", Duration: -time.Minute}},
			`maintenanceWindows[0].duration -1m0s: must be more than zero`,
		},
		"longer than a week": {
			[]Spec{{Schedule: "@weekly", Duration: 7*24*hour + time.Second}},
			`maintenanceWindows[0].duration 168h0m1s: longer than a week (168h0m0s); a window that long is almost certainly a mistake`,
		},
		"unknown time zone": {
			[]Spec{{Schedule: "@daily", Duration: hour, TimeZone: "Mars/Olympus"}},
			`maintenanceWindows[0].timeZone "Mars/Olympus": unknown time zone Mars/Olympus`,
		},
		"Local": {
			[]Spec{{Schedule: "@daily", Duration: hour, TimeZone: "Local"}},
			`maintenanceWindows[0].timeZone "Local": "Local" means the zone of whichever machine reads it; name a zone such as "Europe/Berlin"`,
		},
		"a path for a zone": {
			[]Spec{{Schedule: "@daily", Duration: hour, TimeZone: "../etc/passwd"}},
			`maintenanceWindows[0].timeZone "../etc/passwd": time: invalid location name`,
		},
		"every field wrong, in two windows": {
			[]Spec{
				{Schedule: "0 25 * * *", TimeZone: "Nowhere"},
				{Schedule: "@daily", Duration: 200 * hour},
			},
			`maintenanceWindows[0].schedule "0 25 * * *": end of range (25) above maximum (23): 25` + "\n" +
				`maintenanceWindows[0].timeZone "Nowhere": unknown time zone Nowhere` + "\n" +
				`maintenanceWindows[0].duration 0s: must be more than zero` + "\n" +
				`maintenanceWindows[1].duration 200h0m0s: longer than a week (168h0m0s); a window that long is almost certainly a mistake`,
		},
	} {
		t.Run(name, func(t *testing.T) {
			w, err := Compile(tc.specs)
			if err == nil {
				t.Fatalf("Compile = %v, nil; want error %q", w, tc.want)
			}
			if w != nil {
				t.Errorf("Compile returned windows with its error")
			}
			if err.Error() != tc.want {
				t.Errorf("error\n got %q\nwant %q", err, tc.want)
			}
		})
	}
}

func TestCompileAccepts(t *testing.T) {
	for name, tc := range map[string]struct {
		specs []Spec
		isNil bool // no windows: nil, which is always open
	}{
		"nil":                  {nil, true},
		"empty":                {[]Spec{}, true},
		"weekday nights":       {[]Spec{{Schedule: "0 2 * * MON-FRI", Duration: 3 * time.Hour, TimeZone: "Europe/Berlin"}}, false},
		"steps and lists":      {[]Spec{{Schedule: "*/15 1-3,22 * * *", Duration: time.Minute}}, false},
		"descriptors":          {[]Spec{{Schedule: "@yearly", Duration: time.Hour}, {Schedule: "@annually", Duration: time.Hour}, {Schedule: "@monthly", Duration: time.Hour}, {Schedule: "@weekly", Duration: time.Hour}, {Schedule: "@daily", Duration: time.Hour}, {Schedule: "@midnight", Duration: time.Hour}, {Schedule: "@hourly", Duration: time.Hour}}, false},
		"29 February":          {[]Spec{{Schedule: "0 0 29 2 *", Duration: time.Hour}}, false},
		"exactly a week":       {[]Spec{{Schedule: "@weekly", Duration: 7 * 24 * time.Hour}}, false},
		"UTC spelt out":        {[]Spec{{Schedule: "@daily", Duration: time.Hour, TimeZone: "UTC"}}, false},
		"question mark as day": {[]Spec{{Schedule: "0 2 ? * 1", Duration: time.Hour, TimeZone: "America/New_York"}}, false},
	} {
		t.Run(name, func(t *testing.T) {
			w, err := Compile(tc.specs)
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			if (w == nil) != tc.isNil {
				t.Errorf("Compile = %v, want nil: %v", w, tc.isNil)
			}
		})
	}
}

func TestOpenAndNext(t *testing.T) {
	nightly := compiled(Spec{Schedule: "0 2 * * *", Duration: 4 * time.Hour})
	never := farFuture()
	for name, tc := range map[string]struct {
		w           *Windows
		t           time.Time
		open        bool
		from, until time.Time
	}{
		"before the opening":              {nightly, at("2026-03-02T01:59:59Z"), false, at("2026-03-02T02:00:00Z"), at("2026-03-02T06:00:00Z")},
		"a nanosecond before the opening": {nightly, at("2026-03-02T01:59:59.999999999Z"), false, at("2026-03-02T02:00:00Z"), at("2026-03-02T06:00:00Z")},
		"at the opening, which is inside": {nightly, at("2026-03-02T02:00:00Z"), true, at("2026-03-02T02:00:00Z"), at("2026-03-02T06:00:00Z")},
		"inside":                          {nightly, at("2026-03-02T04:00:00Z"), true, at("2026-03-02T02:00:00Z"), at("2026-03-02T06:00:00Z")},
		"the last nanosecond inside":      {nightly, at("2026-03-02T05:59:59.999999999Z"), true, at("2026-03-02T02:00:00Z"), at("2026-03-02T06:00:00Z")},
		"at the close, which is outside":  {nightly, at("2026-03-02T06:00:00Z"), false, at("2026-03-03T02:00:00Z"), at("2026-03-03T06:00:00Z")},
		"after":                           {nightly, at("2026-03-02T12:00:00Z"), false, at("2026-03-03T02:00:00Z"), at("2026-03-03T06:00:00Z")},
		"t in another zone":               {nightly, at("2026-03-02T03:30:00+01:00"), true, at("2026-03-02T02:00:00Z"), at("2026-03-02T06:00:00Z")},
		"weekdays only, on a Friday afternoon": {
			compiled(Spec{Schedule: "0 2 * * 1-5", Duration: 3 * time.Hour}),
			at("2026-03-06T12:00:00Z"), false, at("2026-03-09T02:00:00Z"), at("2026-03-09T05:00:00Z"),
		},
		"two windows: the next is the other": {
			compiled(Spec{Schedule: "0 2 * * *", Duration: time.Hour}, Spec{Schedule: "0 22 * * *", Duration: time.Hour}),
			at("2026-03-02T12:00:00Z"), false, at("2026-03-02T22:00:00Z"), at("2026-03-02T23:00:00Z"),
		},
		"overlapping windows merge, before both": {
			compiled(Spec{Schedule: "0 2 * * *", Duration: 2 * time.Hour}, Spec{Schedule: "0 3 * * *", Duration: 2 * time.Hour}),
			at("2026-03-02T01:00:00Z"), false, at("2026-03-02T02:00:00Z"), at("2026-03-02T05:00:00Z"),
		},
		"overlapping windows merge, inside both": {
			compiled(Spec{Schedule: "0 2 * * *", Duration: 2 * time.Hour}, Spec{Schedule: "0 3 * * *", Duration: 2 * time.Hour}),
			at("2026-03-02T03:30:00Z"), true, at("2026-03-02T02:00:00Z"), at("2026-03-02T05:00:00Z"),
		},
		// open is the earliest window containing t, not the stretch's start.
		"overlapping windows merge, inside the later only": {
			compiled(Spec{Schedule: "0 2 * * *", Duration: 2 * time.Hour}, Spec{Schedule: "0 3 * * *", Duration: 2 * time.Hour}),
			at("2026-03-02T04:30:00Z"), true, at("2026-03-02T03:00:00Z"), at("2026-03-02T05:00:00Z"),
		},
		"adjacent windows merge": {
			compiled(Spec{Schedule: "0 2 * * *", Duration: time.Hour}, Spec{Schedule: "0 3 * * *", Duration: time.Hour}),
			at("2026-03-02T02:30:00Z"), true, at("2026-03-02T02:00:00Z"), at("2026-03-02T04:00:00Z"),
		},
		"adjacent windows, at the seam": {
			compiled(Spec{Schedule: "0 2 * * *", Duration: time.Hour}, Spec{Schedule: "0 3 * * *", Duration: time.Hour}),
			at("2026-03-02T03:00:00Z"), true, at("2026-03-02T03:00:00Z"), at("2026-03-02T04:00:00Z"),
		},
		"a window inside another": {
			compiled(Spec{Schedule: "0 2 * * *", Duration: 4 * time.Hour}, Spec{Schedule: "0 3 * * *", Duration: time.Hour}),
			at("2026-03-02T03:30:00Z"), true, at("2026-03-02T02:00:00Z"), at("2026-03-02T06:00:00Z"),
		},
		"the same window twice": {
			compiled(Spec{Schedule: "0 2 * * *", Duration: 4 * time.Hour}, Spec{Schedule: "0 2 * * *", Duration: 4 * time.Hour}),
			at("2026-03-02T12:00:00Z"), false, at("2026-03-03T02:00:00Z"), at("2026-03-03T06:00:00Z"),
		},
		"yesterday's window still open": {
			compiled(Spec{Schedule: "0 23 * * *", Duration: 4 * time.Hour}, Spec{Schedule: "0 2 * * *", Duration: 2 * time.Hour}),
			at("2026-03-02T01:00:00Z"), true, at("2026-03-01T23:00:00Z"), at("2026-03-02T04:00:00Z"),
		},
		"a chain of overlapping openings that ends": {
			compiled(Spec{Schedule: "*/20 9-16 * * *", Duration: 30 * time.Minute}),
			at("2026-03-02T12:05:00Z"), true, at("2026-03-02T11:40:00Z"), at("2026-03-02T17:10:00Z"),
		},
		"longer than the period: never closes": {
			compiled(Spec{Schedule: "0 * * * *", Duration: 90 * time.Minute}),
			at("2026-03-02T10:29:00Z"), true, at("2026-03-02T09:00:00Z"), never,
		},
		"longer than the period, at an end": {
			compiled(Spec{Schedule: "0 * * * *", Duration: 90 * time.Minute}),
			at("2026-03-02T10:30:00Z"), true, at("2026-03-02T10:00:00Z"), never,
		},
		"longer than the period, before the first opening": {
			compiled(Spec{Schedule: "0 * 2 3 *", Duration: 90 * time.Minute}),
			at("2026-03-01T12:00:00Z"), false, at("2026-03-02T00:00:00Z"), at("2026-03-03T00:30:00Z"),
		},
		"a week-long window opening weekly": {
			compiled(Spec{Schedule: "@weekly", Duration: 7 * 24 * time.Hour}),
			at("2026-03-02T12:00:00Z"), true, at("2026-03-01T00:00:00Z"), never,
		},
		"29 February, from a year before": {
			compiled(Spec{Schedule: "0 0 29 2 *", Duration: time.Hour}),
			at("2027-03-01T00:00:00Z"), false, at("2028-02-29T00:00:00Z"), at("2028-02-29T01:00:00Z"),
		},
		"29 February, across 2100, which is no leap year": {
			compiled(Spec{Schedule: "0 0 29 2 *", Duration: time.Hour}),
			at("2097-03-01T00:00:00Z"), false, at("2104-02-29T00:00:00Z"), at("2104-02-29T01:00:00Z"),
		},
		"Berlin in winter (UTC+1)": {
			compiled(Spec{Schedule: "0 2 * * *", Duration: time.Hour, TimeZone: "Europe/Berlin"}),
			at("2026-01-10T01:30:00Z"), true, at("2026-01-10T01:00:00Z"), at("2026-01-10T02:00:00Z"),
		},
		"Berlin in summer (UTC+2)": {
			compiled(Spec{Schedule: "0 2 * * *", Duration: time.Hour, TimeZone: "Europe/Berlin"}),
			at("2026-07-10T00:30:00Z"), true, at("2026-07-10T00:00:00Z"), at("2026-07-10T01:00:00Z"),
		},
		// 2026-03-29 02:00 CET jumps to 03:00 CEST: 02:30 does not exist,
		// and cron skips that day's opening.
		"Berlin spring forward: a skipped time does not fire": {
			compiled(Spec{Schedule: "30 2 * * *", Duration: time.Hour, TimeZone: "Europe/Berlin"}),
			at("2026-03-28T12:00:00Z"), false, at("2026-03-30T00:30:00Z"), at("2026-03-30T01:30:00Z"),
		},
		"Berlin spring forward: the duration is elapsed time": {
			compiled(Spec{Schedule: "0 1 * * *", Duration: 3 * time.Hour, TimeZone: "Europe/Berlin"}),
			at("2026-03-29T02:30:00Z"), true, at("2026-03-29T00:00:00Z"), at("2026-03-29T03:00:00Z"),
		},
		// 2026-10-25 03:00 CEST falls back to 02:00 CET: 02:30 comes twice,
		// and cron fires at both; the two windows touch and merge.
		"Berlin fall back: a repeated time fires twice": {
			compiled(Spec{Schedule: "30 2 * * *", Duration: time.Hour, TimeZone: "Europe/Berlin"}),
			at("2026-10-24T12:00:00Z"), false, at("2026-10-25T00:30:00Z"), at("2026-10-25T02:30:00Z"),
		},
		"Berlin fall back: inside the second": {
			compiled(Spec{Schedule: "30 2 * * *", Duration: time.Hour, TimeZone: "Europe/Berlin"}),
			at("2026-10-25T01:30:00Z"), true, at("2026-10-25T01:30:00Z"), at("2026-10-25T02:30:00Z"),
		},
		// 2026-03-08 02:00 EST jumps to 03:00 EDT.
		"New York spring forward": {
			compiled(Spec{Schedule: "30 2 * * *", Duration: time.Hour, TimeZone: "America/New_York"}),
			at("2026-03-07T12:00:00Z"), false, at("2026-03-09T06:30:00Z"), at("2026-03-09T07:30:00Z"),
		},
		// 2026-11-01 02:00 EDT falls back to 01:00 EST.
		"New York fall back": {
			compiled(Spec{Schedule: "30 1 * * *", Duration: time.Hour, TimeZone: "America/New_York"}),
			at("2026-10-31T12:00:00Z"), false, at("2026-11-01T05:30:00Z"), at("2026-11-01T07:30:00Z"),
		},
		"nil is always open": {nil, at("2026-03-02T12:00:00Z"), true, at("2026-03-02T12:00:00Z"), never},
	} {
		t.Run(name, func(t *testing.T) {
			if got := tc.w.Open(tc.t); got != tc.open {
				t.Errorf("Open(%v) = %v, want %v", tc.t, got, tc.open)
			}
			from, until := tc.w.Next(tc.t)
			if !from.Equal(tc.from) || !until.Equal(tc.until) {
				t.Errorf("Next(%v) = %v .. %v, want %v .. %v", tc.t, from.UTC(), until.UTC(), tc.from.UTC(), tc.until.UTC())
			}
		})
	}
}

func TestAddOpen(t *testing.T) {
	nightly := compiled(Spec{Schedule: "0 2 * * *", Duration: 4 * time.Hour})
	overlapping := compiled(Spec{Schedule: "0 2 * * *", Duration: 2 * time.Hour}, Spec{Schedule: "0 3 * * *", Duration: 2 * time.Hour})
	for name, tc := range map[string]struct {
		w    *Windows
		t    time.Time
		d    time.Duration
		want time.Time
	}{
		"inside, fits":                   {nightly, at("2026-03-02T03:00:00Z"), time.Hour, at("2026-03-02T04:00:00Z")},
		"inside, exactly to the close":   {nightly, at("2026-03-02T02:00:00Z"), 4 * time.Hour, at("2026-03-02T06:00:00Z")},
		"inside, spills into the next":   {nightly, at("2026-03-02T05:30:00Z"), time.Hour, at("2026-03-03T02:30:00Z")},
		"outside: counts from opening":   {nightly, at("2026-03-02T12:00:00Z"), 30 * time.Minute, at("2026-03-03T02:30:00Z")},
		"at the close":                   {nightly, at("2026-03-02T06:00:00Z"), time.Hour, at("2026-03-03T03:00:00Z")},
		"across three windows":           {nightly, at("2026-03-02T02:00:00Z"), 10 * time.Hour, at("2026-03-04T04:00:00Z")},
		"a nanosecond":                   {nightly, at("2026-03-02T12:00:00Z"), time.Nanosecond, at("2026-03-03T02:00:00.000000001Z")},
		"zero, outside":                  {nightly, at("2026-03-02T12:00:00Z"), 0, at("2026-03-02T12:00:00Z")},
		"zero, inside":                   {nightly, at("2026-03-02T03:00:00Z"), 0, at("2026-03-02T03:00:00Z")},
		"negative":                       {nightly, at("2026-03-02T12:00:00Z"), -time.Hour, at("2026-03-02T12:00:00Z")},
		"overlap counts once":            {overlapping, at("2026-03-02T02:00:00Z"), 3 * time.Hour, at("2026-03-02T05:00:00Z")},
		"overlap counts once, then more": {overlapping, at("2026-03-02T02:00:00Z"), 4 * time.Hour, at("2026-03-03T03:00:00Z")},
		"inside the overlap":             {overlapping, at("2026-03-02T03:30:00Z"), time.Hour, at("2026-03-02T04:30:00Z")},
		"adjacent windows": {
			compiled(Spec{Schedule: "0 2 * * *", Duration: time.Hour}, Spec{Schedule: "0 3 * * *", Duration: time.Hour}),
			at("2026-03-02T02:30:00Z"), time.Hour, at("2026-03-02T03:30:00Z"),
		},
		"longer than the period: always open": {
			compiled(Spec{Schedule: "0 * * * *", Duration: 90 * time.Minute}),
			at("2026-03-02T00:00:00Z"), 48 * time.Hour, at("2026-03-04T00:00:00Z"),
		},
		"weekdays only, over a weekend": {
			compiled(Spec{Schedule: "0 2 * * 1-5", Duration: 3 * time.Hour}),
			at("2026-03-06T04:00:00Z"), 2 * time.Hour, at("2026-03-09T03:00:00Z"),
		},
		"in a time zone": {
			compiled(Spec{Schedule: "0 2 * * *", Duration: time.Hour, TimeZone: "Asia/Tokyo"}),
			at("2026-03-02T12:00:00Z"), 90 * time.Minute, at("2026-03-03T17:30:00Z"),
		},
		// 01:00 CET on 2026-03-29 is 00:00Z; the window closes three
		// elapsed hours later, 05:00 CEST. The next opens at 01:00 CEST,
		// 23:00Z.
		"Berlin spring forward": {
			compiled(Spec{Schedule: "0 1 * * *", Duration: 3 * time.Hour, TimeZone: "Europe/Berlin"}),
			at("2026-03-28T12:00:00Z"), 4 * time.Hour, at("2026-03-30T00:00:00Z"),
		},
		"Berlin fall back": {
			compiled(Spec{Schedule: "0 1 * * *", Duration: 3 * time.Hour, TimeZone: "Europe/Berlin"}),
			at("2026-10-24T23:00:00Z"), 3 * time.Hour, at("2026-10-25T02:00:00Z"),
		},
		"Berlin fall back, a repeated time": {
			compiled(Spec{Schedule: "30 2 * * *", Duration: time.Hour, TimeZone: "Europe/Berlin"}),
			at("2026-10-25T00:00:00Z"), 150 * time.Minute, at("2026-10-26T02:00:00Z"),
		},
		"New York spring forward, a skipped time": {
			compiled(Spec{Schedule: "30 2 * * *", Duration: time.Hour, TimeZone: "America/New_York"}),
			at("2026-03-07T12:00:00Z"), 90 * time.Minute, at("2026-03-10T07:00:00Z"),
		},
		"nil: all time counts": {nil, at("2026-03-02T12:00:00Z"), time.Hour, at("2026-03-02T13:00:00Z")},
		"within ten years": {
			compiled(Spec{Schedule: "@daily", Duration: time.Hour}),
			at("2026-01-01T00:00:00Z"), 3000 * time.Hour, at("2034-03-19T01:00:00Z"),
		},
		"within the window budget": {
			compiled(Spec{Schedule: "*/5 * * * *", Duration: time.Minute}),
			at("2026-01-01T00:00:00Z"), 100 * time.Hour, at("2026-01-21T19:56:00Z"),
		},
	} {
		t.Run(name, func(t *testing.T) {
			if got := tc.w.AddOpen(tc.t, tc.d); !got.Equal(tc.want) {
				t.Errorf("AddOpen(%v, %v) = %v, want %v", tc.t, tc.d, got.UTC(), tc.want.UTC())
			}
		})
	}
}

// AddOpen gives up at the horizon or the window budget, quickly, instead
// of overflowing or walking on.
func TestAddOpenSaturates(t *testing.T) {
	from := at("2026-01-01T00:00:00Z")
	for name, tc := range map[string]struct {
		w *Windows
		d time.Duration
	}{
		"29 February, forever":  {compiled(Spec{Schedule: "0 0 29 2 *", Duration: time.Minute, TimeZone: "Europe/Berlin"}), math.MaxInt64},
		"every minute, forever": {compiled(Spec{Schedule: "* * * * *", Duration: 30 * time.Second, TimeZone: "Europe/Berlin"}), math.MaxInt64},
		"always open, forever":  {compiled(Spec{Schedule: "0 * * * *", Duration: 90 * time.Minute, TimeZone: "Europe/Berlin"}), math.MaxInt64},
		"costly schedules":      {compiled(Spec{Schedule: "59 23 31 * *", Duration: time.Minute, TimeZone: "America/New_York"}, Spec{Schedule: "59 23 * * 0", Duration: time.Minute, TimeZone: "Australia/Lord_Howe"}), math.MaxInt64},
		"eight windows":         {compiled(eight()...), math.MaxInt64},
		"beyond ten years":      {compiled(Spec{Schedule: "@daily", Duration: time.Hour}), 4000 * time.Hour},
		"beyond the budget":     {compiled(Spec{Schedule: "*/5 * * * *", Duration: time.Minute}), 200 * time.Hour},
	} {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			got := tc.w.AddOpen(from, tc.d)
			took := time.Since(start)
			if !got.Equal(farFuture()) {
				t.Errorf("AddOpen(%v) = %v, want the start of year 9999", tc.d, got)
			}
			// Tens of milliseconds; the bound leaves room for a busy
			// machine, and the race detector's tenfold slowdown.
			limit := 250 * time.Millisecond
			if raceEnabled {
				limit = 5 * time.Second
			}
			if took > limit {
				t.Errorf("AddOpen took %v, over %v", took, limit)
			}
			t.Logf("took %v", took)
		})
	}
}

// eight returns as many windows as a rollout may have, in several zones.
func eight() []Spec {
	var specs []Spec
	for i, zone := range []string{"", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe", "Pacific/Apia", "America/Sao_Paulo", "Asia/Tokyo"} {
		specs = append(specs, Spec{Schedule: fmt.Sprintf("%d */%d * * *", 7*i, i+1), Duration: time.Duration(i+1) * 7 * time.Minute, TimeZone: zone})
	}
	return specs
}

// interval is one window, or one merged stretch, [start, end).
type interval struct{ start, end time.Time }

// reference lists by brute force every window of specs that opens in
// [from, to), in order of start, and their merged stretches: an oracle
// independent of the cursor, its lookback and its merging.
func reference(t *testing.T, specs []Spec, from, to time.Time) (raw, merged []interval) {
	t.Helper()
	for _, spec := range specs {
		parsed, err := cron.ParseStandard(spec.Schedule)
		if err != nil {
			t.Fatal(err)
		}
		sched := parsed.(*cron.SpecSchedule)
		if sched.Location, err = time.LoadLocation(spec.TimeZone); err != nil {
			t.Fatal(err)
		}
		for s := sched.Next(from); s.Before(to); s = sched.Next(s) {
			raw = append(raw, interval{s, s.Add(spec.Duration)})
		}
	}
	slices.SortFunc(raw, func(a, b interval) int { return a.start.Compare(b.start) })
	for _, w := range raw {
		if n := len(merged); n > 0 && !w.start.After(merged[n-1].end) {
			merged[n-1].end = later(merged[n-1].end, w.end)
			continue
		}
		merged = append(merged, w)
	}
	return raw, merged
}

// TestAgainstReference compares Open, Next and AddOpen with brute force
// over weeks that hold daylight saving changes, at every window edge (and
// a nanosecond either side) and at steps between.
func TestAgainstReference(t *testing.T) {
	for name, tc := range map[string]struct {
		specs      []Spec
		begin, end time.Time
	}{
		"Berlin, spring": {
			[]Spec{
				{Schedule: "30 2 * * *", Duration: time.Hour, TimeZone: "Europe/Berlin"},
				{Schedule: "0 1 * * *", Duration: 3 * time.Hour, TimeZone: "Europe/Berlin"},
				{Schedule: "*/20 9-16 * * 1-5", Duration: 30 * time.Minute, TimeZone: "Europe/Berlin"},
			},
			at("2026-03-22T00:00:00Z"), at("2026-04-05T00:00:00Z"),
		},
		"Berlin, autumn": {
			[]Spec{
				{Schedule: "30 2 * * *", Duration: time.Hour, TimeZone: "Europe/Berlin"},
				{Schedule: "0 1 * * *", Duration: 3 * time.Hour, TimeZone: "Europe/Berlin"},
				{Schedule: "*/20 9-16 * * 1-5", Duration: 30 * time.Minute, TimeZone: "Europe/Berlin"},
			},
			at("2026-10-18T00:00:00Z"), at("2026-11-01T00:00:00Z"),
		},
		"New York, with a weekend window": {
			[]Spec{
				{Schedule: "30 1 * * *", Duration: time.Hour, TimeZone: "America/New_York"},
				{Schedule: "30 2 * * *", Duration: 45 * time.Minute, TimeZone: "America/New_York"},
				{Schedule: "0 22 * * 5", Duration: 60 * time.Hour, TimeZone: "America/New_York"},
			},
			at("2026-03-01T00:00:00Z"), at("2026-03-15T00:00:00Z"),
		},
		"New York, autumn": {
			[]Spec{
				{Schedule: "30 1 * * *", Duration: time.Hour, TimeZone: "America/New_York"},
				{Schedule: "0 22 * * 5", Duration: 60 * time.Hour, TimeZone: "America/New_York"},
			},
			at("2026-10-25T00:00:00Z"), at("2026-11-08T00:00:00Z"),
		},
		"Lord Howe, half-hour daylight saving": {
			[]Spec{
				{Schedule: "0 2 * * *", Duration: 30 * time.Minute, TimeZone: "Australia/Lord_Howe"},
				{Schedule: "15 1,2 * * *", Duration: 45 * time.Minute, TimeZone: "Australia/Lord_Howe"},
			},
			at("2026-03-29T00:00:00Z"), at("2026-04-12T00:00:00Z"),
		},
		"three zones overlapping": {
			[]Spec{
				{Schedule: "0 0 * * *", Duration: 2 * time.Hour, TimeZone: "Asia/Tokyo"},
				{Schedule: "30 14 * * *", Duration: 2 * time.Hour},
				{Schedule: "0 17 * * *", Duration: time.Hour, TimeZone: "Europe/Berlin"},
			},
			at("2026-03-22T00:00:00Z"), at("2026-04-05T00:00:00Z"),
		},
	} {
		t.Run(name, func(t *testing.T) {
			w := compiled(tc.specs...)
			raw, merged := reference(t, tc.specs, tc.begin.AddDate(0, 0, -8), tc.end.AddDate(0, 0, 60))
			// Steps count long stretches of open time; edges, short ones.
			type sample struct {
				t  time.Time
				ds []time.Duration
			}
			var samples []sample
			for s := tc.begin; s.Before(tc.end); s = s.Add(37 * time.Minute) {
				samples = append(samples, sample{s, []time.Duration{47 * time.Minute, 5 * time.Hour, 30 * time.Hour}})
			}
			for _, r := range raw {
				for _, edge := range []time.Time{r.start, r.end} {
					if !edge.Before(tc.begin) && edge.Before(tc.end) {
						for _, s := range []time.Time{edge.Add(-time.Nanosecond), edge, edge.Add(time.Nanosecond)} {
							samples = append(samples, sample{s, []time.Duration{time.Nanosecond, time.Minute}})
						}
					}
				}
			}
			for _, sample := range samples {
				now := sample.t
				// The windows that matter end after now; the first of them
				// holds now, or else opens next.
				first := raw[slices.IndexFunc(raw, func(r interval) bool { return r.end.After(now) })]
				stretch := merged[slices.IndexFunc(merged, func(m interval) bool { return m.end.After(now) })]
				wantOpen := !first.start.After(now)
				if got := w.Open(now); got != wantOpen {
					t.Errorf("Open(%v) = %v, want %v", now, got, wantOpen)
				}
				if from, until := w.Next(now); !from.Equal(first.start) || !until.Equal(stretch.end) {
					t.Errorf("Next(%v) = %v .. %v, want %v .. %v", now, from, until, first.start, stretch.end)
				}
				for _, d := range sample.ds {
					if got, want := w.AddOpen(now, d), referenceAddOpen(merged, now, d); !got.Equal(want) {
						t.Errorf("AddOpen(%v, %v) = %v, want %v", now, d, got, want)
					}
				}
			}
		})
	}
}

// referenceAddOpen walks merged stretches, as AddOpen must.
func referenceAddOpen(merged []interval, t time.Time, d time.Duration) time.Time {
	for _, m := range merged {
		start := later(m.start, t)
		if !m.end.After(start) {
			continue
		}
		if m.end.Sub(start) >= d {
			return start.Add(d)
		}
		d -= m.end.Sub(start)
	}
	panic("reference too short")
}

// FuzzCompile checks that no schedule, however hostile, panics or hangs,
// and that what compiles answers consistently.
func FuzzCompile(f *testing.F) {
	for _, s := range []string{
		"0 2 * * *", "@daily", "@every 1h", "*/5 1-3 * * MON-FRI", "0 0 30 2 *", "0 0 29 2 *",
		"", "TZ=x", "CRON_TZ=UTC * * * * *", "0 0 , * *", "* * * * *", "1-2-3 * * * *",
		"*/99999999999999999999 * * * *", "0-59/7 */3 L * ?", "@yearly", "0 0 13 * 5",
	} {
		f.Add(s, int64(time.Hour), uint8(1), int64(0))
	}
	zones := []string{"", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Pacific/Apia", "America/Sao_Paulo", "Asia/Kathmandu", "Local"}
	base := at("2026-01-01T00:00:00Z")
	f.Fuzz(func(t *testing.T, schedule string, duration int64, zone uint8, offset int64) {
		spec := Spec{Schedule: schedule, Duration: time.Duration(duration), TimeZone: zones[int(zone)%len(zones)]}
		w, err := Compile([]Spec{spec})
		if err != nil {
			return
		}
		if w == nil {
			t.Fatal("Compile = nil, nil for a spec")
		}
		// Any instant of twenty years, to the nanosecond.
		now := base.Add(time.Duration(offset % int64(20*365*24*time.Hour)))
		open, close := w.Next(now)
		if w.Open(now) != !open.After(now) {
			t.Fatalf("%+v at %v: Open = %v but Next = %v .. %v", spec, now, w.Open(now), open, close)
		}
		if !close.After(now) || close.Before(open) {
			t.Fatalf("%+v at %v: Next = %v .. %v", spec, now, open, close)
		}
		if open.Before(farFuture()) {
			if !w.Open(open) || w.Open(open.Add(-time.Nanosecond)) && open.After(now) {
				t.Fatalf("%+v at %v: Next opens at %v, which is not an opening", spec, now, open)
			}
		}
		if close.Before(farFuture()) && (w.Open(close) || !w.Open(close.Add(-time.Nanosecond))) {
			t.Fatalf("%+v at %v: Next closes at %v, which is not a close", spec, now, close)
		}
		d := time.Hour
		got := w.AddOpen(now, d)
		if got.Before(now.Add(d)) {
			t.Fatalf("%+v: AddOpen(%v, %v) = %v: more open time than time", spec, now, d, got)
		}
		if got.Before(farFuture()) && !w.Open(got.Add(-time.Nanosecond)) {
			t.Fatalf("%+v: AddOpen(%v, %v) = %v, which ends no open time", spec, now, d, got)
		}
	})
}

func BenchmarkAddOpen(b *testing.B) {
	for name, bc := range map[string]struct {
		w *Windows
		d time.Duration
	}{
		"weekday nights, within one": {compiled(Spec{Schedule: "0 2 * * 1-5", Duration: 3 * time.Hour, TimeZone: "Europe/Berlin"}), 30 * time.Minute},
		"weekday nights, a week":     {compiled(Spec{Schedule: "0 2 * * 1-5", Duration: 3 * time.Hour, TimeZone: "Europe/Berlin"}), 15 * time.Hour},
		"eight windows, a day":       {compiled(eight()...), 24 * time.Hour},
		"saturating":                 {compiled(Spec{Schedule: "* * * * *", Duration: 30 * time.Second, TimeZone: "Europe/Berlin"}), math.MaxInt64},
	} {
		b.Run(name, func(b *testing.B) {
			t0 := at("2026-03-02T12:00:00Z")
			for b.Loop() {
				bc.w.AddOpen(t0, bc.d)
			}
		})
	}
}
