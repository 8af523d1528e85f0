package rollout

import (
	"slices"
	"time"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/internal/fleet"
	"github.com/heraldiot/herald/protocol"
)

// Input is everything a rollout decision depends on.
type Input struct {
	Rollout *v1.FirmwareRollout
	// Devices visits the fleet's devices, each with its latest report on
	// the rollout with the given UID (nil when it made none); the callback
	// must not keep either pointer. fleet.State.EachReport fits.
	Devices func(uid string, fn func(*fleet.Device, *fleet.Report))
	// Notices are the retained notices on the broker, by topic, for a
	// plan from scratch. A Tracker that follows a fleet.State reads them
	// from the state, as they change.
	Notices map[string]fleet.NoticeRef
	Topics  protocol.Topics
	Now     time.Time
	// OfflineGrace is how long an offline device holds back its wave.
	OfflineGrace time.Duration
	// SupersededModels are this rollout's models that a newer rollout for
	// the same fleet has taken over.
	SupersededModels map[string]bool
	// NoticeBudget is how many notices may be published now (the rate
	// limit); below zero means no limit.
	NoticeBudget int
	// DeviceBudget is how many devices new notices may reach now (the
	// device rate, see DeviceRate); below zero means no limit.
	DeviceBudget int
	// SizeHint is about how many devices Devices visits.
	SizeHint int
	// Snapshot is the rollout's frozen target set (Snapshot targeting),
	// loaded from where status.snapshot says; nil before it is taken.
	Snapshot Snapshot
}

// Snapshot is a frozen target set: device IDs in ascending order.
type Snapshot []string

// Has reports whether id is in the set.
func (s Snapshot) Has(id string) bool {
	_, ok := slices.BinarySearch(s, id)
	return ok
}

// Action is a retained notice to publish or withdraw.
type Action struct {
	Topic    string
	Withdraw bool
	// Device is set for a per-device notice.
	Device string
	// Devices is how many devices that had no notice this one reaches,
	// for the device rate.
	Devices int
	// Attempt is the notice's attempt, from 1: above 1 for a retry.
	Attempt int
}

// Event is a transition worth a Kubernetes Event.
type Event struct {
	Type    string // Normal or Warning
	Reason  string
	Message string
}

// Output is the decided status and broker actions.
type Output struct {
	Status  v1.FirmwareRolloutStatus
	Actions []Action
	// Events are emitted once the status that records them is written, so
	// that a transition is announced once however often it is planned.
	Events []Event
	// WithdrawAll is set when every notice of the rollout must go
	// (cancel, supersede, abort).
	WithdrawAll bool
	// CancelNotice asks for a cancel notice on each withdrawn topic before
	// the withdrawal, telling devices at work to stop.
	CancelNotice bool
	// RequeueAfter is when to plan again without a device message.
	RequeueAfter time.Duration
	// TakeSnapshot is set when a Snapshot rollout is about to start: the
	// caller keeps these IDs, records them in status.snapshot, and plans
	// again with them as Input.Snapshot. Nothing else in the output
	// applies.
	TakeSnapshot Snapshot
}

// Defaults of the spec's durations, for objects that predate them.
const (
	DefaultDeviceTimeout   = 30 * time.Minute
	DefaultResponseTimeout = 10 * time.Minute
)

// NoticeExpiry is the MQTT 5 message expiry of a retained notice: long
// enough for devices that are offline for weeks to find it when they
// return. Plans republish a notice when half of it has passed.
const NoticeExpiry = 30 * 24 * time.Hour

// idleRequeue is how often a running rollout is planned even when nothing
// announces a change.
const idleRequeue = 30 * time.Second

// rateLimitRetry is when to come back after the publish budget ran out.
const rateLimitRetry = 5 * time.Second
