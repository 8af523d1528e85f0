package devicesim

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/heraldiot/herald/protocol"
)

// Profile describes a simulated fleet: its models, the firmware versions
// and labels their devices start with, and how devices behave. fleetsim
// reads it from YAML:
//
//	topicRoot: factory-7/sensors
//	devices: 300
//	models:
//	- name: th-sensor
//	  weight: 2
//	  hardwareRevision: rev C
//	  versions: {"1.8.2": 5, "1.9.1": 4}
//	  labels: {site: "hall-1|hall-2"}
//	behavior:
//	  failProbability: 0.03
//	  failReasons: [install-failed, rolled-back]
//	  downloadTime: 3s
//
// Device i of a fleet is the same whatever the fleet's size: models,
// versions and label values are dealt in turn by weight (smooth weighted
// round robin), so the first n devices of a larger fleet are exactly the
// fleet of n, and device IDs ("th-sensor-0001") never move.
type Profile struct {
	// TopicRoot is the fleet's topic root (a DeviceFleet's spec.topicRoot).
	TopicRoot string `json:"topicRoot,omitempty"`
	// Devices is the fleet's size when no other is asked for.
	Devices int `json:"devices,omitempty"`
	// IDPrefix is put before every device ID, e.g. to run two simulated
	// fleets against one broker.
	IDPrefix string `json:"idPrefix,omitempty"`
	// Models are the device models, at least one.
	Models []ModelProfile `json:"models"`
	// Behavior is how devices react to update notices.
	Behavior BehaviorProfile `json:"behavior,omitzero"`
}

// ModelProfile is one model of a Profile.
type ModelProfile struct {
	// Name is the model (a topic segment, see docs/protocol.md §3.2).
	Name string `json:"name"`
	// Weight is the model's share of the fleet (default 1).
	Weight int `json:"weight,omitempty"`
	// HardwareRevision is reported in inventory (default "rev A").
	HardwareRevision string `json:"hardwareRevision,omitempty"`
	// Versions are the firmware versions devices start with, with weights.
	Versions map[string]int `json:"versions"`
	// Labels are reported in inventory. A value "a|b|c" is dealt in turn:
	// the model's first device gets a, the second b, and so on.
	Labels map[string]string `json:"labels,omitempty"`
}

// BehaviorProfile is the YAML form of Behavior.
type BehaviorProfile struct {
	RejectProbability float64  `json:"rejectProbability,omitempty"`
	RejectReasons     []string `json:"rejectReasons,omitempty"`
	FailProbability   float64  `json:"failProbability,omitempty"`
	FailReasons       []string `json:"failReasons,omitempty"`
	HangProbability   float64  `json:"hangProbability,omitempty"`
	DownloadTime      Duration `json:"downloadTime,omitzero"`
	InstallTime       Duration `json:"installTime,omitzero"`
	RebootTime        Duration `json:"rebootTime,omitzero"`
	Jitter            float64  `json:"jitter,omitempty"`
	// SucceedOnAttempt makes retries (notice attempt >= it) succeed.
	SucceedOnAttempt int `json:"succeedOnAttempt,omitempty"`
}

// Behavior returns the Behavior the profile describes.
func (b *BehaviorProfile) Behavior() Behavior {
	return Behavior{
		RejectProbability: b.RejectProbability, RejectReasons: b.RejectReasons,
		FailProbability: b.FailProbability, FailReasons: b.FailReasons,
		HangProbability: b.HangProbability,
		DownloadTime:    b.DownloadTime.Duration, InstallTime: b.InstallTime.Duration, RebootTime: b.RebootTime.Duration,
		Jitter: b.Jitter, SucceedOnAttempt: b.SucceedOnAttempt,
	}
}

// Duration is a time.Duration written as in Go ("1m30s") in YAML and JSON.
type Duration struct{ time.Duration }

// UnmarshalJSON reads "1m30s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: want a string such as \"3s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// MarshalJSON writes "1m30s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.Duration.String()) }

// LoadProfile reads a YAML profile and checks it. Unknown fields are errors,
// so that a misspelt one does not silently do nothing.
func LoadProfile(path string) (*Profile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var p Profile
	if err := yaml.UnmarshalStrict(data, &p); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &p, nil
}

// Validate checks that every device the profile describes would be valid
// under docs/protocol.md.
func (p *Profile) Validate() error {
	if p.TopicRoot != "" {
		if _, err := protocol.NewTopics(p.TopicRoot); err != nil {
			return fmt.Errorf("topicRoot: %w", err)
		}
	}
	if p.Devices < 0 {
		return fmt.Errorf("devices: %d is negative", p.Devices)
	}
	if len(p.Models) == 0 {
		return fmt.Errorf("models: at least one is needed")
	}
	total := 0
	for i := range p.Models {
		m := &p.Models[i]
		if err := m.validate(p.IDPrefix); err != nil {
			return fmt.Errorf("models[%d]: %w", i, err)
		}
		if slices.ContainsFunc(p.Models[:i], func(o ModelProfile) bool { return o.Name == m.Name }) {
			return fmt.Errorf("models[%d]: %q is listed twice", i, m.Name)
		}
		total += m.weight()
	}
	if total == 0 {
		return fmt.Errorf("models: every weight is 0")
	}
	return p.Behavior.validate()
}

func (m *ModelProfile) weight() int {
	if m.Weight == 0 {
		return 1
	}
	return m.Weight
}

func (m *ModelProfile) validate(prefix string) error {
	if err := protocol.ValidSegment(m.Name); err != nil {
		return fmt.Errorf("name: %w", err)
	}
	// The longest ID a fleet of a million devices would use.
	if err := protocol.ValidSegment(deviceID(prefix, m.Name, 999999)); err != nil {
		return fmt.Errorf("device IDs (idPrefix and name): %w", err)
	}
	if m.Weight < 0 {
		return fmt.Errorf("weight: %d is negative", m.Weight)
	}
	if len(m.Versions) == 0 {
		return fmt.Errorf("versions: at least one is needed")
	}
	total := 0
	for v, w := range m.Versions {
		if err := protocol.ValidVersion(v); err != nil {
			return fmt.Errorf("versions: %w", err)
		}
		if w < 0 {
			return fmt.Errorf("versions: weight %d of %s is negative", w, v)
		}
		total += w
	}
	if total == 0 {
		return fmt.Errorf("versions: every weight is 0")
	}
	// Check every label value an inventory could carry.
	for k, alternatives := range m.Labels {
		for _, v := range strings.Split(alternatives, "|") {
			inv := protocol.Inventory{V: protocol.Version, DeviceID: "x", Model: "x", HardwareRevision: "x", FirmwareVersion: "1.0.0",
				Labels: map[string]string{k: v}}
			if err := inv.Validate(); err != nil {
				return fmt.Errorf("labels: %w", err)
			}
		}
	}
	if len(m.Labels) > 32 {
		return fmt.Errorf("labels: %d, at most 32", len(m.Labels))
	}
	if m.HardwareRevision != "" {
		inv := protocol.Inventory{V: protocol.Version, DeviceID: "x", Model: "x", HardwareRevision: m.HardwareRevision, FirmwareVersion: "1.0.0"}
		if err := inv.Validate(); err != nil {
			return err
		}
	}
	return nil
}

func (b *BehaviorProfile) validate() error {
	for _, p := range []struct {
		name string
		v    float64
	}{{"rejectProbability", b.RejectProbability}, {"failProbability", b.FailProbability}, {"hangProbability", b.HangProbability}, {"jitter", b.Jitter}} {
		if p.v < 0 || p.v > 1 {
			return fmt.Errorf("behavior.%s: %v is not between 0 and 1", p.name, p.v)
		}
	}
	if sum := b.RejectProbability + b.FailProbability + b.HangProbability; sum > 1 {
		return fmt.Errorf("behavior: the reject, fail and hang probabilities add up to %v, more than 1", sum)
	}
	for _, r := range append(slices.Clone(b.RejectReasons), b.FailReasons...) {
		if err := ValidReason(r); err != nil {
			return fmt.Errorf("behavior: %w", err)
		}
	}
	for _, t := range []Duration{b.DownloadTime, b.InstallTime, b.RebootTime} {
		if t.Duration < 0 {
			return fmt.Errorf("behavior: duration %s is negative", t)
		}
	}
	return nil
}

// ValidReason checks that r can be a status reason: 1 to 64 bytes of
// A-Z a-z 0-9 . _ - (docs/protocol.md §9).
func ValidReason(r string) error {
	st := protocol.Status{V: protocol.Version, RolloutUID: "x", Rollout: "a/b", TargetVersion: "1.0.0", State: protocol.StateFailed, Reason: r}
	if r == "" {
		return fmt.Errorf("reason is empty")
	}
	if err := st.Validate(); err != nil {
		return fmt.Errorf("reason %q: %w", r, err)
	}
	return nil
}

// Spec is one device of a fleet a Profile describes.
type Spec struct {
	ID, Model, FirmwareVersion, HardwareRevision string
	Labels                                       map[string]string
}

// deviceID names the k-th device (from 0) of a model: model-0001 and up.
func deviceID(prefix, model string, k int) string {
	return fmt.Sprintf("%s%s-%04d", prefix, model, k+1)
}

// Specs returns the first n devices of the fleet. The profile must be valid.
func (p *Profile) Specs(n int) []Spec {
	models := make([]int, len(p.Models))
	for i := range p.Models {
		models[i] = p.Models[i].weight()
	}
	pickModel := newDealer(models)
	type modelState struct {
		versions []string
		deal     *dealer
		labels   [][2]string // key, "a|b|c"
		count    int
	}
	states := make([]modelState, len(p.Models))
	for i := range p.Models {
		m := &p.Models[i]
		st := &states[i]
		for v := range m.Versions {
			st.versions = append(st.versions, v)
		}
		slices.Sort(st.versions)
		weights := make([]int, len(st.versions))
		for j, v := range st.versions {
			weights[j] = m.Versions[v]
		}
		st.deal = newDealer(weights)
		for k, v := range m.Labels {
			st.labels = append(st.labels, [2]string{k, v})
		}
		slices.SortFunc(st.labels, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	}
	specs := make([]Spec, 0, n)
	for range n {
		i := pickModel.next()
		m, st := &p.Models[i], &states[i]
		s := Spec{
			ID:               deviceID(p.IDPrefix, m.Name, st.count),
			Model:            m.Name,
			FirmwareVersion:  st.versions[st.deal.next()],
			HardwareRevision: m.HardwareRevision,
		}
		if s.HardwareRevision == "" {
			s.HardwareRevision = "rev A"
		}
		if len(st.labels) > 0 {
			s.Labels = make(map[string]string, len(st.labels))
			for _, kv := range st.labels {
				values := strings.Split(kv[1], "|")
				s.Labels[kv[0]] = values[st.count%len(values)]
			}
		}
		st.count++
		specs = append(specs, s)
	}
	return specs
}

// dealer is smooth weighted round robin: over any stretch of picks, each
// choice comes up in proportion to its weight, in a fixed order.
type dealer struct {
	weights, current []int
	total            int
}

func newDealer(weights []int) *dealer {
	d := &dealer{weights: weights, current: make([]int, len(weights))}
	for _, w := range weights {
		d.total += w
	}
	return d
}

func (d *dealer) next() int {
	best := -1
	for i, w := range d.weights {
		d.current[i] += w
		if w > 0 && (best < 0 || d.current[i] > d.current[best]) {
			best = i
		}
	}
	d.current[best] -= d.total
	return best
}
