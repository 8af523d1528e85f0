package devicesim_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/heraldiot/herald/internal/devicesim"
	"github.com/heraldiot/herald/protocol"
)

const twoModels = `
topicRoot: plant/a
devices: 300
models:
- name: th-sensor
  weight: 2
  hardwareRevision: rev C
  versions: {"1.8.2": 5, "1.9.1": 3, "1.2.0": 1, "2.1.0": 1}
  labels: {site: "hall-1|hall-2|hall-3", ring: beta}
- name: th-sensor-pro
  versions: {"1.9.1": 1}
behavior:
  failProbability: 0.1
  failReasons: [install-failed, rolled-back]
  downloadTime: 1m30s
`

func writeProfile(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fleet.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestProfileSpecs: shares are exact, IDs are stable and unique, and a
// fleet of n is the first n devices of any larger fleet.
func TestProfileSpecs(t *testing.T) {
	p, err := devicesim.LoadProfile(writeProfile(t, twoModels))
	if err != nil {
		t.Fatal(err)
	}
	if p.Behavior.DownloadTime.Duration != 90*time.Second || p.Behavior.Behavior().FailProbability != 0.1 {
		t.Fatalf("behavior %+v", p.Behavior)
	}
	specs := p.Specs(300)
	models := map[string]int{}
	versions := map[string]int{}
	sites := map[string]int{}
	ids := map[string]bool{}
	for _, s := range specs {
		models[s.Model]++
		if s.Model == "th-sensor" {
			versions[s.FirmwareVersion]++
			sites[s.Labels["site"]]++
			if s.Labels["ring"] != "beta" || s.HardwareRevision != "rev C" {
				t.Fatalf("device %+v", s)
			}
		} else if s.Labels != nil || s.HardwareRevision != "rev A" {
			t.Fatalf("device %+v", s)
		}
		if ids[s.ID] || protocol.ValidSegment(s.ID) != nil {
			t.Fatalf("ID %q repeated or invalid", s.ID)
		}
		ids[s.ID] = true
	}
	if want := map[string]int{"th-sensor": 200, "th-sensor-pro": 100}; !reflect.DeepEqual(models, want) {
		t.Errorf("models %v, want %v", models, want)
	}
	if want := map[string]int{"1.8.2": 100, "1.9.1": 60, "1.2.0": 20, "2.1.0": 20}; !reflect.DeepEqual(versions, want) {
		t.Errorf("versions %v, want %v", versions, want)
	}
	if sites["hall-1"] != 67 || sites["hall-2"] != 67 || sites["hall-3"] != 66 {
		t.Errorf("sites %v", sites)
	}
	if specs[0].ID != "th-sensor-0001" || specs[1].ID != "th-sensor-pro-0001" || specs[2].ID != "th-sensor-0002" {
		t.Errorf("first IDs %s %s %s", specs[0].ID, specs[1].ID, specs[2].ID)
	}
	if small := p.Specs(17); !reflect.DeepEqual(small, specs[:17]) {
		t.Errorf("the first 17 devices differ from a fleet of 17")
	}
	p.IDPrefix = "b-"
	if id := p.Specs(1)[0].ID; id != "b-th-sensor-0001" {
		t.Errorf("prefixed ID %q", id)
	}
}

func TestProfileErrors(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown field", "models: [{name: a, versions: {\"1.0.0\": 1}, colour: red}]", "colour"},
		{"no models", "devices: 3", "at least one"},
		{"bad model", "models: [{name: 'a/b', versions: {\"1.0.0\": 1}}]", "name"},
		{"bad version", "models: [{name: a, versions: {\"v1.0\": 1}}]", "versions"},
		{"no versions", "models: [{name: a}]", "versions"},
		{"zero weights", "models: [{name: a, weight: 0, versions: {\"1.0.0\": 0}}]", "weight"},
		{"bad label", "models: [{name: a, versions: {\"1.0.0\": 1}, labels: {site: 'hall 1'}}]", "labels"},
		{"twice", "models: [{name: a, versions: {\"1.0.0\": 1}}, {name: a, versions: {\"1.0.0\": 1}}]", "twice"},
		{"probabilities", "models: [{name: a, versions: {\"1.0.0\": 1}}]\nbehavior: {failProbability: 0.7, rejectProbability: 0.4}", "add up"},
		{"reason", "models: [{name: a, versions: {\"1.0.0\": 1}}]\nbehavior: {failReasons: ['disk full']}", "reason"},
		{"duration", "models: [{name: a, versions: {\"1.0.0\": 1}}]\nbehavior: {installTime: 3}", "duration"},
		{"root", "topicRoot: 'a/#'\nmodels: [{name: a, versions: {\"1.0.0\": 1}}]", "topicRoot"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := devicesim.LoadProfile(writeProfile(t, tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one about %q", err, tc.want)
			}
		})
	}
}

// TestDemoProfile checks the profile make demo uses.
func TestDemoProfile(t *testing.T) {
	p, err := devicesim.LoadProfile(filepath.Join("..", "..", "hack", "demo", "fleet.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Devices == 0 || len(p.Models) != 2 {
		t.Fatalf("profile %+v", p)
	}
}

func TestCounts(t *testing.T) {
	specs := []devicesim.Spec{{Model: "a", FirmwareVersion: "1.0.0"}, {Model: "b", FirmwareVersion: "2.0.0"}, {Model: "a", FirmwareVersion: "1.1.0"}, {Model: "a", FirmwareVersion: "1.1.0"}}
	got := devicesim.CountByModel(specs)
	want := []devicesim.ModelCount{{Model: "a", Devices: 3, Versions: map[string]int{"1.0.0": 1, "1.1.0": 2}}, {Model: "b", Devices: 1, Versions: map[string]int{"2.0.0": 1}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("CountByModel = %+v, want %+v", got, want)
	}
	counts := map[string]int{"1.0.0": 1, "1.1.0": 2, "0.9.0": 1, "2.0.0": 5}
	if got, want := devicesim.FormatCounts(counts, 0), "2.0.0 ×5, 1.1.0 ×2, 0.9.0 ×1, 1.0.0 ×1"; got != want {
		t.Errorf("FormatCounts = %q, want %q", got, want)
	}
	if got, want := devicesim.FormatCounts(counts, 2), "2.0.0 ×5, 1.1.0 ×2, others ×2"; got != want {
		t.Errorf("FormatCounts with a limit = %q, want %q", got, want)
	}
}
