package controllers

import (
	"sync"
	"time"
)

// rateLimiter is a token bucket holding a minute's worth of tokens, for
// the per-minute limits of spec.strategy. It lives in memory: after a
// restart a rollout may spend one minute's worth early, which the limits
// tolerate by design.
type rateLimiter struct {
	mu        sync.Mutex
	perMinute int
	tokens    float64
	last      time.Time
}

// setRate changes the rate; 0 means no limit. Tokens already earned stay,
// up to the new minute's worth.
func (l *rateLimiter) setRate(perMinute int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.perMinute = perMinute
	l.tokens = min(l.tokens, float64(perMinute))
}

func (l *rateLimiter) refill(now time.Time) {
	if l.last.IsZero() {
		l.tokens, l.last = float64(l.perMinute), now
		return
	}
	l.tokens = min(float64(l.perMinute), l.tokens+now.Sub(l.last).Minutes()*float64(l.perMinute))
	l.last = now
}

// available returns how many tokens may be spent now; -1 means no limit.
func (l *rateLimiter) available(now time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.perMinute <= 0 {
		return -1
	}
	l.refill(now)
	return max(int(l.tokens), 0)
}

// take spends n tokens.
func (l *rateLimiter) take(now time.Time, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.perMinute <= 0 || n <= 0 {
		return
	}
	l.refill(now)
	l.tokens -= float64(n)
}
