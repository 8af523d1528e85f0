package devicesim_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/heraldiot/herald/internal/devicesim"
	"github.com/heraldiot/herald/internal/testenv"
	"github.com/heraldiot/herald/protocol"
)

// A device that failed acts on a retry, a notice of the same rollout with
// the next attempt, and echoes the attempt in every status about it; the
// first attempt delivered again is not acted on.
func TestRetryAttempt(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	op := newOperator(t, b)
	behavior := fast()
	behavior.FailProbability, behavior.FailReasons, behavior.SucceedOnAttempt = 1, []string{protocol.ReasonDownloadFailed}, 2
	d := startDevice(t, b, "sensor-0007", devicesim.Config{Behavior: behavior})
	op.waitFor(d.ID(), "inventory", func(r record) bool { return r.kind == protocol.TopicInventory })

	first := notice("uid-1", "2.0.0", time.Now())
	op.publish(topics.DeviceNotice(d.ID()), first)
	op.waitStatus(d.ID(), protocol.StateFailed)

	op.publish(topics.DeviceNotice(d.ID()), first) // delivered again: nothing
	retry := *first
	retry.Attempt = 2
	op.publish(topics.DeviceNotice(d.ID()), &retry)
	op.waitStatus(d.ID(), protocol.StateSucceeded)
	var attempts []string
	for _, r := range op.statusRecords(d.ID()) {
		attempts = append(attempts, fmt.Sprintf("%s/%d", r.State, r.EffectiveAttempt()))
	}
	want := "[accepted/1 downloading/1 installing/1 failed/1 accepted/2 downloading/2 installing/2 succeeded/2]"
	if got := fmt.Sprint(attempts); got != want {
		t.Fatalf("statuses %s, want %s", got, want)
	}
}

// A notice whose maintenance window the device cannot evaluate is
// rejected with reason policy, not installed at an unknown time; one whose
// window is open is installed at once.
func TestMaintenanceWindows(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	op := newOperator(t, b)
	d := startDevice(t, b, "sensor-0008", devicesim.Config{Behavior: fast()})
	op.waitFor(d.ID(), "inventory", func(r record) bool { return r.kind == protocol.TopicInventory })

	bad := notice("uid-1", "2.0.0", time.Now())
	bad.MaintenanceWindows = []protocol.MaintenanceWindow{{Schedule: "0 2 * * *", DurationSeconds: 3600, TimeZone: "Mars/Olympus"}}
	op.publish(topics.DeviceNotice(d.ID()), bad)
	op.waitFor(d.ID(), "a policy rejection", func(r record) bool {
		return r.kind == protocol.TopicStatus && r.status.State == protocol.StateRejected && r.status.Reason == protocol.ReasonPolicy
	})

	open := notice("uid-2", "2.0.0", time.Now().Add(time.Second))
	open.MaintenanceWindows = []protocol.MaintenanceWindow{{Schedule: "* * * * *", DurationSeconds: 60}}
	op.publish(topics.DeviceNotice(d.ID()), open)
	op.waitStatus(d.ID(), protocol.StateSucceeded)
}

func (o *operator) statusRecords(device string) []protocol.Status {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []protocol.Status
	for _, r := range o.msgs {
		if r.device == device && r.kind == protocol.TopicStatus {
			out = append(out, r.status)
		}
	}
	return out
}
