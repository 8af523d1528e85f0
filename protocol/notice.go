package protocol

import (
	"fmt"
	"slices"
)

// AppliesTo reports whether a device of model running currentVersion should
// act on the update notice n: its model is one of n.Models, currentVersion
// satisfies n.CurrentVersion when that is set, and currentVersion is not
// already n.TargetVersion. Version identity is exact string equality,
// build metadata included, so that a rebuilt image can be rolled out;
// precedence is only for the constraint. A cancel notice applies to no
// one this way: devices match it by rollout UID.
//
// The operator uses the same function on inventories to know which devices
// will act, and which to count as done already. Whether a device is already
// working on the rollout, or has handled this notice, is the device's
// bookkeeping (see docs/protocol.md, "Acting on notices").
//
// The error reports an invalid currentVersion (see ValidVersion) or, for a
// notice that did not come from ParseNotice, an invalid constraint.
func (n *Notice) AppliesTo(model, currentVersion string) (bool, error) {
	if _, err := parseVersion(currentVersion); err != nil {
		return false, fmt.Errorf("current version: %w", err)
	}
	if n.Action != ActionUpdate || !slices.Contains(n.Models, model) || currentVersion == n.TargetVersion {
		return false, nil
	}
	if n.CurrentVersion == "" {
		return true, nil
	}
	c, err := ParseConstraint(n.CurrentVersion)
	if err != nil {
		return false, invalid("currentVersion", "%v", err)
	}
	return c.Allows(currentVersion)
}

// Supersedes reports whether a device that has both n and o should follow n:
// of one rollout, n is a later attempt (a retry); otherwise n was issued
// later, or at the same instant by a rollout with a greater UID
// (byte-wise), an arbitrary rule that only needs to be the same on every
// device and in the operator. Equal UIDs, attempts and instants are the
// same notice, delivered twice: neither supersedes the other.
func (n *Notice) Supersedes(o *Notice) bool {
	if n.Rollout.UID == o.Rollout.UID && n.EffectiveAttempt() != o.EffectiveAttempt() {
		return n.EffectiveAttempt() > o.EffectiveAttempt()
	}
	if !n.IssuedAt.Equal(o.IssuedAt) {
		return n.IssuedAt.After(o.IssuedAt)
	}
	return n.Rollout.UID > o.Rollout.UID
}
