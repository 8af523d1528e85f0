package controllers

import (
	"sync"
	"time"
)

// rateLimiter is a token bucket for spec.strategy.maxNoticesPerMinute. It
// lives in memory: after a restart a rollout may publish one minute's
// worth early, which the limit tolerates by design.
type rateLimiter struct {
	mu        sync.Mutex
	perMinute int
	tokens    float64
	last      time.Time
}

func (l *rateLimiter) refill(now time.Time) {
	if l.last.IsZero() {
		l.tokens, l.last = float64(l.perMinute), now
		return
	}
	l.tokens = min(float64(l.perMinute), l.tokens+now.Sub(l.last).Minutes()*float64(l.perMinute))
	l.last = now
}

// available returns how many notices may go out now; -1 means no limit.
func (l *rateLimiter) available(now time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.perMinute <= 0 {
		return -1
	}
	l.refill(now)
	return int(l.tokens)
}

func (l *rateLimiter) take(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.perMinute <= 0 {
		return
	}
	l.refill(now)
	l.tokens--
}
