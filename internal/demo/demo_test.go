package demo

import (
	"testing"
	"time"

	"k8s.io/utils/ptr"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
)

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"get":                            "get",
		"bin/demo/kubeconfig":            "bin/demo/kubeconfig",
		"--type=merge":                   "--type=merge",
		`{"spec":{"approvedWaves":1}}`:   `'{"spec":{"approvedWaves":1}}'`,
		"it's":                           `'it'\''s'`,
		"":                               "''",
		"factory-7/sensors/devices/+/st": "factory-7/sensors/devices/+/st",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestGatesUpTo(t *testing.T) {
	gated := v1.Wave{Percent: ptr.To[int32](50), RequireApproval: true}
	ro := &v1.FirmwareRollout{}
	ro.Spec.Strategy.Waves = []v1.Wave{{Percent: ptr.To[int32](10), RequireApproval: true}, {Percent: ptr.To[int32](20)}, gated, {Percent: ptr.To[int32](100)}}
	ro.Status.Waves = []v1.WaveStatus{{State: v1.WaveCompleted}, {State: v1.WaveCompleted}, {State: v1.WaveWaitingForApproval}, {State: v1.WavePending}}
	ro.Spec.ApprovedWaves = 1
	if got := gatesUpTo(ro); got != 2 {
		t.Fatalf("gatesUpTo = %d, want 2: the third wave is the second gated one", got)
	}
}

func TestDescribeRollout(t *testing.T) {
	ro := &v1.FirmwareRollout{}
	ro.Spec.Firmware = v1.FirmwareSpec{Version: "2.1.0", Models: []string{"a", "b"}}
	ro.Spec.Selector = &v1.DeviceSelector{CurrentVersion: ">=1.0.0"}
	ro.Spec.Strategy.Waves = []v1.Wave{{Count: ptr.To[int32](5)}, {Count: ptr.To[int32](50), RequireApproval: true}}
	ro.Spec.FailurePolicy = &v1.FailurePolicy{MaxFailed: ptr.To[int32](3), Action: v1.FailureAbort}
	want := "firmware 2.1.0 for a, b running >=1.0.0; waves 5 devices, 50 devices after approval; failure policy: Abort when more than 3 devices fail"
	if got := describeRollout(ro); got != want {
		t.Fatalf("describeRollout =\n%s\nwant\n%s", got, want)
	}
}

func TestClock(t *testing.T) {
	for d, want := range map[time.Duration]string{0: "0:00", 61*time.Second + 400*time.Millisecond: "1:01", 10 * time.Minute: "10:00"} {
		if got := clock(d); got != want {
			t.Errorf("clock(%s) = %s, want %s", d, got, want)
		}
	}
}
