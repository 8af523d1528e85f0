package rollout

import (
	v1 "github.com/heraldiot/herald/api/v1alpha1"
)

// policy is the failure policy evaluated over the finished devices.
type policy struct {
	// finished and failed are the policy's arithmetic: devices this
	// rollout finished (successes of already-current devices left out),
	// and those among them that count as failures.
	finished, failed int
	tripped          bool
	abort            bool
}

func evaluatePolicy(p *v1.FailurePolicy, c *tally) policy {
	pol := policy{finished: c.succeeded + c.failed, failed: c.failed}
	if p == nil || p.Rejections != v1.RejectionsIgnore {
		pol.finished += c.rejected
		pol.failed += c.rejected
	}
	if p == nil {
		return pol
	}
	pol.tripped = (p.MaxFailed != nil && pol.failed > int(*p.MaxFailed)) ||
		(p.MaxFailedPercent != nil && pol.finished > 0 && pol.finished >= int(p.MinFinished) &&
			pol.failed*100 > int(*p.MaxFailedPercent)*pol.finished)
	pol.abort = pol.tripped && p.Action == v1.FailureAbort
	return pol
}
