package fleet

import (
	"maps"
	"slices"
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

	// Status is the device's latest status report.
	Status Report

	// PresenceSince is when this process first saw the device's current
	// presence (unix seconds; 0 when no presence was ever seen). It is
	// this process's observation, so a restart moves it forward.
	PresenceSince int64

	// Slot is the device's index in its State's table of devices,
	// stable while the state holds it; once the device is forgotten a
	// later one may take it. Planners index what they keep per device
	// by it, and the change log (Catch) reports slots.
	Slot int32

	HasInventory bool
	Online       bool
	SeenPresence bool
	Cohort       uint8
}

// Report is a device's status report on one rollout.
type Report struct {
	Rollout string // rollout UID
	State   protocol.State
	Reason  string
	// Time is the device's own timestamp (unix seconds). It is shown to
	// people but never used for timeouts: device clocks drift and reset.
	Time int64
	// Seen is when this process received the report (unix seconds), the
	// clock every timeout runs on.
	Seen int64
	// progress is 1 + the percentage reported, 0 for none: with Time, it
	// tells a device's next progress report from a republished one when
	// the device sends no time of its own.
	progress uint8
	// Attempt is the notice attempt the report is about, from 1.
	Attempt uint8
}

// same reports whether r and o are the same report, whenever received.
func (r *Report) same(o *Report) bool {
	return r.Rollout == o.Rollout && r.State == o.State && r.Reason == o.Reason && r.Time == o.Time &&
		r.progress == o.progress && r.Attempt == o.Attempt
}

// sameRecord reports whether d and o hold the same broker state. Times
// of observation are left out: they belong to this process, not the broker.
func (d *Device) sameRecord(o *Device) bool {
	return d.Model == o.Model && d.FirmwareVersion == o.FirmwareVersion &&
		d.HardwareRevision == o.HardwareRevision && maps.Equal(d.Labels, o.Labels) &&
		d.HasInventory == o.HasInventory && d.Online == o.Online && d.SeenPresence == o.SeenPresence &&
		d.Status.same(&o.Status)
}

// NoticeRef is a retained notice on the broker, by topic.
type NoticeRef struct {
	RolloutUID string
	IssuedAt   time.Time
	// SeenAt is when this process first saw the notice (published it, or
	// got it in the retained replay): a lower bound on its age, used to
	// republish before its message expiry runs out.
	SeenAt time.Time
	// Attempt is the notice's attempt, from 1 (see protocol.Notice).
	Attempt int
	// Windows is protocol.WindowsKey of the notice's maintenance windows.
	Windows string
}

// Limits bound what a State holds, whatever devices publish.
type Limits struct {
	// MaxDevices is how many devices are tracked. Messages about further
	// device IDs are counted and change nothing. 0 means DefaultMaxDevices.
	MaxDevices int
}

// DefaultMaxDevices is the device cap when a fleet sets none.
const DefaultMaxDevices = 250_000

// Interning shares strings between devices. The tables are bounded, so
// devices that publish ever new values (hostile or broken ones) cannot grow
// them without end: once full, new values are kept by the device alone and
// go when the device's record changes. A re-sync starts with empty tables.
const (
	maxInterned  = 1 << 14
	maxLabelSets = 1 << 12
)

// State is a fleet's devices and retained notices. It is safe for
// concurrent use: the session writes, reconcilers read snapshots.
type State struct {
	limits Limits

	mu        sync.RWMutex
	devices   map[string]*Device
	notices   map[string]NoticeRef
	strings   map[string]string
	labelSets map[string]map[string]string
	// earlier holds, per device, its latest report on each of the last
	// few rollouts it reported on before its current one, newest first, so
	// that a report on one rollout does not erase the device's progress in
	// another (a device may answer a notice it declines while it installs
	// another rollout's image). The broker retains only the latest report,
	// so this is lost when the process restarts.
	earlier map[string][]Report
	tally   tally
	// slots holds each device at its Slot; free lists the slots of
	// forgotten devices, for reuse.
	slots []*Device
	free  []int32
	// changed logs the slots of devices whose record changed (touch),
	// noticesChanged the topics of notices that came, went or changed
	// (noticeChanged), for planners that catch up (Catch, CatchNotices).
	changed        changeLog[int32]
	noticesChanged changeLog[string]
	malformed      int64
	// overLimit counts messages about devices beyond the cap.
	overLimit int64
}

// maxEarlierReports bounds the reports kept per device besides its
// latest: a device juggling more rollouts than this at once is already
// outside the protocol.
const maxEarlierReports = 3

// NewState returns an empty state.
func NewState(l Limits) *State {
	if l.MaxDevices <= 0 {
		l.MaxDevices = DefaultMaxDevices
	}
	return &State{
		limits:    l,
		devices:   make(map[string]*Device),
		notices:   make(map[string]NoticeRef),
		strings:   make(map[string]string),
		labelSets: make(map[string]map[string]string),
		earlier:   make(map[string][]Report),
		tally:     tally{versions: map[string]int{}, models: map[string]int{}},
	}
}

// tally is the fleet's summary, kept as messages are applied so that
// summarising a large fleet costs nothing per device. Callers take a
// device out before they change what it counts by, and put it back after.
type tally struct {
	known, online    int
	versions, models map[string]int
}

func (t *tally) add(d *Device, n int) {
	if !d.HasInventory {
		return
	}
	t.known += n
	if d.Online {
		t.online += n
	}
	bump(t.versions, d.FirmwareVersion, n)
	bump(t.models, d.Model, n)
}

func bump(m map[string]int, k string, n int) {
	if v := m[k] + n; v != 0 {
		m[k] = v
	} else {
		delete(m, k)
	}
}

func (s *State) intern(v string) string {
	if v == "" {
		return ""
	}
	if iv, ok := s.strings[v]; ok {
		return iv
	}
	if len(s.strings) < maxInterned {
		s.strings[v] = v
	}
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
	if len(s.labelSets) < maxLabelSets {
		s.labelSets[key] = set
	}
	return set
}

// device returns the device with id, adding it unless the fleet is at its
// cap; nil means the message is to be ignored. Callers parse the payload
// first, so a message that does not parse leaves no trace.
func (s *State) device(id string) *Device {
	d := s.devices[id]
	if d == nil {
		if len(s.devices) >= s.limits.MaxDevices {
			s.overLimit++
			return nil
		}
		// The ID is a part of the topic the device was first heard on:
		// a copy of its own keeps the map and the record from holding
		// that whole topic for the device's life (30 bytes a device).
		id = strings.Clone(id)
		d = &Device{ID: id, Cohort: uint8(protocol.Cohort(id))}
		if n := len(s.free); n > 0 {
			d.Slot, s.free = s.free[n-1], s.free[:n-1]
			s.slots[d.Slot] = d
		} else {
			d.Slot = int32(len(s.slots))
			s.slots = append(s.slots, d)
		}
		s.devices[id] = d
	}
	return d
}

// touch logs that device d changed. The log keeps at least half a
// fleet's worth of changes: a planner that fell further behind walks the
// fleet again.
func (s *State) touch(d *Device) { s.changed.add(d.Slot, len(s.devices)/2) }

// noticeChanged logs that the notice at topic came, went or changed.
func (s *State) noticeChanged(topic string) { s.noticesChanged.add(topic, len(s.notices)/2) }

// Cursor is the change log's current position, for a later Catch.
// Take it before walking the devices: a change made during the walk is
// then reported again, which re-reads a device already up to date.
func (s *State) Cursor() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.changed.end()
}

// Catch calls fn, under one read lock, for every slot changed since
// cursor, every slot in extra, and the slot of each device ids names that
// the state holds: each slot once, in order, with the device there (nil
// when none is) and its latest report on the rollout with UID uid, as
// EachReport would. Reading the log and the devices under one lock keeps
// them consistent: a device that moved slots since cursor (forgotten, then
// back) is seen gone from the one and present at the other in the same
// call. It returns the cursor to pass next time; ok is false, and fn is
// not called, when the log no longer reaches back to cursor: the caller
// must walk the fleet again. fn must not keep the pointers or call back
// into the state.
func (s *State) Catch(uid string, cursor uint64, extra []int32, ids []string, fn func(slot int32, d *Device, rep *Report)) (next uint64, ok bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, id := range ids {
		if d := s.devices[id]; d != nil {
			extra = append(extra, d.Slot)
		}
	}
	slots, ok := s.changed.since(cursor, extra)
	if !ok {
		return s.changed.end(), false
	}
	for _, slot := range slots {
		var d *Device
		if slot >= 0 && int(slot) < len(s.slots) {
			d = s.slots[slot]
		}
		if d == nil {
			fn(slot, nil, nil)
			continue
		}
		fn(slot, d, s.reportOn(d, uid))
	}
	return s.changed.end(), true
}

// forgetIfEmpty drops a device the broker no longer holds anything for.
func (s *State) forgetIfEmpty(d *Device) {
	if !d.HasInventory && !d.SeenPresence && d.Status.Rollout == "" {
		delete(s.devices, d.ID)
		delete(s.earlier, d.ID)
		s.slots[d.Slot] = nil
		s.free = append(s.free, d.Slot)
	}
}

// EachNotice calls fn, under one read lock, for every retained notice,
// and returns the notice log's position then, for a later CatchNotices.
// fn must not call back into the state.
func (s *State) EachNotice(fn func(topic string, ref NoticeRef)) (cursor uint64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for topic, ref := range s.notices {
		fn(topic, ref)
	}
	return s.noticesChanged.end()
}

// CatchNotices calls fn, under one read lock, for every notice topic
// logged as changed since cursor, once each, with the notice there now
// (ok false when there is none). It returns the cursor to pass next time;
// ok is false, and fn is not called, when the log no longer reaches back
// to cursor: the caller must read every notice again (EachNotice). fn
// must not call back into the state.
func (s *State) CatchNotices(cursor uint64, fn func(topic string, ref NoticeRef, ok bool)) (next uint64, ok bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	topics, ok := s.noticesChanged.since(cursor, nil)
	if !ok {
		return s.noticesChanged.end(), false
	}
	for _, topic := range topics {
		ref, ok := s.notices[topic]
		fn(topic, ref, ok)
	}
	return s.noticesChanged.end(), true
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
	// Tracked counts every device the state holds, with or without
	// inventory; MaxDevices is its cap, and OverLimit counts the messages
	// ignored because the cap was reached.
	Tracked, MaxDevices int
	OverLimit           int64
}

// LimitReached reports whether devices were ignored because of the cap.
func (s Summary) LimitReached() bool { return s.OverLimit > 0 }

// Summarize counts devices with inventory.
func (s *State) Summarize() Summary {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return Summary{
		Known: s.tally.known, Online: s.tally.online, Offline: s.tally.known - s.tally.online,
		Versions: maps.Clone(s.tally.versions), Models: maps.Clone(s.tally.models), Malformed: s.malformed,
		Tracked: len(s.devices), MaxDevices: s.limits.MaxDevices, OverLimit: s.overLimit,
	}
}

// Len is how many devices the state holds.
func (s *State) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.devices)
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

// EachReport calls fn for every device under the read lock, in no
// particular order, with the device's latest report on the rollout with
// UID uid, if it made one. fn must not keep the pointer or call back into
// the state.
func (s *State) EachReport(uid string, fn func(d *Device, rep *Report)) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, d := range s.devices {
		fn(d, s.reportOn(d, uid))
	}
}

// reportOn is d's latest report on the rollout with UID uid, or nil.
func (s *State) reportOn(d *Device, uid string) *Report {
	if d.Status.Rollout == uid {
		return &d.Status
	}
	e := s.earlier[d.ID]
	for i := range e {
		if e[i].Rollout == uid {
			return &e[i]
		}
	}
	return nil
}

// report makes r the device's latest report, keeping its previous one as
// an earlier report when it was on another rollout.
func (s *State) report(d *Device, r Report) {
	prev := d.Status
	d.Status = r
	e := s.earlier[d.ID]
	// The new report replaces any earlier one on the same rollout.
	e = slices.DeleteFunc(e, func(x Report) bool { return x.Rollout == r.Rollout || x.Rollout == prev.Rollout })
	if prev.Rollout != "" && prev.Rollout != r.Rollout {
		e = slices.Insert(e, 0, prev)
		if len(e) > maxEarlierReports {
			e = e[:maxEarlierReports]
		}
	}
	if len(e) == 0 {
		delete(s.earlier, d.ID)
		return
	}
	s.earlier[d.ID] = e
}

// differences counts the devices and notices whose broker state differs
// between s and o.
func (s *State) differences(o *State) int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	o.mu.RLock()
	defer o.mu.RUnlock()
	n := 0
	for id, d := range s.devices {
		if od, ok := o.devices[id]; !ok || !d.sameRecord(od) {
			n++
		}
	}
	for id := range o.devices {
		if _, ok := s.devices[id]; !ok {
			n++
		}
	}
	for topic, ref := range s.notices {
		if or, ok := o.notices[topic]; !ok || or.RolloutUID != ref.RolloutUID || !or.IssuedAt.Equal(ref.IssuedAt) {
			n++
		}
	}
	for topic := range o.notices {
		if _, ok := s.notices[topic]; !ok {
			n++
		}
	}
	return n
}

// carryOver keeps what this process observed before s was rebuilt, where
// it still describes the same broker state: when an offline device was
// first seen offline, and when a notice was first seen. A rebuilt state
// would otherwise restart every offline grace period and make retained
// notices look younger than they are.
func (s *State) carryOver(old *State) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old.mu.RLock()
	defer old.mu.RUnlock()
	for id, d := range s.devices {
		od, ok := old.devices[id]
		if !ok {
			continue
		}
		if d.SeenPresence && od.SeenPresence && d.Online == od.Online && od.PresenceSince != 0 && od.PresenceSince < d.PresenceSince {
			d.PresenceSince = od.PresenceSince
		}
		if d.Status.same(&od.Status) && od.Status.Seen != 0 && od.Status.Seen < d.Status.Seen {
			d.Status.Seen = od.Status.Seen
		}
		// The replay holds only latest reports: earlier ones come from
		// the old state, less any the rebuilt latest report replaces.
		if e := old.earlier[id]; len(e) > 0 {
			kept := slices.DeleteFunc(slices.Clone(e), func(x Report) bool { return x.Rollout == d.Status.Rollout })
			if len(kept) > 0 {
				s.earlier[id] = kept
			}
		}
	}
	for topic, ref := range s.notices {
		or, ok := old.notices[topic]
		if ok && or.RolloutUID == ref.RolloutUID && or.IssuedAt.Equal(ref.IssuedAt) && or.SeenAt.Before(ref.SeenAt) {
			ref.SeenAt = or.SeenAt
			s.notices[topic] = ref
			s.noticeChanged(topic)
		}
	}
}
