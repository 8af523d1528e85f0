package rollout

import (
	"time"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/protocol"
)

// Defaults of spec.retryPolicy's backoff.
const (
	DefaultRetryBackoff    = 5 * time.Minute
	DefaultRetryMaxBackoff = time.Hour
)

// retryRules is the compiled spec.retryPolicy: how many retries each
// failure class allows, and the backoff before each.
type retryRules struct {
	download, install, timeout, rejection int
	backoff, maxBackoff                   time.Duration
}

func compileRetries(p *v1.RetryPolicy) *retryRules {
	if p == nil {
		return nil
	}
	r := &retryRules{
		download: int(p.Download), install: int(p.Install), timeout: int(p.Timeout), rejection: int(p.Rejection),
		backoff: DefaultRetryBackoff, maxBackoff: DefaultRetryMaxBackoff,
	}
	if p.Backoff != nil && p.Backoff.Duration > 0 {
		r.backoff = p.Backoff.Duration
	}
	if p.MaxBackoff != nil && p.MaxBackoff.Duration > 0 {
		r.maxBackoff = p.MaxBackoff.Duration
	}
	r.maxBackoff = max(r.maxBackoff, r.backoff)
	return r
}

// allowed is how many retries the failure of t allows. Reasons outside
// the classes are never retried: signature-invalid would fail the same
// way, and a reason Herald does not know may hide what a person must see.
func (r *retryRules) allowed(t *target) int {
	switch {
	case r == nil:
		return 0
	case t.progress == rejected:
		return r.rejection
	case t.progress != failed:
		return 0
	case t.timedOut:
		return r.timeout
	}
	switch t.reason {
	case protocol.ReasonDownloadFailed, protocol.ReasonChecksumMismatch:
		return r.download
	case protocol.ReasonInstallFailed, protocol.ReasonRolledBack, protocol.ReasonInterrupted:
		return r.install
	}
	return 0
}

// delay is the backoff before retry number n (from 0): doubling from
// backoff, capped by maxBackoff.
func (r *retryRules) delay(n int) time.Duration {
	d := r.backoff
	for ; n > 0 && d < r.maxBackoff; n-- {
		d *= 2
	}
	return min(d, r.maxBackoff)
}

// markRetry turns a failed or rejected target that has retries left into
// a retrying one, due at its failure plus the backoff, and marks one that
// used every retry it had. A retrying device is not a failure: the failure
// policy and the wave wait for its last attempt.
//
// Retries are counted per device, not per class: the class of its latest
// failure decides how many it may have had in all. Only the latest report
// is kept, so a count per class could not be rebuilt after a restart.
func (sel *selection) markRetry(t *target) {
	if t.progress != failed && t.progress != rejected || sel.skip[t.id] {
		// A device listed in skipDevices is not waited for, retries
		// included.
		return
	}
	used := int(t.attempt) - 1
	allowed := sel.retries.allowed(t)
	if used < allowed {
		t.progress = retrying
		t.retryAt = t.reportedAt + int64(sel.retries.delay(used)/time.Second)
		return
	}
	t.exhausted = allowed > 0
}
