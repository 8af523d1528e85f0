package devicesim

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/heraldiot/herald/protocol"
)

// Behavior is how a simulated device reacts to an update notice that
// applies to it.
type Behavior struct {
	// RejectProbability, FailProbability and HangProbability pick the
	// outcome of an update; the rest succeed. Their sum must not exceed 1.
	RejectProbability, FailProbability, HangProbability float64
	// RejectReasons are the reasons a rejecting device gives, one picked
	// per update (default low-battery).
	RejectReasons []string
	// FailReasons are the reasons a failing device gives, one picked per
	// update (default FailReason). With rolled-back, the device reboots
	// into its old firmware before it reports, as docs/protocol.md §10.5
	// describes.
	FailReasons []string
	// FailReason is the failure reason when FailReasons is empty (default
	// install-failed).
	FailReason string
	// DownloadTime, InstallTime and RebootTime are simulated durations.
	DownloadTime, InstallTime, RebootTime time.Duration
	// Jitter spreads DownloadTime and InstallTime by up to this fraction
	// either way, per update (0 to 1).
	Jitter float64
	// ProgressInterval is the least time between two downloading reports
	// (default 5s, the rate docs/protocol.md §9 asks for).
	ProgressInterval time.Duration
	// Hang makes every device accept and then never report an outcome.
	Hang bool
	// SucceedOnAttempt, when above 0, makes every update from that
	// notice attempt on succeed (a retry, docs/protocol.md §10.2), so a
	// test knows exactly what its retries will bring.
	SucceedOnAttempt int
	// Fetch, when set, downloads the artifact and checks it (see
	// HTTPFetch). An error fails the update with download-failed, or
	// checksum-mismatch when it wraps ErrChecksumMismatch.
	Fetch func(ctx context.Context, n *protocol.Notice) error
}

// Outcome is how an update ends on a device.
type Outcome struct {
	// State is the last state the device reports: succeeded, failed,
	// rejected, or accepted for a device that hangs.
	State protocol.State
	// Reason is the reason reported with failed or rejected.
	Reason string
	// Hang is set when the device accepts and then never finishes.
	Hang bool
}

func (b Behavior) normalized() Behavior {
	if len(b.RejectReasons) == 0 {
		b.RejectReasons = []string{protocol.ReasonLowBattery}
	}
	if len(b.FailReasons) == 0 {
		reason := b.FailReason
		if reason == "" {
			reason = protocol.ReasonInstallFailed
		}
		b.FailReasons = []string{reason}
	}
	if b.ProgressInterval <= 0 {
		b.ProgressInterval = 5 * time.Second
	}
	b.Jitter = min(max(b.Jitter, 0), 1)
	return b
}

// draw picks an outcome. It takes exactly two numbers from r whatever the
// outcome, so that the draws after it do not depend on it.
func (b *Behavior) draw(r *rand.Rand) Outcome {
	roll, pick := r.Float64(), r.Float64()
	choose := func(reasons []string) string { return reasons[int(pick*float64(len(reasons)))%len(reasons)] }
	switch {
	case roll < b.RejectProbability:
		return Outcome{State: protocol.StateRejected, Reason: choose(b.RejectReasons)}
	case roll < b.RejectProbability+b.FailProbability:
		return Outcome{State: protocol.StateFailed, Reason: choose(b.FailReasons)}
	case b.Hang || roll < b.RejectProbability+b.FailProbability+b.HangProbability:
		return Outcome{State: protocol.StateAccepted, Hang: true}
	}
	return Outcome{State: protocol.StateSucceeded}
}

// jittered spreads t by up to ±Jitter, with u uniform in [0, 1).
func (b *Behavior) jittered(t time.Duration, u float64) time.Duration {
	return time.Duration(float64(t) * (1 + b.Jitter*(2*u-1)))
}

// FirstOutcome is how the first update a device acts on ends, for a device
// with this ID and behavior whose Config.Rand is nil. The outcome depends
// on nothing else, so a test can predict exactly which devices of a
// simulated fleet fail.
func FirstOutcome(id string, b Behavior) Outcome {
	b = b.normalized()
	return b.draw(seededRand(id))
}
