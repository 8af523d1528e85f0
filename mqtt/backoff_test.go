package mqtt_test

import (
	"testing"
	"time"

	"github.com/heraldiot/herald/mqtt"
)

func TestBackoffFullJitter(t *testing.T) {
	b := mqtt.Backoff{Min: 100 * time.Millisecond, Max: 2 * time.Second}
	for n, ceiling := range []time.Duration{100, 200, 400, 800, 1600, 2000, 2000} {
		ceiling *= time.Millisecond
		var sum time.Duration
		const samples = 2000
		for range samples {
			d := b.Delay(n)
			if d < 0 || d > ceiling {
				t.Fatalf("attempt %d: delay %v outside [0, %v]", n, d, ceiling)
			}
			sum += d
		}
		// Full jitter is uniform on [0, ceiling]: the mean is half the
		// ceiling. 2000 samples put it within a few percent.
		if mean := sum / samples; mean < ceiling*4/10 || mean > ceiling*6/10 {
			t.Fatalf("attempt %d: mean delay %v, want about %v", n, mean, ceiling/2)
		}
	}
}
