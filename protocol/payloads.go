package protocol

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Version is the protocol version this package speaks: the "v" member of
// every payload. A payload with another "v" is refused with ErrVersion.
const Version = 1

// Presence is published retained on R/devices/{deviceID}/presence: online by
// the device after each CONNACK, offline by its Will or before a graceful
// DISCONNECT.
type Presence struct {
	// V is the protocol version, Version.
	V int `json:"v"`
	// State is online or offline.
	State PresenceState `json:"state"`
	// Time is when the device published it, by the device's clock; zero
	// (omitted) in the Will and whenever the clock is not set yet.
	Time time.Time `json:"ts,omitzero"`
}

// PresenceState says whether a device is connected.
type PresenceState string

// The presence states.
const (
	PresenceOnline  PresenceState = "online"
	PresenceOffline PresenceState = "offline"
)

// Validate checks the presence as ParsePresence does.
func (p *Presence) Validate() error {
	if p.V != Version {
		return fmt.Errorf("%w %d", ErrVersion, p.V)
	}
	switch p.State {
	case PresenceOnline, PresenceOffline:
	case "":
		return missing("state")
	default:
		return invalid("state", "%s is not online or offline", quote(string(p.State)))
	}
	return checkTime("ts", p.Time, false)
}

// Inventory is published retained on R/devices/{deviceID}/inventory after
// every boot and whenever a member changes. The retained inventories under
// a topic root are the fleet: the operator keeps no list of its own.
type Inventory struct {
	// V is the protocol version, Version.
	V int `json:"v"`
	// DeviceID must equal the {deviceID} level of the topic it is
	// published on; the operator refuses it otherwise.
	DeviceID string `json:"deviceId"`
	// Model names the firmware build target (ValidSegment).
	Model string `json:"model"`
	// HardwareRevision is the board revision, printable text.
	HardwareRevision string `json:"hardwareRevision"`
	// FirmwareVersion is the version of the running firmware (ValidVersion).
	FirmwareVersion string `json:"firmwareVersion"`
	// Labels are Kubernetes-style labels that rollouts can select on.
	Labels map[string]string `json:"labels,omitempty"`
	// Time is when the device published it, by its clock, if it has one.
	Time time.Time `json:"ts,omitzero"`
}

// Validate checks the inventory as ParseInventory does.
func (inv *Inventory) Validate() error {
	if inv.V != Version {
		return fmt.Errorf("%w %d", ErrVersion, inv.V)
	}
	if err := checkSegment("deviceId", inv.DeviceID); err != nil {
		return err
	}
	if err := checkSegment("model", inv.Model); err != nil {
		return err
	}
	if err := checkText("hardwareRevision", inv.HardwareRevision, maxTextLength, true); err != nil {
		return err
	}
	if err := checkVersion("firmwareVersion", inv.FirmwareVersion); err != nil {
		return err
	}
	if err := checkLabels("labels", inv.Labels); err != nil {
		return err
	}
	return checkTime("ts", inv.Time, false)
}

// Action is what a notice asks for.
type Action string

// The notice actions.
const (
	// ActionUpdate offers a firmware image; it is published retained.
	ActionUpdate Action = "update"
	// ActionCancel stops a rollout on the devices working on it; it is
	// published without retain, right before the retained notice is
	// cleared.
	ActionCancel Action = "cancel"
)

// RolloutRef names the FirmwareRollout a notice belongs to. UID tells
// rollouts apart, even one deleted and re-created under the same name.
type RolloutRef struct {
	// Namespace and Name are for logs and people.
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// UID is the FirmwareRollout's Kubernetes UID.
	UID string `json:"uid"`
}

// String returns "namespace/name", the form Status.Rollout echoes.
func (r RolloutRef) String() string { return r.Namespace + "/" + r.Name }

func (r *RolloutRef) validate(path string) error {
	if *r == (RolloutRef{}) {
		return missing(path)
	}
	if err := checkRolloutName(path, r.Namespace, r.Name); err != nil {
		return err
	}
	return checkToken(path+".uid", r.UID, true)
}

// Artifact is one place to download the firmware image from.
type Artifact struct {
	// URL is an absolute https:// or http:// URL without user information.
	URL string `json:"url"`
}

// Notice is published by the operator on R/notices/{model}/{cohort} or
// R/devices/{deviceID}/notice. An update notice is retained and offers an
// image; a cancel notice is not retained and stops a rollout. The members
// after Rollout are those of update notices; a cancel notice leaves them
// empty.
type Notice struct {
	// V is the protocol version, Version.
	V int `json:"v"`
	// Action is update or cancel.
	Action Action `json:"action"`
	// Rollout names the FirmwareRollout; devices match cancels by its UID.
	Rollout RolloutRef `json:"rollout"`
	// TargetVersion is the version the image reports once running.
	TargetVersion string `json:"targetVersion,omitempty"`
	// Models are the device models the image is for.
	Models []string `json:"models,omitempty"`
	// CurrentVersion optionally narrows the devices that act on the notice
	// to those whose running version satisfies it (see ParseConstraint).
	CurrentVersion string `json:"currentVersion,omitempty"`
	// Artifacts are mirrors of one image, tried in order.
	Artifacts []Artifact `json:"artifacts,omitempty"`
	// SHA256 is the image's digest, 64 lowercase hexadecimal characters.
	SHA256 string `json:"sha256,omitempty"`
	// Size is the image's length in bytes.
	Size int64 `json:"size,omitempty"`
	// Signature is an optional detached signature of the image, standard
	// base64; its scheme is the firmware vendor's.
	Signature string `json:"signature,omitempty"`
	// ReleaseNotesURL optionally points people to what changed.
	ReleaseNotesURL string `json:"releaseNotesURL,omitempty"`
	// IssuedAt orders notices: of two notices that apply to a device, it
	// follows the one issued later (see Supersedes).
	IssuedAt time.Time `json:"issuedAt"`
	// Attempt numbers the rollout's offers to this device: 0 (absent) is
	// the first, and a retry after a failure carries the next number.
	// Of two notices of one rollout the higher attempt is the one to
	// follow, and a device that finished an attempt acts on a higher one
	// again. Statuses echo it.
	Attempt int `json:"attempt,omitempty"`
	// MaintenanceWindows, when present, are the only times the device may
	// download and install: it accepts the notice at once and waits for a
	// window (docs/protocol.md §10.4).
	MaintenanceWindows []MaintenanceWindow `json:"maintenanceWindows,omitempty"`
}

// MaintenanceWindow is a recurring stretch of time: it opens whenever the
// cron Schedule fires in TimeZone and stays open for DurationSeconds.
type MaintenanceWindow struct {
	// Schedule is a five-field cron expression (minute hour day-of-month
	// month day-of-week) or a descriptor such as @daily.
	Schedule string `json:"schedule"`
	// DurationSeconds is how long each window stays open.
	DurationSeconds int64 `json:"durationSeconds"`
	// TimeZone is an IANA time zone name; absent means UTC.
	TimeZone string `json:"timeZone,omitempty"`
}

// EffectiveAttempt is n's attempt counting from 1.
func (n *Notice) EffectiveAttempt() int { return max(n.Attempt, 1) }

// WindowsKey is a canonical form of windows, to tell whether a notice
// carries the windows a rollout has now.
func WindowsKey(windows []MaintenanceWindow) string {
	var b strings.Builder
	for _, w := range windows {
		fmt.Fprintf(&b, "%s|%d|%s;", w.Schedule, w.DurationSeconds, w.TimeZone)
	}
	return b.String()
}

// Validate checks the notice as ParseNotice does.
func (n *Notice) Validate() error {
	if n.V != Version {
		return fmt.Errorf("%w %d", ErrVersion, n.V)
	}
	switch n.Action {
	case ActionUpdate, ActionCancel:
	case "":
		return missing("action")
	default:
		return invalid("action", "%s is not update or cancel", quote(string(n.Action)))
	}
	if err := n.Rollout.validate("rollout"); err != nil {
		return err
	}
	if err := checkTime("issuedAt", n.IssuedAt, true); err != nil {
		return err
	}
	if n.Action == ActionUpdate {
		return n.validateUpdate()
	}
	if n.TargetVersion != "" || len(n.Models) > 0 || n.CurrentVersion != "" || len(n.Artifacts) > 0 ||
		n.SHA256 != "" || n.Size != 0 || n.Signature != "" || n.ReleaseNotesURL != "" ||
		n.Attempt != 0 || len(n.MaintenanceWindows) > 0 {
		return invalid("action", "a cancel notice carries only v, action, rollout and issuedAt")
	}
	return nil
}

func (n *Notice) validateUpdate() error {
	if err := checkVersion("targetVersion", n.TargetVersion); err != nil {
		return err
	}
	if len(n.Models) == 0 {
		return missing("models")
	}
	if len(n.Models) > maxModels {
		return invalid("models", "%d entries, at most %d", len(n.Models), maxModels)
	}
	for i, m := range n.Models {
		if err := checkSegment(fmt.Sprintf("models[%d]", i), m); err != nil {
			return err
		}
		if slices.Contains(n.Models[:i], m) {
			return invalid(fmt.Sprintf("models[%d]", i), "%s is listed twice", quote(m))
		}
	}
	if n.CurrentVersion != "" {
		if _, err := ParseConstraint(n.CurrentVersion); err != nil {
			return invalid("currentVersion", "%v", err)
		}
	}
	if len(n.Artifacts) == 0 {
		return missing("artifacts")
	}
	if len(n.Artifacts) > maxArtifacts {
		return invalid("artifacts", "%d entries, at most %d", len(n.Artifacts), maxArtifacts)
	}
	for i, a := range n.Artifacts {
		if err := checkURL(fmt.Sprintf("artifacts[%d].url", i), a.URL, true); err != nil {
			return err
		}
	}
	if err := checkSHA256("sha256", n.SHA256); err != nil {
		return err
	}
	if n.Size == 0 {
		return missing("size")
	}
	if n.Size < 0 || n.Size > maxSize {
		return invalid("size", "%d is not 1 to 2^53-1", n.Size)
	}
	if err := checkSignature("signature", n.Signature); err != nil {
		return err
	}
	if err := checkURL("releaseNotesURL", n.ReleaseNotesURL, false); err != nil {
		return err
	}
	if err := checkAttempt("attempt", n.Attempt); err != nil {
		return err
	}
	if len(n.MaintenanceWindows) > MaxMaintenanceWindows {
		return invalid("maintenanceWindows", "%d entries, at most %d", len(n.MaintenanceWindows), MaxMaintenanceWindows)
	}
	for i := range n.MaintenanceWindows {
		if err := n.MaintenanceWindows[i].validate(fmt.Sprintf("maintenanceWindows[%d]", i)); err != nil {
			return err
		}
	}
	return nil
}

// MaxMaintenanceWindows and MaxWindowSeconds bound a notice's windows.
const (
	MaxMaintenanceWindows = 8
	MaxWindowSeconds      = 7 * 24 * 3600
	maxAttempt            = 100
)

// validate checks the window's syntax only: whether the schedule is valid
// cron and the zone known is the device's to judge, and the operator
// checks both before it publishes.
func (w *MaintenanceWindow) validate(path string) error {
	if w.Schedule == "" {
		return missing(path + ".schedule")
	}
	if len(w.Schedule) > 128 || !printableASCII(w.Schedule) {
		return invalid(path+".schedule", "%s is not printable ASCII of at most 128 bytes", quote(w.Schedule))
	}
	if w.DurationSeconds < 1 || w.DurationSeconds > MaxWindowSeconds {
		return invalid(path+".durationSeconds", "%d is not 1 to %d", w.DurationSeconds, MaxWindowSeconds)
	}
	if len(w.TimeZone) > 64 || strings.ContainsFunc(w.TimeZone, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("/_+-", r))
	}) {
		return invalid(path+".timeZone", "%s is not an IANA time zone name", quote(w.TimeZone))
	}
	return nil
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func checkAttempt(path string, a int) error {
	if a < 0 || a > maxAttempt {
		return invalid(path, "%d is not 1 to %d", a, maxAttempt)
	}
	return nil
}

// State is where a device is with a rollout, as its Status reports.
type State string

// The states a device reports, in the order it goes through them. A device
// goes from accepted (or straight to rejected) through downloading and
// installing to one terminal state.
const (
	// StateAccepted: the notice applies and the device will install it;
	// it may wait (for a maintenance window) before downloading.
	StateAccepted State = "accepted"
	// StateRejected: the notice applies but the device refuses it (low
	// battery, no space, policy); Reason says why. Terminal.
	StateRejected State = "rejected"
	// StateDownloading: fetching and verifying the image; Progress is the
	// percentage downloaded.
	StateDownloading State = "downloading"
	// StateInstalling: writing the image and rebooting into it. A cancel
	// no longer stops it.
	StateInstalling State = "installing"
	// StateSucceeded: the new firmware runs and reported it after booting.
	// Terminal.
	StateSucceeded State = "succeeded"
	// StateFailed: the update did not happen or did not hold (the device
	// rolled back); Reason says why. Terminal.
	StateFailed State = "failed"
	// StateCanceled: the device stopped because of a cancel notice or a
	// superseding notice. Terminal.
	StateCanceled State = "canceled"
)

// Valid reports whether s is one of the protocol's states.
func (s State) Valid() bool {
	switch s {
	case StateAccepted, StateRejected, StateDownloading, StateInstalling, StateSucceeded, StateFailed, StateCanceled:
		return true
	}
	return false
}

// Terminal reports whether s ends the device's work on a rollout: rejected,
// succeeded, failed or canceled. Only a later notice starts new work.
func (s State) Terminal() bool {
	switch s {
	case StateRejected, StateSucceeded, StateFailed, StateCanceled:
		return true
	}
	return false
}

// Well-known reasons. Reason is free within its syntax (A-Z a-z 0-9 . _ -,
// at most 64 bytes); these are the ones the operator and docs/protocol.md
// know by name, so firmware should use them where they fit.
const (
	ReasonSuperseded          = "superseded"           // canceled: a later notice replaced this one
	ReasonCanceledByOperator  = "canceled-by-operator" // canceled: a cancel notice
	ReasonLowBattery          = "low-battery"          // rejected
	ReasonInsufficientStorage = "insufficient-storage" // rejected
	ReasonPolicy              = "policy"               // rejected: a local rule (no downgrades, user deferral)
	ReasonUnsupportedArtifact = "unsupported-artifact" // rejected: no usable URL scheme, signature missing
	ReasonInvalidNotice       = "invalid-notice"       // rejected: the notice is malformed (see ParseRejectable)
	ReasonDownloadFailed      = "download-failed"      // failed: every mirror failed
	ReasonChecksumMismatch    = "checksum-mismatch"    // failed: size or SHA-256 differ
	ReasonSignatureInvalid    = "signature-invalid"    // failed
	ReasonInstallFailed       = "install-failed"       // failed: writing the image failed
	ReasonRolledBack          = "rolled-back"          // failed: the new image did not boot or pass its self-test
	ReasonVersionMismatch     = "version-mismatch"     // failed: the new image reports another version
	ReasonInterrupted         = "interrupted"          // failed: power loss or reboot the device could not resume from
)

// Status is published retained on R/devices/{deviceID}/status each time the
// device's work on a rollout changes state, and while downloading as
// progress is made.
type Status struct {
	// V is the protocol version, Version.
	V int `json:"v"`
	// RolloutUID is the rollout.uid of the notice the device acts on. The
	// operator ignores reports for rollouts other than the one it tracks.
	RolloutUID string `json:"rolloutUID"`
	// Rollout is "namespace/name" of that rollout, for people reading the
	// broker (RolloutRef.String).
	Rollout string `json:"rollout"`
	// TargetVersion echoes the notice's targetVersion.
	TargetVersion string `json:"targetVersion"`
	// State is where the device is with the rollout.
	State State `json:"state"`
	// Progress is an optional percentage, 0 to 100, while downloading or
	// installing.
	Progress *int `json:"progress,omitempty"`
	// Reason is a short machine-friendly cause, for rejected, failed and
	// canceled above all: one of the Reason constants where one fits.
	Reason string `json:"reason,omitempty"`
	// Message is optional text for people, at most 1024 bytes.
	Message string `json:"message,omitempty"`
	// Details are optional machine-readable facts (HTTP status, mirror...).
	Details map[string]string `json:"details,omitempty"`
	// Time is when the device published it, by its clock, if it has one.
	Time time.Time `json:"ts,omitzero"`
	// Attempt echoes the notice's attempt (absent for the first), so that
	// the operator tells a report on a retry from one on an earlier try.
	Attempt int `json:"attempt,omitempty"`
}

// EffectiveAttempt is the attempt s reports on, counting from 1.
func (s *Status) EffectiveAttempt() int { return max(s.Attempt, 1) }

// Validate checks the status as ParseStatus does.
func (s *Status) Validate() error {
	if s.V != Version {
		return fmt.Errorf("%w %d", ErrVersion, s.V)
	}
	if err := checkToken("rolloutUID", s.RolloutUID, true); err != nil {
		return err
	}
	if s.Rollout == "" {
		return missing("rollout")
	}
	ns, name, ok := strings.Cut(s.Rollout, "/")
	if !ok {
		return invalid("rollout", "%s is not namespace/name", quote(s.Rollout))
	}
	if err := checkRolloutName("rollout", ns, name); err != nil {
		return err
	}
	if err := checkVersion("targetVersion", s.TargetVersion); err != nil {
		return err
	}
	if s.State == "" {
		return missing("state")
	}
	if !s.State.Valid() {
		return invalid("state", "%s is not a state of protocol v%d", quote(string(s.State)), Version)
	}
	if s.Progress != nil && (*s.Progress < 0 || *s.Progress > 100) {
		return invalid("progress", "%d is not 0 to 100", *s.Progress)
	}
	if err := checkToken("reason", s.Reason, false); err != nil {
		return err
	}
	if len(s.Message) > maxMessageLength {
		return invalid("message", "%d bytes, at most %d", len(s.Message), maxMessageLength)
	}
	if !utf8.ValidString(s.Message) {
		return invalid("message", "not UTF-8")
	}
	if err := checkDetails("details", s.Details); err != nil {
		return err
	}
	if err := checkTime("ts", s.Time, false); err != nil {
		return err
	}
	return checkAttempt("attempt", s.Attempt)
}
