package demo

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/utils/ptr"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/internal/testenv"
)

func TestPluginCommand(t *testing.T) {
	for _, tc := range []struct {
		namespace string
		args      []string
		want      string
	}{
		{"default", []string{"get", "rollout", "th-sensor-2.1.0", "--watch"}, "kubectl herald get rollout th-sensor-2.1.0 --watch"},
		{"factory-7", []string{"approve", "th-sensor-2.1.0"}, "kubectl herald approve th-sensor-2.1.0 -n factory-7"},
		{"default", []string{"fleet", "it's"}, `kubectl herald fleet 'it'\''s'`},
	} {
		if got := pluginCommand(tc.namespace, tc.args...); got != tc.want {
			t.Errorf("pluginCommand(%q, %q) = %s, want %s", tc.namespace, tc.args, got, tc.want)
		}
	}
}

// TestIndented: the plugin's views are indented like the narration, and
// their blank lines stay blank, so that a pipe gets no trailing spaces.
func TestIndented(t *testing.T) {
	got := indented("Name:  default/x\n\nWaves:\n  WAVE\n")
	want := []string{"    Name:  default/x", "", "    Waves:", "      WAVE"}
	if !slices.Equal(got, want) {
		t.Errorf("indented = %q, want %q", got, want)
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

// TestOverlay renders the demo's overlay of a config/samples with two
// rollouts with kubectl: the fleet is on the demo's broker, the first
// rollout has the demo's image, and the second is left out.
func TestOverlay(t *testing.T) {
	assets, err := testenv.AssetsDir()
	if err != nil {
		if os.Getenv("HERALD_REQUIRE_TOOLS") == "1" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	dir := t.TempDir()
	files := map[string]string{
		"base/kustomization.yaml": "resources:\n- fleet.yaml\n- rollouts.yaml\n",
		"base/fleet.yaml": "apiVersion: herald.dev/v1alpha1\nkind: DeviceFleet\nmetadata:\n  name: sensors\n" +
			"spec:\n  broker:\n    urls: [tcp://mosquitto.iot.svc:1883]\n  topicRoot: factory-7/sensors\n",
		"base/rollouts.yaml": rolloutYAML("th-sensor-2.1.0") + "---\n" + rolloutYAML("th-sensor-2.1.1-nightly"),
	}
	for name, text := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	render := func(kustomization string) string {
		t.Helper()
		out, err := exec.Command(filepath.Join(assets, "kubectl"), "kustomize", kustomization).CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl kustomize %s: %v\n%s", kustomization, err, out)
		}
		return string(out)
	}
	_, rollouts, err := decodeSamples(render(filepath.Join(dir, "base")))
	if err != nil {
		t.Fatal(err)
	}
	fw := &FirmwareServer{URL: "http://127.0.0.1:8000/firmware/herald-demo.bin", SHA256: strings.Repeat("ab", 32), Size: 4096}
	if err := os.MkdirAll(filepath.Join(dir, "overlay"), 0o755); err != nil {
		t.Fatal(err)
	}
	text := overlay("../base", "tcp://127.0.0.1:1883", fw, rollouts)
	if err := os.WriteFile(filepath.Join(dir, "overlay", "kustomization.yaml"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	fleets, rollouts, err := decodeSamples(render(filepath.Join(dir, "overlay")))
	if err != nil {
		t.Fatal(err)
	}
	if len(fleets) != 1 || len(rollouts) != 1 {
		t.Fatalf("the overlay renders %d fleets and %d rollouts, want one of each:\n%s", len(fleets), len(rollouts), text)
	}
	if got := fleets[0].Spec.Broker.URLs; !slices.Equal(got, []string{"tcp://127.0.0.1:1883"}) {
		t.Errorf("fleet broker URLs %q, want the demo's broker", got)
	}
	if ro := rollouts[0]; ro.Name != "th-sensor-2.1.0" || ro.Spec.Firmware.URL != fw.URL || ro.Spec.Firmware.SHA256 != fw.SHA256 || ro.Spec.Firmware.Size != fw.Size {
		t.Errorf("rollout %s firmware %+v, want th-sensor-2.1.0 with the demo's image", ro.Name, ro.Spec.Firmware)
	}
}

func rolloutYAML(name string) string {
	return "apiVersion: herald.dev/v1alpha1\nkind: FirmwareRollout\nmetadata:\n  name: " + name + "\n" +
		"spec:\n  fleetRef: {name: sensors}\n  firmware:\n    version: 2.1.0\n    url: https://firmware.example.com/x.bin\n" +
		"    sha256: " + strings.Repeat("cd", 32) + "\n    size: 1\n    models: [th-sensor]\n" +
		"  strategy:\n    waves:\n    - percent: 100\n"
}
