package protocol

import (
	"fmt"
	"slices"
	"time"
)

// The Parse functions decode one payload strictly but forward-compatibly:
//
//   - at most MaxPayloadSize bytes of UTF-8 holding one JSON object;
//   - "v" must be Version: a reader cannot know what another version means;
//   - member names are case-sensitive and unique, null means absent;
//   - every required member is present and every member valid;
//   - members this version does not define are ignored, so that a later
//     revision of v1 can add optional members without breaking readers.
//
// Every error wraps ErrMalformed, and one of the more specific errors in
// errors.go. A zero-length payload is not a message but a cleared retained
// topic: check IsWithdrawal first. The returned values share no memory with
// payload, which the caller may reuse at once.

// IsWithdrawal reports whether payload is zero-length: a cleared retained
// message. On a notice topic it withdraws the notice; on a device's
// presence, inventory or status topic it means the device was
// decommissioned.
func IsWithdrawal(payload []byte) bool { return len(payload) == 0 }

// ParsePresence decodes a Presence.
func ParsePresence(payload []byte) (Presence, error) {
	o, err := decodePayload(payload)
	if err != nil {
		return Presence{}, fmt.Errorf("presence: %w", err)
	}
	defer o.release()
	p := Presence{V: Version}
	var state string
	o.str("state", &state)
	p.State = PresenceState(state)
	o.time("ts", &p.Time)
	return finish("presence", p, o, p.Validate)
}

// ParseInventory decodes an Inventory. The caller must also check that its
// DeviceID equals the device ID of the topic it came on.
func ParseInventory(payload []byte) (Inventory, error) {
	o, err := decodePayload(payload)
	if err != nil {
		return Inventory{}, fmt.Errorf("inventory: %w", err)
	}
	defer o.release()
	inv := Inventory{V: Version}
	o.str("deviceId", &inv.DeviceID)
	o.str("model", &inv.Model)
	o.str("hardwareRevision", &inv.HardwareRevision)
	o.str("firmwareVersion", &inv.FirmwareVersion)
	inv.Labels = o.stringMap("labels")
	o.time("ts", &inv.Time)
	return finish("inventory", inv, o, inv.Validate)
}

// ParseStatus decodes a Status.
func ParseStatus(payload []byte) (Status, error) {
	o, err := decodePayload(payload)
	if err != nil {
		return Status{}, fmt.Errorf("status: %w", err)
	}
	defer o.release()
	s := Status{V: Version}
	o.str("rolloutUID", &s.RolloutUID)
	o.str("rollout", &s.Rollout)
	o.str("targetVersion", &s.TargetVersion)
	var state string
	o.str("state", &state)
	s.State = State(state)
	var progress int64
	if o.integer("progress", &progress) {
		if progress < 0 || progress > 100 {
			o.fail(invalid("progress", "%d is not 0 to 100", progress))
		}
		p := int(progress)
		s.Progress = &p
	}
	o.str("reason", &s.Reason)
	o.str("message", &s.Message)
	s.Details = o.stringMap("details")
	o.time("ts", &s.Time)
	var attempt int64
	if o.integer("attempt", &attempt) {
		s.Attempt = clampAttempt(attempt)
	}
	return finish("status", s, o, s.Validate)
}

// ParseNotice decodes a Notice. Members of update notices are not read from
// a cancel notice.
func ParseNotice(payload []byte) (Notice, error) {
	o, err := decodePayload(payload)
	if err != nil {
		return Notice{}, fmt.Errorf("notice: %w", err)
	}
	defer o.release()
	n := Notice{V: Version}
	var action string
	o.str("action", &action)
	n.Action = Action(action)
	r := o.object("rollout")
	r.str("namespace", &n.Rollout.Namespace)
	r.str("name", &n.Rollout.Name)
	r.str("uid", &n.Rollout.UID)
	o.time("issuedAt", &n.IssuedAt)
	if n.Action == ActionUpdate {
		o.str("targetVersion", &n.TargetVersion)
		o.strs("models", &n.Models)
		o.str("currentVersion", &n.CurrentVersion)
		for _, a := range o.objects("artifacts") {
			var art Artifact
			a.str("url", &art.URL)
			n.Artifacts = append(n.Artifacts, art)
		}
		o.str("sha256", &n.SHA256)
		o.integer("size", &n.Size)
		o.str("signature", &n.Signature)
		o.str("releaseNotesURL", &n.ReleaseNotesURL)
		var attempt int64
		if o.integer("attempt", &attempt) {
			n.Attempt = clampAttempt(attempt)
		}
		for _, w := range o.objects("maintenanceWindows") {
			var mw MaintenanceWindow
			w.str("schedule", &mw.Schedule)
			w.integer("durationSeconds", &mw.DurationSeconds)
			w.str("timeZone", &mw.TimeZone)
			n.MaintenanceWindows = append(n.MaintenanceWindows, mw)
		}
	}
	return finish("notice", n, o, n.Validate)
}

// ParseRejectable reads, from an update notice that ParseNotice refused,
// what a device needs to answer it with a rejected status and reason
// ReasonInvalidNotice (docs/protocol.md §10.2, rule 1): rollout and
// targetVersion, which a status echoes, and, when they are readable and
// valid, models and issuedAt, so that a device of another model stays
// silent and one that follows a newer notice does not answer an older one.
//
// It fails, and the device stays silent, when payload is not a JSON object
// with "v": Version (a message of another version is not for this device
// at all, docs/protocol.md §14), when "action" is not "update" (a
// malformed cancel names nothing to stop and asks for no answer), and when
// rollout or targetVersion is absent or invalid: without them no valid
// status can name the rollout. Call it only after ParseNotice failed; it
// does not tell valid notices from malformed ones.
func ParseRejectable(payload []byte) (Notice, error) {
	o, err := decodePayload(payload)
	if err != nil {
		return Notice{}, fmt.Errorf("notice: %w", err)
	}
	defer o.release()
	n := Notice{V: Version}
	var action string
	o.str("action", &action)
	if err := o.error(); err != nil {
		return Notice{}, fmt.Errorf("notice: %w", err)
	}
	if Action(action) != ActionUpdate {
		return Notice{}, fmt.Errorf("notice: %w", invalid("action", "%s is not update", quote(action)))
	}
	n.Action = ActionUpdate
	r := o.object("rollout")
	r.str("namespace", &n.Rollout.Namespace)
	r.str("name", &n.Rollout.Name)
	r.str("uid", &n.Rollout.UID)
	o.str("targetVersion", &n.TargetVersion)
	err = o.error()
	if err == nil {
		err = n.Rollout.validate("rollout")
	}
	if err == nil {
		err = checkVersion("targetVersion", n.TargetVersion)
	}
	if err != nil {
		return Notice{}, fmt.Errorf("notice: %w", err)
	}
	// The optional parts: each one read on its own, and dropped when it
	// is not valid.
	invalidModel := func(m string) bool { return ValidSegment(m) != nil }
	if o.strs("models", &n.Models) && (len(n.Models) > maxModels || slices.ContainsFunc(n.Models, invalidModel)) {
		n.Models = nil
	}
	*o.err = nil
	if !o.time("issuedAt", &n.IssuedAt) || checkTime("issuedAt", n.IssuedAt, true) != nil {
		n.IssuedAt = time.Time{}
	}
	*o.err = nil
	return n, nil
}

// finish returns the decoded value once its members decoded and it is
// valid, or the zero value and the first error.
func finish[T any](kind string, v T, o *members, validate func() error) (T, error) {
	err := o.error()
	if err == nil {
		err = validate()
	}
	if err != nil {
		var zero T
		return zero, fmt.Errorf("%s: %w", kind, err)
	}
	return v, nil
}

// clampAttempt keeps an attempt read from the wire inside int's range and
// out of the valid one when it was out of it, for Validate to refuse.
func clampAttempt(a int64) int {
	if a < 0 || a > maxAttempt {
		return -1
	}
	return int(a)
}
