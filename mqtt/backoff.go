package mqtt

import (
	"math/rand/v2"
	"time"
)

// Backoff is the reconnect delay policy: exponential growth from Min to Max
// with full jitter, so that a fleet of clients cut off together does not
// reconnect together.
type Backoff struct {
	// Min is the ceiling of the first delay (default 100ms).
	Min time.Duration
	// Max caps the ceiling (default 30s).
	Max time.Duration
}

// Delay returns the wait before reconnect attempt n (0-based): a uniformly
// random duration in [0, min(Max, Min·2ⁿ)].
func (b Backoff) Delay(n int) time.Duration {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = 100 * time.Millisecond
	}
	if hi <= 0 {
		hi = 30 * time.Second
	}
	ceiling := hi
	if n < 32 {
		if d := lo << n; d > 0 && d < hi {
			ceiling = d
		}
	}
	return rand.N(ceiling + 1)
}
