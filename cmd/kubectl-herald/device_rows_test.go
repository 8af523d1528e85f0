package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/protocol"
)

func reported(uid string, state protocol.State, reason string) *protocol.Status {
	return &protocol.Status{V: 1, RolloutUID: uid, Rollout: "factory-7/sensor-2.1.0", TargetVersion: "2.1.0", State: state, Reason: reason}
}

func withInventory(s *protocol.Status) *device {
	return &device{status: s, inventory: &protocol.Inventory{Model: "sensor-a", FirmwareVersion: "2.0.3"}}
}

// TestDeviceRows checks how the broker's reports and the rollout combine:
// reports on other rollouts are left out, an unfinished skipped device is
// skipped, a device the operator timed out is failed, and a device's own
// outcome always stands.
func TestDeviceRows(t *testing.T) {
	ro := rolloutFixture()
	uid := string(ro.UID)
	ro.Spec.SkipDevices = []string{"skipped-busy", "skipped-done", "skipped-silent", "not-in-fleet"}
	ro.Status.FailureSample = []v1.DeviceFailure{
		{Device: "timed-out", Reason: "no answer", Time: metav1.Time{Time: now}},
		{Device: "stuck", State: "failed", Reason: "timeout", Time: metav1.Time{Time: now}},
		{Device: "failed", State: "failed", Reason: "operator's words", Time: metav1.Time{Time: now}},
	}
	devices := map[string]*device{
		"busy":           withInventory(reported(uid, protocol.StateDownloading, "")),
		"failed":         withInventory(reported(uid, protocol.StateFailed, "checksum-mismatch")),
		"other-rollout":  withInventory(reported("other", protocol.StateFailed, "install-failed")),
		"no-status":      withInventory(nil),
		"skipped-busy":   withInventory(reported(uid, protocol.StateInstalling, "")),
		"skipped-done":   withInventory(reported(uid, protocol.StateSucceeded, "")),
		"skipped-silent": withInventory(nil),
		"stuck":          withInventory(reported(uid, protocol.StateAccepted, "")),
		"timed-out":      withInventory(reported("other", protocol.StateSucceeded, "")),
	}
	devices["busy"].status.Progress = ptr.To(40)
	devices["busy"].presence = &protocol.Presence{State: protocol.PresenceOnline}
	var got []string
	for _, r := range deviceRows(ro, devices) {
		got = append(got, strings.Join([]string{r.Device, r.State, r.Source, r.Reported, r.Reason}, "|"))
	}
	want := []string{
		"busy|downloading|device||",
		"failed|failed|device||checksum-mismatch",
		"skipped-busy|skipped|spec|installing|",
		"skipped-done|succeeded|device||",
		"skipped-silent|skipped|spec||",
		"stuck|failed|operator|accepted|timeout",
		"timed-out|failed|operator||no answer",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	states, err := parseStates([]string{"INPROGRESS", "skipped"})
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, r := range filterRows(deviceRows(ro, devices), states) {
		kept = append(kept, r.Device)
	}
	if strings.Join(kept, ",") != "busy,skipped-busy,skipped-silent" {
		t.Errorf("--state inProgress,skipped kept %v", kept)
	}
	if _, err := parseStates([]string{"waiting"}); err == nil {
		t.Error("--state waiting was accepted: the broker cannot tell it")
	}
}

func TestDeviceOutput(t *testing.T) {
	ts := time.Date(2026, 3, 2, 9, 30, 25, 0, time.UTC)
	rows := []deviceRow{
		{Device: "sensor-0001", State: "downloading", Progress: ptr.To(40), Model: "sensor-a", FirmwareVersion: "2.0.3", Presence: "online", ReportedAt: &ts, TargetVersion: "2.1.0"},
		{Device: "sensor-0002", State: "failed", Reason: "checksum-mismatch", Message: "line one\nline\ttwo"},
	}
	var b bytes.Buffer
	writeTable(&b, rows, true)
	want := `DEVICE       STATE        PROGRESS  REASON             MODEL     VERSION  PRESENCE  HARDWARE  TARGET  REPORTED              MESSAGE
sensor-0001  downloading  40%       -                  sensor-a  2.0.3    online    -         2.1.0   2026-03-02T09:30:25Z  -
sensor-0002  failed       -         checksum-mismatch  -         -        -         -         -       -                     line one line two
`
	if b.String() != want {
		t.Errorf("wide table:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	if err := writeJSON(&b, rolloutFixture(), nil); err != nil {
		t.Fatal(err)
	}
	var list devicesList
	if err := json.Unmarshal(b.Bytes(), &list); err != nil || list.Devices == nil || list.Rollout != "factory-7/sensor-2.1.0" {
		t.Errorf("empty JSON list %s (%v)", b.String(), err)
	}
}
