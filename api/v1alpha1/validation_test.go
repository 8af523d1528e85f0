package v1alpha1_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/internal/testenv"
)

var k8s client.Client

func TestMain(m *testing.M) {
	cp, err := testenv.StartControlPlane()
	if err != nil {
		panic(err)
	}
	scheme := runtime.NewScheme()
	if err := v1.AddToScheme(scheme); err != nil {
		panic(err)
	}
	if k8s, err = client.New(cp.Config, client.Options{Scheme: scheme}); err != nil {
		panic(err)
	}
	code := m.Run()
	if err := cp.Stop(); err != nil {
		panic(err)
	}
	os.Exit(code)
}

func validRollout(name string) *v1.FirmwareRollout {
	return &v1.FirmwareRollout{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: v1.FirmwareRolloutSpec{
			Firmware: v1.FirmwareSpec{
				Version: "2.1.0",
				URL:     "https://firmware.example/sensor-2.1.0.bin",
				SHA256:  strings.Repeat("ab", 32),
				Size:    1 << 20,
				Models:  []string{"sensor-a"},
			},
			Strategy: v1.RolloutStrategy{Waves: []v1.Wave{{Percent: ptr.To[int32](10)}, {Percent: ptr.To[int32](100), RequireApproval: true}}},
		},
	}
}

// TestRolloutValidation checks that the schema and its CEL rules reject
// invalid rollouts with messages a person understands.
func TestRolloutValidation(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tests := []struct {
		name   string
		mutate func(*v1.FirmwareRollout)
		want   string // substring of the error; empty means valid
	}{
		{"valid", func(*v1.FirmwareRollout) {}, ""},
		{"sha256 not hex", func(r *v1.FirmwareRollout) { r.Spec.Firmware.SHA256 = strings.Repeat("zz", 32) },
			"sha256 must be 64 lowercase hexadecimal characters"},
		{"sha256 short", func(r *v1.FirmwareRollout) { r.Spec.Firmware.SHA256 = "abcd" },
			"sha256 must be 64 lowercase hexadecimal characters"},
		{"version not semver", func(r *v1.FirmwareRollout) { r.Spec.Firmware.Version = "latest" },
			"version must be a semantic version"},
		{"version with v prefix", func(r *v1.FirmwareRollout) { r.Spec.Firmware.Version = "v2.1.0" },
			"without a 'v' prefix"},
		{"pre-release version", func(r *v1.FirmwareRollout) { r.Spec.Firmware.Version = "2.1.0-rc.1" }, ""},
		{"skip devices", func(r *v1.FirmwareRollout) { r.Spec.SkipDevices = []string{"sensor-0001", "b.2"} }, ""},
		{"skip device with a wildcard", func(r *v1.FirmwareRollout) { r.Spec.SkipDevices = []string{"sensor/+"} },
			"each device ID must be 1-64 characters"},
		{"skip device twice", func(r *v1.FirmwareRollout) { r.Spec.SkipDevices = []string{"a", "a"} },
			"Duplicate value"},
		{"response timeout too short", func(r *v1.FirmwareRollout) {
			r.Spec.ResponseTimeout = &metav1.Duration{Duration: 100 * time.Millisecond}
		}, "responseTimeout must be at least 1s"},
		{"device timeout zero", func(r *v1.FirmwareRollout) { r.Spec.DeviceTimeout = &metav1.Duration{} },
			"deviceTimeout must be at least 1s"},
		{"schedule ends before it starts", func(r *v1.FirmwareRollout) {
			start, end := metav1.NewTime(time.Date(2027, 1, 2, 0, 0, 0, 0, time.UTC)), metav1.NewTime(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC))
			r.Spec.Schedule = &v1.Schedule{StartTime: &start, EndTime: &end}
		}, "schedule.endTime must be after schedule.startTime"},
		{"schedule", func(r *v1.FirmwareRollout) {
			start, end := metav1.NewTime(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)), metav1.NewTime(time.Date(2027, 1, 2, 0, 0, 0, 0, time.UTC))
			r.Spec.Schedule = &v1.Schedule{StartTime: &start, EndTime: &end}
			r.Spec.DryRun = true
		}, ""},
		{"rejections unknown", func(r *v1.FirmwareRollout) {
			r.Spec.FailurePolicy = &v1.FailurePolicy{MaxFailed: ptr.To[int32](1), Rejections: "Sometimes"}
		}, "Unsupported value"},
		{"url scheme", func(r *v1.FirmwareRollout) { r.Spec.Firmware.URL = "ftp://x/y" },
			"url must start with https:// or http://"},
		{"model with slash", func(r *v1.FirmwareRollout) { r.Spec.Firmware.Models = []string{"a/b"} },
			"each model must be 1-64 characters"},
		{"waves decreasing", func(r *v1.FirmwareRollout) {
			r.Spec.Strategy.Waves = []v1.Wave{{Percent: ptr.To[int32](50)}, {Percent: ptr.To[int32](20)}}
		}, "waves must be strictly increasing"},
		{"waves repeated", func(r *v1.FirmwareRollout) {
			r.Spec.Strategy.Waves = []v1.Wave{{Percent: ptr.To[int32](50)}, {Percent: ptr.To[int32](50)}}
		}, "waves must be strictly increasing"},
		{"percent over 100", func(r *v1.FirmwareRollout) {
			r.Spec.Strategy.Waves = []v1.Wave{{Percent: ptr.To[int32](150)}}
		}, "should be less than or equal to 100"},
		{"percent and count mixed", func(r *v1.FirmwareRollout) {
			r.Spec.Strategy.Waves = []v1.Wave{{Percent: ptr.To[int32](10)}, {Count: ptr.To[int32](500)}}
		}, "use percent in every wave or count in every wave"},
		{"wave with both", func(r *v1.FirmwareRollout) {
			r.Spec.Strategy.Waves = []v1.Wave{{Percent: ptr.To[int32](10), Count: ptr.To[int32](5)}}
		}, "a wave sets exactly one of percent or count"},
		{"no waves", func(r *v1.FirmwareRollout) { r.Spec.Strategy.Waves = nil }, "spec.strategy.waves"},
		{"empty failure policy", func(r *v1.FirmwareRollout) { r.Spec.FailurePolicy = &v1.FailurePolicy{} },
			"set maxFailedPercent, maxFailed, or both"},
		{"unknown failure action", func(r *v1.FirmwareRollout) {
			r.Spec.FailurePolicy = &v1.FailurePolicy{MaxFailed: ptr.To[int32](1), Action: "Explode"}
		}, `supported values: "Pause", "Abort"`},
		{"retry policy", func(r *v1.FirmwareRollout) {
			r.Spec.RetryPolicy = &v1.RetryPolicy{Download: 3, Timeout: 1, Backoff: &metav1.Duration{Duration: time.Minute}}
		}, ""},
		{"too many retries", func(r *v1.FirmwareRollout) { r.Spec.RetryPolicy = &v1.RetryPolicy{Install: 11} },
			"should be less than or equal to 10"},
		{"retry backoff zero", func(r *v1.FirmwareRollout) {
			r.Spec.RetryPolicy = &v1.RetryPolicy{Install: 1, Backoff: &metav1.Duration{}}
		}, "backoff must be at least 1s"},
		{"maintenance window", func(r *v1.FirmwareRollout) {
			r.Spec.MaintenanceWindows = []v1.MaintenanceWindow{{Schedule: "0 2 * * 1-5", Duration: metav1.Duration{Duration: 3 * time.Hour}, TimeZone: "Europe/Berlin"}}
		}, ""},
		{"window too long", func(r *v1.FirmwareRollout) {
			r.Spec.MaintenanceWindows = []v1.MaintenanceWindow{{Schedule: "@daily", Duration: metav1.Duration{Duration: 200 * time.Hour}}}
		}, "duration must be between 1m and 168h"},
		{"window zone in the schedule", func(r *v1.FirmwareRollout) {
			r.Spec.MaintenanceWindows = []v1.MaintenanceWindow{{Schedule: "CRON_TZ=UTC 0 2 * * *", Duration: metav1.Duration{Duration: time.Hour}}}
		}, "set the time zone in timeZone"},
		{"window zone with a space", func(r *v1.FirmwareRollout) {
			r.Spec.MaintenanceWindows = []v1.MaintenanceWindow{{Schedule: "@daily", Duration: metav1.Duration{Duration: time.Hour}, TimeZone: "Europe Berlin"}}
		}, "timeZone"},
		{"unknown targeting", func(r *v1.FirmwareRollout) { r.Spec.Targeting = "Sometimes" },
			`supported values: "Dynamic", "Snapshot"`},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := validRollout(fmt.Sprintf("r%d", i))
			tt.mutate(r)
			err := k8s.Create(ctx, r)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("valid rollout rejected: %v", err)
			case tt.want != "" && err == nil:
				t.Fatalf("invalid rollout accepted, want an error containing %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestFleetValidation(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tests := []struct {
		name      string
		topicRoot string
		urls      []string
		want      string
	}{
		{"valid", "factory/sensors", []string{"tls://broker:8883"}, ""},
		{"wildcard root", "factory/#", []string{"tcp://b:1883"}, "must not contain the MQTT wildcards"},
		{"trailing slash", "factory/", []string{"tcp://b:1883"}, "must not start or end with '/'"},
		{"dollar root", "$SYS/x", []string{"tcp://b:1883"}, "must not start with '$'"},
		{"bad scheme", "f", []string{"http://b"}, "each broker URL must look like"},
		{"control character", "f\x01g", []string{"tcp://b:1883"}, "must not contain control characters"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &v1.DeviceFleet{
				ObjectMeta: metav1.ObjectMeta{Name: "f" + string(rune('a'+i)), Namespace: "default"},
				Spec:       v1.DeviceFleetSpec{TopicRoot: tt.topicRoot, Broker: v1.BrokerSpec{URLs: tt.urls}},
			}
			err := k8s.Create(ctx, f)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("valid fleet rejected: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// Targeting decides what a rollout is for; changing it half way would
// make the rollout a different one.
func TestTargetingIsImmutable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r := validRollout("snapshot-immutable")
	r.Spec.Targeting = v1.TargetingSnapshot
	if err := k8s.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	r.Spec.Targeting = v1.TargetingDynamic
	err := k8s.Update(ctx, r)
	if err == nil || !strings.Contains(err.Error(), "targeting cannot change once set") {
		t.Fatalf("changing targeting: %v, want the immutability message", err)
	}
	var got v1.FirmwareRollout
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(r), &got); err != nil {
		t.Fatal(err)
	}
	if def := validRollout("defaulted"); k8s.Create(ctx, def) == nil {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(def), def); err != nil || def.Spec.Targeting != v1.TargetingDynamic {
			t.Fatalf("targeting defaults to %q (%v), want Dynamic", def.Spec.Targeting, err)
		}
	}
}

// The samples are what people copy first: each must be accepted as is.
func TestSamplesAreValid(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	files, err := filepath.Glob("../../config/samples/herald_v1alpha1_*.yaml")
	if err != nil || len(files) < 3 {
		t.Fatalf("samples: %v %v", files, err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var obj client.Object = &v1.FirmwareRollout{}
		if strings.Contains(string(data), "kind: DeviceFleet") {
			obj = &v1.DeviceFleet{}
		}
		if err := yaml.UnmarshalStrict(data, obj); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		obj.SetNamespace("default")
		obj.SetName("sample-" + obj.GetName())
		if err := k8s.Create(ctx, obj); err != nil {
			t.Errorf("%s rejected: %v", filepath.Base(f), err)
		}
	}
}
