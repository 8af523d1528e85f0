package fleet

import (
	"fmt"
	"time"

	"github.com/heraldiot/herald/protocol"
)

// Result says what applying one message did.
type Result struct {
	// Changed is set when the state changed.
	Changed bool
	// Malformed is set when the message could not be used; it was counted
	// and changed nothing else. Err says why.
	Malformed bool
	Err       error
	// OverLimit is set when the message named a new device while the
	// fleet was at its device cap; it changed nothing.
	OverLimit bool
	// Status is the state a device reported, for a valid status message.
	Status protocol.State
}

// Published records a message the operator has just published, at once,
// so that planning does not publish it again before the broker echoes it
// back. Unlike Apply, it counts a republished notice as new: its age
// (SeenAt) restarts, which is what republishing before expiry is for.
func (s *State) Published(topics protocol.Topics, topic string, payload []byte, now time.Time) {
	s.mu.Lock()
	if _, had := s.notices[topic]; had {
		delete(s.notices, topic)
		s.noticeChanged(topic)
	}
	s.mu.Unlock()
	s.Apply(topics, topic, payload, now)
}

// Apply updates the state from one message on the fleet's topics.
func (s *State) Apply(topics protocol.Topics, topic string, payload []byte, now time.Time) Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	res := s.apply(topics, topic, payload, now)
	if res.Err != nil {
		s.malformed++
		res = Result{Changed: true, Malformed: true, Err: res.Err}
	}
	return res
}

// apply changes the state for one message. Every payload is parsed before
// anything is stored, so a message that does not parse leaves no trace
// but the malformed count.
func (s *State) apply(topics protocol.Topics, topic string, payload []byte, now time.Time) Result {
	if model, _, isGroup, err := topics.ParseGroupNoticeTopic(topic); isGroup {
		if err == nil && model == "" {
			err = fmt.Errorf("%w: group notice without a model", protocol.ErrTopic)
		}
		if err != nil {
			return Result{Err: err}
		}
		return s.applyNotice(topic, payload, now)
	}
	id, kind, err := topics.ParseDeviceTopic(topic)
	if err != nil {
		return Result{Err: err}
	}
	withdrawn := protocol.IsWithdrawal(payload)
	if withdrawn && kind != protocol.TopicNotice {
		return s.withdraw(id, kind)
	}
	switch kind {
	case protocol.TopicPresence:
		p, err := protocol.ParsePresence(payload)
		if err != nil {
			return Result{Err: err}
		}
		d := s.device(id)
		if d == nil {
			return Result{OverLimit: true}
		}
		online := p.State == protocol.PresenceOnline
		if d.SeenPresence && d.Online == online {
			return Result{}
		}
		s.tally.add(d, -1)
		d.SeenPresence, d.Online = true, online
		d.PresenceSince = now.Unix()
		s.tally.add(d, 1)
		s.touch(d)
		return Result{Changed: true}
	case protocol.TopicInventory:
		inv, err := protocol.ParseInventory(payload)
		if err != nil {
			return Result{Err: err}
		}
		if inv.DeviceID != id {
			return Result{Err: fmt.Errorf("inventory: deviceId %q differs from the topic's %q", inv.DeviceID, id)}
		}
		d := s.device(id)
		if d == nil {
			return Result{OverLimit: true}
		}
		s.tally.add(d, -1)
		d.HasInventory = true
		d.Model = s.intern(inv.Model)
		d.FirmwareVersion = s.intern(inv.FirmwareVersion)
		d.HardwareRevision = s.intern(inv.HardwareRevision)
		d.Labels = s.internLabels(inv.Labels)
		s.tally.add(d, 1)
		s.touch(d)
		return Result{Changed: true}
	case protocol.TopicStatus:
		st, err := protocol.ParseStatus(payload)
		if err != nil {
			return Result{Err: err}
		}
		d := s.device(id)
		if d == nil {
			return Result{OverLimit: true}
		}
		// Reasons are free-form: each device keeps its own, and it goes
		// with the device's next report.
		r := Report{Rollout: s.intern(st.RolloutUID), State: st.State, Reason: st.Reason, Seen: now.Unix(),
			Attempt: uint8(st.EffectiveAttempt())} // 1-100, validated
		if !st.Time.IsZero() {
			r.Time = st.Time.Unix()
		}
		if st.Progress != nil {
			r.progress = uint8(*st.Progress + 1) // 0-100, validated
		}
		if r.same(&d.Status) {
			// A device republishes its latest status after every
			// CONNACK: the report is not new, and neither is its clock.
			return Result{Status: st.State}
		}
		s.report(d, r)
		s.touch(d)
		return Result{Changed: true, Status: st.State}
	case protocol.TopicNotice:
		return s.applyNotice(topic, payload, now)
	}
	return Result{Err: fmt.Errorf("%w: %q is not a topic Herald reads", protocol.ErrTopic, topic)}
}

// withdraw applies an empty retained message on a device topic: the
// broker no longer holds that part of the device.
func (s *State) withdraw(id string, kind protocol.TopicKind) Result {
	d := s.devices[id]
	if d == nil {
		return Result{}
	}
	s.tally.add(d, -1)
	switch kind {
	case protocol.TopicPresence:
		d.SeenPresence, d.Online, d.PresenceSince = false, false, 0
	case protocol.TopicInventory:
		d.HasInventory = false
	case protocol.TopicStatus:
		d.Status = Report{}
		delete(s.earlier, id)
	}
	s.tally.add(d, 1)
	s.forgetIfEmpty(d)
	s.touch(d)
	return Result{Changed: true}
}

func (s *State) applyNotice(topic string, payload []byte, now time.Time) Result {
	if protocol.IsWithdrawal(payload) {
		_, had := s.notices[topic]
		if had {
			delete(s.notices, topic)
			s.noticeChanged(topic)
		}
		return Result{Changed: had}
	}
	n, err := protocol.ParseNotice(payload)
	if err != nil {
		return Result{Err: err}
	}
	if n.Action != protocol.ActionUpdate {
		// Cancel notices are not retained; nothing to track.
		return Result{}
	}
	ref := NoticeRef{RolloutUID: s.intern(n.Rollout.UID), IssuedAt: n.IssuedAt, SeenAt: now, Attempt: n.EffectiveAttempt(),
		Windows: s.intern(protocol.WindowsKey(n.MaintenanceWindows))}
	if old, had := s.notices[topic]; had && old.RolloutUID == ref.RolloutUID && old.IssuedAt.Equal(ref.IssuedAt) &&
		old.Attempt == ref.Attempt && old.Windows == ref.Windows {
		// The broker echoing our own publish back, or a replay.
		return Result{}
	}
	s.notices[topic] = ref
	s.noticeChanged(topic)
	return Result{Changed: true}
}
