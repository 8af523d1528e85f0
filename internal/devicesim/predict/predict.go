// Package predict says what a rollout must report on a simulated fleet:
// every simulated device's first outcome is known in advance
// (devicesim.FirstOutcome), so end-to-end tests can demand exact counts.
// It lives apart from devicesim so that the simulator does not depend on
// the Kubernetes API types.
package predict

import (
	"fmt"
	"slices"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/internal/devicesim"
	"github.com/heraldiot/herald/protocol"
)

// Outcome is a rollout's predicted counts.
type Outcome struct {
	Targeted, Succeeded, Failed, Rejected int
	// Waiting counts targets in the waves not run yet.
	Waiting int
	// Accepted counts the devices that accepted, and so downloaded the
	// image.
	Accepted int
	// Current counts the devices on the target version from the start.
	Current int
	// Waves are the counts of each wave.
	Waves []v1.WaveStatus
	// Failures maps every failing or rejecting device to its reason.
	Failures map[string]string
}

// Rollout predicts what the rollout spec reports on devices behaving as b
// once the waves before upTo have run. Only percent waves ending at 100%
// are supported: a count wave's devices depend on the rank of every
// target.
func Rollout(devices []devicesim.Spec, b devicesim.Behavior, spec *v1.FirmwareRolloutSpec, upTo int) (Outcome, error) {
	var constraint *protocol.Constraint
	if s := spec.Selector; s != nil && s.CurrentVersion != "" {
		var err error
		if constraint, err = protocol.ParseConstraint(s.CurrentVersion); err != nil {
			return Outcome{}, err
		}
	}
	for i, w := range spec.Strategy.Waves {
		if w.Percent == nil {
			return Outcome{}, fmt.Errorf("wave %d is not a percent wave", i+1)
		}
	}
	o := Outcome{Waves: make([]v1.WaveStatus, len(spec.Strategy.Waves)), Failures: map[string]string{}}
	for _, d := range devices {
		current := d.FirmwareVersion == spec.Firmware.Version
		if !slices.Contains(spec.Firmware.Models, d.Model) {
			continue
		}
		if !current && constraint != nil {
			if ok, err := constraint.Allows(d.FirmwareVersion); err != nil || !ok {
				continue
			}
		}
		wave := slices.IndexFunc(spec.Strategy.Waves, func(w v1.Wave) bool { return protocol.Cohort(d.ID) < int(*w.Percent) })
		if wave < 0 {
			return Outcome{}, fmt.Errorf("device %s is beyond the last wave: predictions need a last wave of 100%%", d.ID)
		}
		o.Targeted++
		w := &o.Waves[wave]
		w.Targeted++
		switch out := devicesim.FirstOutcome(d.ID, b); {
		case current:
			o.Current++
			o.Succeeded++
			w.Succeeded++
		case wave >= upTo:
			o.Waiting++
		case out.State == protocol.StateRejected:
			o.Rejected++
			w.Rejected++
			o.Failures[d.ID] = out.Reason
		case out.State == protocol.StateFailed:
			o.Accepted++
			o.Failed++
			w.Failed++
			o.Failures[d.ID] = out.Reason
		default:
			o.Accepted++
			o.Succeeded++
			w.Succeeded++
		}
	}
	return o, nil
}
