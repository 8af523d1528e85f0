package fleet

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/heraldiot/herald/protocol"
)

func noticePayload(t testing.TB, uid string, attempt int) []byte {
	t.Helper()
	b, err := protocol.MarshalNotice(&protocol.Notice{Action: protocol.ActionUpdate,
		Rollout: protocol.RolloutRef{Namespace: "ns", Name: "r", UID: uid}, TargetVersion: "2.0.0", Models: []string{"m"},
		SHA256: "0000000000000000000000000000000000000000000000000000000000000000", Size: 1,
		IssuedAt: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC), Attempt: attempt,
		Artifacts: []protocol.Artifact{{URL: "https://example.com/fw.bin"}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestNoticeLog: a planner that indexed the notices (EachNotice) and then
// reads the notice log (CatchNotices) holds exactly the state's notices,
// hears of each changed topic once, not of echoes of notices it holds,
// and is told to read everything again once the log no longer reaches
// back.
func TestNoticeLog(t *testing.T) {
	topics := mustTopics(t, "root")
	s := NewState(Limits{})
	now := time.Unix(1_800_000_000, 0)
	s.Apply(topics, topics.DeviceNotice("a"), noticePayload(t, "u1", 1), now)
	s.Apply(topics, topics.GroupNotice("m", 3), noticePayload(t, "u1", 1), now)
	index := map[string]NoticeRef{}
	cursor := s.EachNotice(func(topic string, ref NoticeRef) { index[topic] = ref })
	if !maps.Equal(index, s.Notices()) {
		t.Fatalf("EachNotice saw %v, the state holds %v", index, s.Notices())
	}
	catch := func() []string {
		t.Helper()
		var heard []string
		next, ok := s.CatchNotices(cursor, func(topic string, ref NoticeRef, present bool) {
			heard = append(heard, topic)
			if present {
				index[topic] = ref
			} else {
				delete(index, topic)
			}
		})
		if !ok {
			t.Fatal("the log no longer reaches back")
		}
		cursor = next
		if !maps.Equal(index, s.Notices()) {
			t.Fatalf("caught up to %v, the state holds %v", index, s.Notices())
		}
		return heard
	}
	// The broker echoing a notice the state holds changes nothing.
	s.Apply(topics, topics.DeviceNotice("a"), noticePayload(t, "u1", 1), now.Add(time.Second))
	if heard := catch(); len(heard) != 0 {
		t.Fatalf("heard of %v after an echo", heard)
	}
	// A new attempt, our own withdrawal, a newcomer changed twice, our
	// own publish, and a withdrawal of what was never there.
	s.Apply(topics, topics.DeviceNotice("a"), noticePayload(t, "u1", 2), now)
	s.Published(topics, topics.GroupNotice("m", 3), nil, now)
	s.Apply(topics, topics.DeviceNotice("b"), noticePayload(t, "u1", 1), now)
	s.Apply(topics, topics.DeviceNotice("b"), noticePayload(t, "u2", 1), now)
	s.Published(topics, topics.DeviceNotice("c"), noticePayload(t, "u1", 1), now)
	s.Apply(topics, topics.DeviceNotice("d"), nil, now)
	want := []string{topics.DeviceNotice("a"), topics.DeviceNotice("b"), topics.DeviceNotice("c"), topics.GroupNotice("m", 3)}
	slices.Sort(want)
	if heard := catch(); !slices.Equal(heard, want) {
		t.Fatalf("heard of %v, want each changed topic once: %v", heard, want)
	}
	// More changes than the log keeps.
	for i := range 3 * minChangeLog {
		s.Apply(topics, topics.DeviceNotice(fmt.Sprint("x", i%10)), noticePayload(t, "u1", 1+(i/10)%2), now)
	}
	if _, ok := s.CatchNotices(cursor, func(string, NoticeRef, bool) { t.Fatal("called on a log that does not reach back") }); ok {
		t.Fatal("the log still reaches back")
	}
}
