package fleet

import (
	"time"

	"github.com/heraldiot/herald/protocol"
)

// Result says what applying one message did.
type Result struct {
	// Changed is set when the state changed.
	Changed bool
	// Malformed is set when the message could not be used; it was counted
	// and changed nothing else.
	Malformed bool
	// Status is the state a device reported, for a valid status message.
	Status protocol.State
}

// Published records a message the operator has just published, at once,
// so that planning does not publish it again before the broker echoes it
// back. Unlike Apply, it counts a republished notice as new: its age
// (SeenAt) restarts, which is what republishing before expiry is for.
func (s *State) Published(topics protocol.Topics, topic string, payload []byte, now time.Time) {
	s.mu.Lock()
	delete(s.notices, topic)
	s.mu.Unlock()
	s.Apply(topics, topic, payload, now)
}

// Apply updates the state from one message on the fleet's topics.
func (s *State) Apply(topics protocol.Topics, topic string, payload []byte, now time.Time) Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastStatus = ""
	changed, ok := s.apply(topics, topic, payload, now)
	res := Result{Changed: changed, Status: s.lastStatus}
	if !ok {
		s.malformed++
		res = Result{Changed: true, Malformed: true}
	}
	return res
}

func (s *State) apply(topics protocol.Topics, topic string, payload []byte, now time.Time) (changed, ok bool) {
	if model, _, isGroup, err := topics.ParseGroupNoticeTopic(topic); isGroup {
		if err != nil || model == "" {
			return false, false
		}
		return s.applyNotice(topic, payload, now)
	}
	id, kind, err := topics.ParseDeviceTopic(topic)
	if err != nil {
		return false, false
	}
	withdrawn := protocol.IsWithdrawal(payload)
	switch kind {
	case protocol.TopicPresence:
		d := s.device(id)
		if withdrawn {
			d.SeenPresence, d.Online, d.OfflineSince = false, false, 0
			s.forgetIfEmpty(d)
			return true, true
		}
		p, err := protocol.ParsePresence(payload)
		if err != nil {
			return false, false
		}
		online := p.State == protocol.PresenceOnline
		if d.SeenPresence && d.Online == online {
			return false, true
		}
		d.SeenPresence, d.Online = true, online
		if online {
			d.OfflineSince = 0
		} else {
			d.OfflineSince = now.Unix()
		}
		return true, true
	case protocol.TopicInventory:
		d := s.device(id)
		if withdrawn {
			d.HasInventory = false
			s.forgetIfEmpty(d)
			return true, true
		}
		inv, err := protocol.ParseInventory(payload)
		if err != nil || inv.DeviceID != id {
			return false, false
		}
		d.HasInventory = true
		d.Model = s.intern(inv.Model)
		d.FirmwareVersion = s.intern(inv.FirmwareVersion)
		d.HardwareRevision = s.intern(inv.HardwareRevision)
		d.Labels = s.internLabels(inv.Labels)
		return true, true
	case protocol.TopicStatus:
		d := s.device(id)
		if withdrawn {
			d.StatusRollout, d.StatusState, d.StatusReason, d.StatusTime = "", "", "", 0
			s.forgetIfEmpty(d)
			return true, true
		}
		st, err := protocol.ParseStatus(payload)
		if err != nil {
			return false, false
		}
		d.StatusRollout = s.intern(st.RolloutUID)
		d.StatusState = st.State
		s.lastStatus = st.State
		d.StatusReason = s.intern(st.Reason)
		d.StatusTime = st.Time.Unix()
		if d.StatusTime <= 0 {
			d.StatusTime = now.Unix()
		}
		return true, true
	case protocol.TopicNotice:
		return s.applyNotice(topic, payload, now)
	}
	return false, false
}

func (s *State) applyNotice(topic string, payload []byte, now time.Time) (changed, ok bool) {
	if protocol.IsWithdrawal(payload) {
		_, had := s.notices[topic]
		delete(s.notices, topic)
		return had, true
	}
	n, err := protocol.ParseNotice(payload)
	if err != nil {
		return false, false
	}
	if n.Action != protocol.ActionUpdate {
		// Cancel notices are not retained; nothing to track.
		return false, true
	}
	ref := NoticeRef{RolloutUID: n.Rollout.UID, IssuedAt: n.IssuedAt, SeenAt: now}
	if old, had := s.notices[topic]; had && old.RolloutUID == ref.RolloutUID && old.IssuedAt.Equal(ref.IssuedAt) {
		// The broker echoing our own publish back, or a replay.
		return false, true
	}
	s.notices[topic] = ref
	return true, true
}
