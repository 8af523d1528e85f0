//go:build !race

package window

// raceEnabled tells timing checks that the race detector slows time
// arithmetic down about tenfold.
const raceEnabled = false
