// Package window evaluates maintenance windows: the stretches of time in
// which a rollout may send new update notices, and the only time that
// counts towards a device's install timeout.
//
// A window is written like a Kubernetes CronJob: a five-field cron
// schedule (or a descriptor such as @daily) says when it opens, a duration
// how long it stays open, and an IANA time zone how the schedule reads.
// Compile checks a rollout's windows and turns them into a *Windows.
//
// Semantics:
//
//   - Each opening gives a half-open interval [start, start+duration): the
//     start belongs to the window, the end does not.
//   - Several windows, and overlapping openings of one window, form a
//     union. Overlapping or touching intervals merge into one open stretch,
//     so a window longer than its schedule's period never closes once open.
//   - The schedule reads in its time zone; the duration is elapsed time, so
//     a 3h window that spans a daylight saving change is still 3h long.
//   - Daylight saving follows github.com/robfig/cron/v3, which CronJob
//     uses: a time that spring-forward skips does not fire that day, and a
//     time that fall-back repeats fires twice.
//   - A nil *Windows is always open.
//   - Every function is pure: the caller passes the time; nothing reads
//     the clock.
//   - Walks are bounded: a call looks at most ten years ahead and visits at
//     most 10,000 openings. An answer beyond either bound saturates to
//     "never", the start of year 9999, rather than overflowing or looping.
package window
