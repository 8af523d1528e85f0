package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// FirmwareRolloutSpec is a firmware update campaign for (part of) a fleet.
// Every action a person takes on a running rollout is a field here, so that
// the rollout can be driven from git: pause, approve the next gate, cancel.
type FirmwareRolloutSpec struct {
	// FleetRef names the DeviceFleet, in the rollout's namespace, to update.
	// +required
	FleetRef corev1.LocalObjectReference `json:"fleetRef"`

	// Firmware is the image to install.
	// +required
	Firmware FirmwareSpec `json:"firmware"`

	// Selector narrows the devices of the fleet that the rollout targets.
	// Devices of other models than Firmware.Models are never targeted.
	// +optional
	Selector *DeviceSelector `json:"selector,omitempty"`

	// Strategy is how fast the rollout goes: waves, gates and limits.
	// +required
	Strategy RolloutStrategy `json:"strategy"`

	// FailurePolicy stops the rollout when too many devices fail.
	// +optional
	FailurePolicy *FailurePolicy `json:"failurePolicy,omitempty"`

	// DeviceTimeout is how long a device may take from accepting the
	// update to reporting the outcome before it counts as failed. It runs
	// on the operator's clock from the receipt of the device's latest
	// report; device timestamps are never used for timeouts.
	// +optional
	// +kubebuilder:default="30m"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s')",message="deviceTimeout must be at least 1s"
	DeviceTimeout *metav1.Duration `json:"deviceTimeout,omitempty"`

	// ResponseTimeout is how long an online device a notice reaches may
	// stay silent before it counts as failed ("no answer"), so that a
	// device that ignores or cannot read its notice does not hold its wave
	// forever. It runs on the operator's clock from the later of the
	// notice's publication and the device coming online.
	// +optional
	// +kubebuilder:default="10m"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s')",message="responseTimeout must be at least 1s"
	ResponseTimeout *metav1.Duration `json:"responseTimeout,omitempty"`

	// SkipDevices are device IDs the rollout stops waiting for: an
	// unfinished device listed here counts as skipped, no longer holds its
	// wave, and gets no per-device notice. (A group notice still reaches
	// it; docs/operator.md explains.) Devices that finished keep their
	// outcome.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=1000
	// +kubebuilder:validation:items:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.all(d, d.matches('^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$'))",message="each device ID must be 1-64 characters of letters, digits, '.', '_' or '-', not starting with '.'"
	SkipDevices []string `json:"skipDevices,omitempty"`

	// Paused stops new notices; devices already notified carry on.
	// +optional
	Paused bool `json:"paused,omitempty"`

	// ApprovedWaves counts the approval gates passed: a wave with
	// requireApproval starts once ApprovedWaves reaches the number of gated
	// waves up to and including it. Raise it by one to approve the next gate.
	// +optional
	// +kubebuilder:validation:Minimum=0
	ApprovedWaves int32 `json:"approvedWaves,omitempty"`

	// Canceled withdraws every notice of the rollout. It cannot be undone.
	// +optional
	Canceled bool `json:"canceled,omitempty"`

	// DryRun previews the rollout without publishing anything: status
	// shows the devices each wave would target and the notices its start
	// would publish (status.preview). Setting it back to false starts the
	// rollout. On a rollout that has started it acts as paused.
	// +optional
	DryRun bool `json:"dryRun,omitempty"`

	// Schedule bounds when the rollout publishes notices.
	// +optional
	Schedule *Schedule `json:"schedule,omitempty"`

	// MaintenanceWindows are the only times new notices go out, and the
	// only times devices may download and install: each notice carries
	// them. The device timeout counts only time inside a window, so a
	// device waiting for its window is not timed out. None means always.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=8
	MaintenanceWindows []MaintenanceWindow `json:"maintenanceWindows,omitempty"`

	// Targeting decides which devices the rollout targets over time.
	// Dynamic (the default) keeps evaluating the selector: devices that
	// join the fleet or start matching later are updated too. Snapshot
	// freezes the targeted devices when the first wave starts: devices
	// that appear later are left alone, and notices go device by device.
	// It cannot change once set.
	// +optional
	// +kubebuilder:default=Dynamic
	// +kubebuilder:validation:Enum=Dynamic;Snapshot
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="targeting cannot change once set: create a new rollout"
	Targeting Targeting `json:"targeting,omitempty"`

	// RetryPolicy notifies failed devices again, per failure class.
	// +optional
	RetryPolicy *RetryPolicy `json:"retryPolicy,omitempty"`
}

// Targeting is Dynamic or Snapshot.
type Targeting string

// The targeting modes.
const (
	TargetingDynamic  Targeting = "Dynamic"
	TargetingSnapshot Targeting = "Snapshot"
)

// MaintenanceWindow is a recurring stretch of time, written like a CronJob
// schedule: it opens whenever Schedule fires in TimeZone and stays open for
// Duration.
type MaintenanceWindow struct {
	// Schedule is a five-field cron expression (minute hour day-of-month
	// month day-of-week) or a descriptor such as @daily, as in CronJob.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="!self.contains('TZ=')",message="set the time zone in timeZone, not in the schedule"
	Schedule string `json:"schedule"`

	// Duration is how long each window stays open, at most a week.
	// +required
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m') && duration(self) <= duration('168h')",message="duration must be between 1m and 168h"
	Duration metav1.Duration `json:"duration"`

	// TimeZone is the IANA time zone the schedule reads in, such as
	// Europe/Berlin; empty means UTC.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9/_+-]*$`
	TimeZone string `json:"timeZone,omitempty"`
}

// RetryPolicy says how often a failed device is notified again, by why it
// failed. Failure reasons outside these classes (signature-invalid,
// version-mismatch, reasons Herald does not know) are never retried: a
// retry would fail the same way, or hide a problem a person must see.
type RetryPolicy struct {
	// Download retries devices that failed to fetch or verify the image
	// (download-failed, checksum-mismatch).
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10
	Download int32 `json:"download,omitempty"`

	// Install retries devices whose install did not take (install-failed,
	// rolled-back, interrupted).
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10
	Install int32 `json:"install,omitempty"`

	// Timeout retries devices that did not answer their notice or report
	// an outcome in time.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10
	Timeout int32 `json:"timeout,omitempty"`

	// Rejection retries devices that declined the update (low battery,
	// no space): none by default, as a device's refusal is usually its
	// owner's decision.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10
	Rejection int32 `json:"rejection,omitempty"`

	// Backoff is how long after a failure the first retry goes out; it
	// doubles with each further retry of the device, up to MaxBackoff.
	// +optional
	// +kubebuilder:default="5m"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s')",message="backoff must be at least 1s"
	Backoff *metav1.Duration `json:"backoff,omitempty"`

	// MaxBackoff caps the backoff.
	// +optional
	// +kubebuilder:default="1h"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s')",message="maxBackoff must be at least 1s"
	MaxBackoff *metav1.Duration `json:"maxBackoff,omitempty"`
}

// Schedule is when a rollout may publish notices.
// +kubebuilder:validation:XValidation:rule="!has(self.startTime) || !has(self.endTime) || timestamp(self.endTime) > timestamp(self.startTime)",message="schedule.endTime must be after schedule.startTime"
type Schedule struct {
	// StartTime: the first wave starts no earlier.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`

	// EndTime ends the rollout: its retained notices are withdrawn so no
	// device starts anew, devices already at work finish and are counted,
	// and the rollout becomes Canceled with reason ScheduleEnded. No
	// cancel notice is sent.
	// +optional
	EndTime *metav1.Time `json:"endTime,omitempty"`
}

// FirmwareSpec describes a firmware image.
type FirmwareSpec struct {
	// Version is the semantic version devices run after the update.
	// +required
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^(0|[1-9][0-9]*)\\\\.(0|[1-9][0-9]*)\\\\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\\\\+[0-9A-Za-z.-]+)?$')",message="version must be a semantic version such as 1.4.2 or 2.0.0-rc.1, without a 'v' prefix"
	Version string `json:"version"`

	// URL is where devices download the image (https:// or http://).
	// +required
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.startsWith('https://') || self.startsWith('http://')",message="url must start with https:// or http://"
	URL string `json:"url"`

	// Mirrors are further download URLs, tried in order after URL.
	// +optional
	// +kubebuilder:validation:MaxItems=4
	// +kubebuilder:validation:items:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.all(u, u.startsWith('https://') || u.startsWith('http://'))",message="each mirror must start with https:// or http://"
	Mirrors []string `json:"mirrors,omitempty"`

	// SHA256 is the image's SHA-256 digest, 64 lowercase hexadecimal characters.
	// +required
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^[0-9a-f]{64}$')",message="sha256 must be 64 lowercase hexadecimal characters"
	SHA256 string `json:"sha256"`

	// Size is the image's size in bytes.
	// +required
	// +kubebuilder:validation:Minimum=1
	Size int64 `json:"size"`

	// Signature is an optional detached signature of the image, base64.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Signature string `json:"signature,omitempty"`

	// ReleaseNotesURL points people and devices to what changed.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	ReleaseNotesURL string `json:"releaseNotesURL,omitempty"`

	// Models are the device models the image is built for.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.all(m, m.matches('^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$'))",message="each model must be 1-64 characters of letters, digits, '.', '_' or '-', not starting with '.'"
	Models []string `json:"models"`
}

// DeviceSelector picks devices by their inventory.
type DeviceSelector struct {
	// Labels matches the labels devices report in their inventory.
	// +optional
	Labels *metav1.LabelSelector `json:"labels,omitempty"`

	// CurrentVersion is a semantic version constraint on the firmware a
	// device runs now, such as ">=1.2.0, <2.0.0". Devices already on the
	// target version count as done whatever this says.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	CurrentVersion string `json:"currentVersion,omitempty"`
}

// RolloutStrategy orders the rollout into cumulative waves.
type RolloutStrategy struct {
	// Waves are cumulative steps: each wave's percent or count is the share
	// of targeted devices notified once it has started. Percent waves map to
	// stable cohorts of devices (see docs/protocol.md), so a device in the
	// first 10% stays in it.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=20
	// +kubebuilder:validation:XValidation:rule="self.all(w, has(w.percent)) || self.all(w, has(w.count))",message="use percent in every wave or count in every wave, not both"
	// +kubebuilder:validation:XValidation:rule="self.map(w, has(w.percent) ? w.percent : w.count).isSorted() && self.all(w, self.exists_one(x, (has(x.percent) ? x.percent : x.count) == (has(w.percent) ? w.percent : w.count)))",message="waves must be strictly increasing: each wave covers more devices than the one before"
	Waves []Wave `json:"waves"`

	// MaxInProgress caps devices that have accepted but not finished; new
	// notices wait while it is reached. 0 means no cap.
	// +optional
	// +kubebuilder:validation:Minimum=0
	MaxInProgress int32 `json:"maxInProgress,omitempty"`

	// MaxNoticesPerMinute caps MQTT notice publishes. 0 means no cap.
	// +optional
	// +kubebuilder:validation:Minimum=0
	MaxNoticesPerMinute int32 `json:"maxNoticesPerMinute,omitempty"`

	// MaxDevicesPerMinute caps how many devices new notices reach per
	// minute: a group notice counts every device it reaches, so where a
	// group is larger than what the limit allows, its devices get
	// per-device notices instead. 0 means no cap.
	// +optional
	// +kubebuilder:validation:Minimum=0
	MaxDevicesPerMinute int32 `json:"maxDevicesPerMinute,omitempty"`

	// Ramp raises the device rate as devices succeed: it starts at
	// startPerMinute and multiplies by factor after every successesPerStep
	// successes, up to maxDevicesPerMinute when that is set.
	// +optional
	Ramp *Ramp `json:"ramp,omitempty"`
}

// Ramp is an exponential device rate.
type Ramp struct {
	// StartPerMinute is the device rate before any success.
	// +required
	// +kubebuilder:validation:Minimum=1
	StartPerMinute int32 `json:"startPerMinute"`
	// Factor multiplies the rate at each step.
	// +optional
	// +kubebuilder:default=2
	// +kubebuilder:validation:Minimum=2
	// +kubebuilder:validation:Maximum=10
	Factor int32 `json:"factor,omitempty"`
	// SuccessesPerStep is how many successes raise the rate by one step.
	// +required
	// +kubebuilder:validation:Minimum=1
	SuccessesPerStep int32 `json:"successesPerStep"`
}

// Wave is one step of a rollout.
// +kubebuilder:validation:XValidation:rule="has(self.percent) != has(self.count)",message="a wave sets exactly one of percent or count"
type Wave struct {
	// Percent of targeted devices covered once this wave has started (1-100).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	Percent *int32 `json:"percent,omitempty"`

	// Count of targeted devices covered once this wave has started.
	// +optional
	// +kubebuilder:validation:Minimum=1
	Count *int32 `json:"count,omitempty"`

	// RequireApproval holds the wave until spec.approvedWaves approves it.
	// +optional
	RequireApproval bool `json:"requireApproval,omitempty"`

	// PauseAfter is a soak time: after the wave completes, the next wave
	// waits this long.
	// +optional
	PauseAfter *metav1.Duration `json:"pauseAfter,omitempty"`
}

// FailureAction is what the rollout does when its failure policy trips.
// +kubebuilder:validation:Enum=Pause;Abort
type FailureAction string

const (
	// FailurePause stops new notices until the policy is satisfied again
	// (for instance after raising the threshold).
	FailurePause FailureAction = "Pause"
	// FailureAbort withdraws every notice and ends the rollout.
	FailureAbort FailureAction = "Abort"
)

// FailurePolicy says how many failures a rollout tolerates.
// +kubebuilder:validation:XValidation:rule="has(self.maxFailedPercent) || has(self.maxFailed)",message="set maxFailedPercent, maxFailed, or both"
type FailurePolicy struct {
	// MaxFailedPercent trips the policy when failed devices exceed this
	// share of finished devices.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	MaxFailedPercent *int32 `json:"maxFailedPercent,omitempty"`

	// MaxFailed trips the policy when failed devices exceed this count.
	// +optional
	// +kubebuilder:validation:Minimum=0
	MaxFailed *int32 `json:"maxFailed,omitempty"`

	// MinFinished is how many devices must have finished (succeeded or
	// failed) before the percentage applies, so that one early failure does
	// not stop a rollout.
	// +optional
	// +kubebuilder:validation:Minimum=0
	MinFinished int32 `json:"minFinished,omitempty"`

	// Action when the policy trips.
	// +optional
	// +kubebuilder:default=Pause
	Action FailureAction `json:"action,omitempty"`

	// Rejections says whether devices that decline the update count as
	// failures (Fail, the default: a rollout every device rejects is not
	// a success) or are left out of the policy's arithmetic (Ignore).
	// +optional
	// +kubebuilder:default=Fail
	Rejections RejectionPolicy `json:"rejections,omitempty"`
}

// RejectionPolicy is how a failure policy counts rejections.
// +kubebuilder:validation:Enum=Fail;Ignore
type RejectionPolicy string

const (
	// RejectionsFail counts a rejection as a failure.
	RejectionsFail RejectionPolicy = "Fail"
	// RejectionsIgnore leaves rejections out of the failure policy.
	RejectionsIgnore RejectionPolicy = "Ignore"
)

// RolloutPhase is a one-word summary of a rollout.
// +kubebuilder:validation:Enum=Pending;DryRun;Progressing;Paused;WaitingForApproval;Succeeded;Failed;Aborted;Canceled
type RolloutPhase string

// Rollout phases.
const (
	PhasePending            RolloutPhase = "Pending"
	PhaseDryRun             RolloutPhase = "DryRun"
	PhaseProgressing        RolloutPhase = "Progressing"
	PhasePaused             RolloutPhase = "Paused"
	PhaseWaitingForApproval RolloutPhase = "WaitingForApproval"
	PhaseSucceeded          RolloutPhase = "Succeeded"
	PhaseFailed             RolloutPhase = "Failed"
	PhaseAborted            RolloutPhase = "Aborted"
	PhaseCanceled           RolloutPhase = "Canceled"
)

// Terminal reports whether the phase is final.
func (p RolloutPhase) Terminal() bool {
	return p == PhaseSucceeded || p == PhaseFailed || p == PhaseAborted || p == PhaseCanceled
}

// WaveState is where a wave stands.
// +kubebuilder:validation:Enum=Pending;WaitingForApproval;Progressing;Soaking;Completed
type WaveState string

// Wave states.
const (
	WavePending            WaveState = "Pending"
	WaveWaitingForApproval WaveState = "WaitingForApproval"
	WaveProgressing        WaveState = "Progressing"
	WaveSoaking            WaveState = "Soaking"
	WaveCompleted          WaveState = "Completed"
)

// WaveStatus summarises one wave. Counts are of the devices the wave adds.
type WaveStatus struct {
	// State of the wave.
	State WaveState `json:"state"`
	// Targeted devices the wave covers beyond the previous waves.
	Targeted int32 `json:"targeted"`
	// Notified devices among them (a notice reaches them).
	Notified int32 `json:"notified"`
	// Succeeded devices among them.
	Succeeded int32 `json:"succeeded"`
	// Failed devices among them (reported failure or timed out).
	Failed int32 `json:"failed"`
	// Rejected devices among them (declined the update).
	// +optional
	Rejected int32 `json:"rejected,omitempty"`
	// Skipped devices among them (listed in spec.skipDevices before they finished).
	// +optional
	Skipped int32 `json:"skipped,omitempty"`
	// StartTime is when the wave's first notice went out.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// CompletionTime is when every device of the wave had finished or gone offline.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
}

// DeviceTotals counts targeted devices by where they are in the rollout.
type DeviceTotals struct {
	// Targeted devices, including those already on the target version.
	Targeted int32 `json:"targeted"`
	// Waiting devices: targeted but no notice reaches them yet.
	Waiting int32 `json:"waiting"`
	// Notified devices that have not answered.
	Notified int32 `json:"notified"`
	// InProgress devices: accepted, downloading or installing.
	InProgress int32 `json:"inProgress"`
	// Succeeded devices, including those that were already current.
	Succeeded int32 `json:"succeeded"`
	// Failed devices: reported failure or timed out.
	Failed int32 `json:"failed"`
	// TimedOut devices, among Failed: no outcome within deviceTimeout, or
	// no answer to their notice within responseTimeout.
	// +optional
	TimedOut int32 `json:"timedOut,omitempty"`
	// Rejected devices: declined the update.
	Rejected int32 `json:"rejected"`
	// Canceled devices: reported that they stopped on a cancel notice.
	Canceled int32 `json:"canceled"`
	// Skipped devices: listed in spec.skipDevices before they finished.
	// +optional
	Skipped int32 `json:"skipped,omitempty"`
	// Offline targeted devices that have not finished.
	Offline int32 `json:"offline"`
	// Retrying devices failed and wait for their retry (spec.retryPolicy);
	// they count in none of the states above until they answer it.
	// +optional
	Retrying int32 `json:"retrying,omitempty"`
	// Retries is how many retry notices devices were given in all.
	// +optional
	Retries int32 `json:"retries,omitempty"`
	// RetriesExhausted devices, among Failed and Rejected, failed on
	// their last allowed retry.
	// +optional
	RetriesExhausted int32 `json:"retriesExhausted,omitempty"`
}

// DeviceFailure is one failed or rejecting device, kept as a sample for
// people to look at.
type DeviceFailure struct {
	// Device is the device ID.
	Device string `json:"device"`
	// State is failed or rejected.
	// +optional
	State string `json:"state,omitempty"`
	// Reason is what the device (or the timeout) reported.
	Reason string `json:"reason"`
	// Time the operator received the report (or the timeout expired).
	Time metav1.Time `json:"time"`
}

// FirmwareRolloutStatus is a bounded summary of the rollout.
type FirmwareRolloutStatus struct {
	// ObservedGeneration is the spec generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready, Reconciling, Stalled, Finished, Progressing,
	// Paused, Degraded.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// Phase summarises the rollout in one word.
	// +optional
	Phase RolloutPhase `json:"phase,omitempty"`

	// CurrentWave is the 1-based wave in progress (or last started); 0 before the first.
	// +optional
	CurrentWave int32 `json:"currentWave,omitempty"`

	// Progress is "succeeded/targeted", for kubectl.
	// +optional
	Progress string `json:"progress,omitempty"`

	// Waves summarises each wave of spec.strategy.waves, in order.
	// +optional
	// +kubebuilder:validation:MaxItems=20
	Waves []WaveStatus `json:"waves,omitempty"`

	// Totals counts targeted devices by state.
	// +optional
	Totals DeviceTotals `json:"totals,omitzero"`

	// FailureSample is a bounded sample of failed and rejecting devices,
	// most recent first.
	// +optional
	// +kubebuilder:validation:MaxItems=10
	FailureSample []DeviceFailure `json:"failureSample,omitempty"`

	// StartTime is when the first notice went out.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`

	// CompletionTime is when the rollout reached a terminal phase.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`

	// Message explains the phase to a person.
	// +optional
	Message string `json:"message,omitempty"`

	// Preview is what the rollout would do, while spec.dryRun holds it.
	// +optional
	Preview *RolloutPreview `json:"preview,omitempty"`

	// Snapshot is the frozen target set of a rollout with Snapshot
	// targeting, once its first wave has started.
	// +optional
	Snapshot *TargetSnapshot `json:"snapshot,omitempty"`
}

// TargetSnapshot records where a rollout's frozen target set is kept.
type TargetSnapshot struct {
	// Devices is how many devices it holds.
	Devices int32 `json:"devices"`
	// Time is when it was taken.
	Time metav1.Time `json:"time"`
	// ConfigMaps, in the rollout's namespace and owned by it, hold the
	// device IDs: gzip-compressed, one per line, in order.
	ConfigMaps []string `json:"configMaps"`
}

// RolloutPreview is a dry run's account of a rollout.
type RolloutPreview struct {
	// Waves are, per wave of spec.strategy.waves, the devices it would add
	// and the notices starting it would publish.
	// +kubebuilder:validation:MaxItems=20
	Waves []PreviewWave `json:"waves"`
}

// PreviewWave is one wave of a preview.
type PreviewWave struct {
	// Targeted devices the wave adds.
	Targeted int32 `json:"targeted"`
	// GroupNotices and DeviceNotices are the retained notices starting the
	// wave publishes: one per (model, cohort), or one per device.
	GroupNotices  int32 `json:"groupNotices"`
	DeviceNotices int32 `json:"deviceNotices"`
	// Sample is up to ten of the wave's devices, by cohort and ID.
	// +optional
	// +kubebuilder:validation:MaxItems=10
	Sample []string `json:"sample,omitempty"`
}

// FirmwareRollout sends a firmware update to a DeviceFleet as retained MQTT
// notices, wave by wave, and tracks every device's acknowledgement.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=fwr;rollout,categories=herald
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Wave",type=integer,JSONPath=`.status.currentWave`
// +kubebuilder:printcolumn:name="Progress",type=string,JSONPath=`.status.progress`
// +kubebuilder:printcolumn:name="Failed",type=integer,JSONPath=`.status.totals.failed`
// +kubebuilder:printcolumn:name="Rejected",type=integer,JSONPath=`.status.totals.rejected`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type FirmwareRollout struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the desired campaign.
	// +required
	Spec FirmwareRolloutSpec `json:"spec"`
	// Status is the observed progress.
	// +optional
	Status FirmwareRolloutStatus `json:"status,omitzero"`
}

// FirmwareRolloutList is a list of FirmwareRollouts.
//
// +kubebuilder:object:root=true
type FirmwareRolloutList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the rollouts.
	Items []FirmwareRollout `json:"items"`
}
