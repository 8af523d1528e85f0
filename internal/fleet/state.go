package fleet

import (
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/heraldiot/herald/protocol"
)

// Device is what the broker holds about one device. Strings that repeat
// across a fleet (model, versions, label sets, rollout UIDs) are interned,
// so a tracked device costs little more than its ID.
type Device struct {
	ID               string
	Model            string
	FirmwareVersion  string
	HardwareRevision string
	Labels           map[string]string // shared between devices with equal labels; read only
	HasInventory     bool

	// Presence.
	Online       bool
	SeenPresence bool
	OfflineSince int64 // unix seconds; 0 while online or never seen

	// Latest status report.
	StatusRollout string // rollout UID
	StatusState   protocol.State
	StatusReason  string
	StatusTime    int64 // unix seconds

	Cohort uint8
}

// NoticeRef is a retained notice on the broker, by topic.
type NoticeRef struct {
	RolloutUID string
	IssuedAt   time.Time
	// SeenAt is when this process first saw the notice (published it, or
	// got it in the retained replay): a lower bound on its age, used to
	// republish before its message expiry runs out.
	SeenAt time.Time
}

// State is a fleet's devices and retained notices. It is safe for
// concurrent use: the session writes, reconcilers read snapshots.
type State struct {
	mu         sync.RWMutex
	devices    map[string]*Device
	notices    map[string]NoticeRef
	strings    map[string]string
	labelSets  map[string]map[string]string
	malformed  int64
	lastStatus protocol.State // set by apply for a valid status; read by Apply
}

// NewState returns an empty state.
func NewState() *State {
	return &State{
		devices:   make(map[string]*Device),
		notices:   make(map[string]NoticeRef),
		strings:   make(map[string]string),
		labelSets: make(map[string]map[string]string),
	}
}

func (s *State) intern(v string) string {
	if v == "" {
		return ""
	}
	if iv, ok := s.strings[v]; ok {
		return iv
	}
	s.strings[v] = v
	return v
}

func (s *State) internLabels(l map[string]string) map[string]string {
	if len(l) == 0 {
		return nil
	}
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(l[k])
		b.WriteByte(0)
	}
	key := b.String()
	if set, ok := s.labelSets[key]; ok {
		return set
	}
	set := make(map[string]string, len(l))
	for k, v := range l {
		set[s.intern(k)] = s.intern(v)
	}
	s.labelSets[key] = set
	return set
}

func (s *State) device(id string) *Device {
	d := s.devices[id]
	if d == nil {
		d = &Device{ID: id, Cohort: uint8(protocol.Cohort(id))}
		s.devices[id] = d
	}
	return d
}

// forgetIfEmpty drops a device the broker no longer holds anything for.
func (s *State) forgetIfEmpty(d *Device) {
	if !d.HasInventory && !d.SeenPresence && d.StatusRollout == "" {
		delete(s.devices, d.ID)
	}
}

// Notices returns a copy of the retained notices by topic.
func (s *State) Notices() map[string]NoticeRef {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make(map[string]NoticeRef, len(s.notices))
	for k, v := range s.notices {
		out[k] = v
	}
	return out
}

// Summary is a fleet's device counts and histograms.
type Summary struct {
	Known, Online, Offline int
	Versions, Models       map[string]int
	Malformed              int64
}

// Summarize counts devices with inventory.
func (s *State) Summarize() Summary {
	s.mu.RLock()
	defer s.mu.RUnlock()
	sum := Summary{Versions: map[string]int{}, Models: map[string]int{}, Malformed: s.malformed}
	for _, d := range s.devices {
		if !d.HasInventory {
			continue
		}
		sum.Known++
		if d.Online {
			sum.Online++
		} else {
			sum.Offline++
		}
		sum.Versions[d.FirmwareVersion]++
		sum.Models[d.Model]++
	}
	return sum
}

// Each calls fn for every device under the read lock, in no particular
// order. fn must not keep the pointer or call back into the state.
func (s *State) Each(fn func(*Device)) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, d := range s.devices {
		fn(d)
	}
}
