package fleet

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/heraldiot/herald/protocol"
)

func mustTopics(t testing.TB, root string) protocol.Topics {
	t.Helper()
	topics, err := protocol.NewTopics(root)
	if err != nil {
		t.Fatal(err)
	}
	return topics
}

func statusPayload(t testing.TB, uid, reason string, state protocol.State) []byte {
	t.Helper()
	b, err := protocol.MarshalStatus(&protocol.Status{RolloutUID: uid, Rollout: "ns/r", TargetVersion: "2.0.0", State: state, Reason: reason})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// heapAfterGC is the live heap, measured after a collection.
func heapAfterGC() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestMalformedMessagesLeaveNoState: messages that do not parse, on ever
// new device IDs, are counted and create nothing.
func TestMalformedMessagesLeaveNoState(t *testing.T) {
	topics := mustTopics(t, "hostile")
	s := NewState(Limits{})
	now := time.Now()
	payloads := map[protocol.TopicKind][]byte{
		protocol.TopicPresence:  []byte(`{"v":1,"state":"sideways"}`),
		protocol.TopicInventory: []byte(`not json`),
		protocol.TopicStatus:    []byte(`{"v":2}`),
	}
	for kind, p := range payloads {
		for i := range 1000 {
			id := fmt.Sprintf("fake-%d-%d", kind, i)
			var topic string
			switch kind {
			case protocol.TopicPresence:
				topic = topics.Presence(id)
			case protocol.TopicInventory:
				topic = topics.Inventory(id)
			default:
				topic = topics.Status(id)
			}
			res := s.Apply(topics, topic, p, now)
			if !res.Malformed || res.Err == nil {
				t.Fatalf("%s: %+v, want malformed with a reason", topic, res)
			}
		}
	}
	// An inventory naming another device than its topic is malformed too.
	inv, err := protocol.MarshalInventory(&protocol.Inventory{DeviceID: "someone-else", Model: "m", HardwareRevision: "r1", FirmwareVersion: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	if res := s.Apply(topics, topics.Inventory("me"), inv, now); !res.Malformed || !strings.Contains(res.Err.Error(), "someone-else") {
		t.Fatalf("mismatched inventory: %+v", res)
	}
	if sum := s.Summarize(); sum.Tracked != 0 {
		t.Fatalf("malformed messages left %d devices", sum.Tracked)
	}
}

// TestHostileDevicesMemoryBound: 100,000 malformed messages on unique
// device IDs and 100,000 unique reasons and rollout UIDs from one device
// leave the state within a stated bound (1 MiB above a state with that one
// device), where interning every value once grew it by tens of MiB.
func TestHostileDevicesMemoryBound(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates a few hundred MB in total")
	}
	topics := mustTopics(t, "hostile")
	now := time.Now()
	s := NewState(Limits{})
	s.Apply(topics, topics.Status("dev-1"), statusPayload(t, "uid-0", "first", protocol.StateFailed), now)
	base := heapAfterGC()
	bad := []byte(`{"v":1,"state":42}`)
	for i := range 100_000 {
		s.Apply(topics, topics.Presence(fmt.Sprintf("fake-%07d", i)), bad, now)
	}
	for i := range 100_000 {
		reason, uid := fmt.Sprintf("reason-%057d", i), fmt.Sprintf("uid-%060d", i)
		s.Apply(topics, topics.Status("dev-1"), statusPayload(t, uid, reason, protocol.StateFailed), now)
	}
	grown := int64(heapAfterGC()) - int64(base)
	const bound = 1 << 20
	// The interning tables may fill up to their caps: maxInterned
	// strings of at most 64 bytes, plus map overhead.
	limit := int64(bound + maxInterned*(64+64))
	if grown > limit {
		t.Fatalf("hostile traffic grew the state by %d bytes, bound %d", grown, limit)
	}
	if sum := s.Summarize(); sum.Tracked != 1 {
		t.Fatalf("tracked %d devices, want 1", sum.Tracked)
	}
	if len(s.strings) > maxInterned || len(s.labelSets) > maxLabelSets {
		t.Fatalf("intern tables hold %d strings, %d label sets; caps %d, %d", len(s.strings), len(s.labelSets), maxInterned, maxLabelSets)
	}
	t.Logf("state grew by %d bytes after 200,000 hostile messages", grown)
	runtime.KeepAlive(s)
}

// TestDeviceCap: beyond MaxDevices new devices are ignored and counted;
// known devices keep being updated, and a device that leaves frees a slot.
func TestDeviceCap(t *testing.T) {
	topics := mustTopics(t, "capped")
	now := time.Now()
	s := NewState(Limits{MaxDevices: 100})
	pres := []byte(`{"v":1,"state":"online"}`)
	for i := range 150 {
		res := s.Apply(topics, topics.Presence(fmt.Sprintf("dev-%03d", i)), pres, now)
		if want := i >= 100; res.OverLimit != want {
			t.Fatalf("device %d: OverLimit=%v, want %v", i, res.OverLimit, want)
		}
	}
	sum := s.Summarize()
	if sum.Tracked != 100 || sum.OverLimit != 50 || !sum.LimitReached() || sum.MaxDevices != 100 {
		t.Fatalf("summary %+v, want 100 tracked and 50 ignored of at most 100", sum)
	}
	if res := s.Apply(topics, topics.Status("dev-007"), statusPayload(t, "uid", "", protocol.StateAccepted), now); res.OverLimit || !res.Changed {
		t.Fatalf("a tracked device's status was not applied: %+v", res)
	}
	s.Apply(topics, topics.Presence("dev-000"), nil, now)
	if res := s.Apply(topics, topics.Presence("dev-149"), pres, now); res.OverLimit {
		t.Fatal("a slot freed by a departed device was not reused")
	}
}

// TestReasonsAreNotInterned: a device's reason goes with its next report.
func TestReasonsAreNotInterned(t *testing.T) {
	topics := mustTopics(t, "reasons")
	s := NewState(Limits{})
	for i := range 10 {
		s.Apply(topics, topics.Status("dev-1"), statusPayload(t, "uid", fmt.Sprintf("reason-%d", i), protocol.StateFailed), time.Now())
	}
	for v := range s.strings {
		if strings.HasPrefix(v, "reason-") {
			t.Fatalf("reason %q was interned", v)
		}
	}
}

// TestDifferencesAndCarryOver: comparing a rebuilt state with the old one
// counts records the old one missed, and keeps this process's
// observations (offline since, notice first seen) where they still hold.
func TestDifferencesAndCarryOver(t *testing.T) {
	topics := mustTopics(t, "diff")
	early, late := time.Unix(1000, 0), time.Unix(2000, 0)
	offline := []byte(`{"v":1,"state":"offline"}`)
	old, rebuilt := NewState(Limits{}), NewState(Limits{})
	old.Apply(topics, topics.Presence("a"), offline, early)
	rebuilt.Apply(topics, topics.Presence("a"), offline, late)
	rebuilt.Apply(topics, topics.Status("b"), statusPayload(t, "uid", "", protocol.StateSucceeded), late)
	// The same report without a time of its own, applied at another time,
	// is the same record.
	old.Apply(topics, topics.Status("c"), statusPayload(t, "uid", "", protocol.StateAccepted), early)
	rebuilt.Apply(topics, topics.Status("c"), statusPayload(t, "uid", "", protocol.StateAccepted), late)
	if n := rebuilt.differences(old); n != 1 {
		t.Fatalf("differences = %d, want 1 (device b)", n)
	}
	rebuilt.carryOver(old)
	rebuilt.Each(func(d *Device) {
		if d.ID == "a" && d.PresenceSince != early.Unix() {
			t.Fatalf("offline since %d, want the earlier observation %d", d.PresenceSince, early.Unix())
		}
		if d.ID == "c" && d.Status.Seen != early.Unix() {
			t.Fatalf("report seen at %d, want the earlier observation %d: a re-sync must not restart a device's timeout", d.Status.Seen, early.Unix())
		}
	})
}

// TestReportsOnOtherRollouts: a device's report on one rollout does not
// erase its report on another, also across a rebuild; a report that
// repeats the latest one (a device republishing after CONNACK) keeps the
// time it was first received.
func TestReportsOnOtherRollouts(t *testing.T) {
	topics := mustTopics(t, "others")
	t1, t2, t3 := time.Unix(1000, 0), time.Unix(2000, 0), time.Unix(3000, 0)
	s := NewState(Limits{})
	s.Apply(topics, topics.Status("d"), statusPayload(t, "A", "", protocol.StateInstalling), t1)
	s.Apply(topics, topics.Status("d"), statusPayload(t, "B", "older-notice", protocol.StateRejected), t2)
	s.Apply(topics, topics.Status("d"), statusPayload(t, "B", "older-notice", protocol.StateRejected), t3)
	reportOn := func(s *State, uid string) *Report {
		var got *Report
		s.EachReport(uid, func(d *Device, rep *Report) {
			if rep != nil {
				r := *rep
				got = &r
			}
		})
		return got
	}
	if r := reportOn(s, "A"); r == nil || r.State != protocol.StateInstalling || r.Seen != t1.Unix() {
		t.Fatalf("report on A = %+v, want installing seen at %d", r, t1.Unix())
	}
	if r := reportOn(s, "B"); r == nil || r.State != protocol.StateRejected || r.Seen != t2.Unix() {
		t.Fatalf("report on B = %+v, want rejected first seen at %d", r, t2.Unix())
	}
	if r := reportOn(s, "C"); r != nil {
		t.Fatalf("report on C = %+v, want none", r)
	}
	// A rebuilt state holds the latest report only; carryOver restores
	// the rest.
	rebuilt := NewState(Limits{})
	rebuilt.Apply(topics, topics.Status("d"), statusPayload(t, "B", "older-notice", protocol.StateRejected), t3)
	rebuilt.carryOver(s)
	if r := reportOn(rebuilt, "A"); r == nil || r.State != protocol.StateInstalling {
		t.Fatalf("after a rebuild, report on A = %+v, want installing", r)
	}
	// Back on A: the earlier report on A is replaced, B's is kept.
	s.Apply(topics, topics.Status("d"), statusPayload(t, "A", "", protocol.StateSucceeded), t3)
	if r := reportOn(s, "A"); r == nil || r.State != protocol.StateSucceeded {
		t.Fatalf("report on A = %+v, want succeeded", r)
	}
	if r := reportOn(s, "B"); r == nil || r.State != protocol.StateRejected {
		t.Fatalf("report on B = %+v, want rejected", r)
	}
	// The memory is bounded per device.
	for i := range 10 {
		s.Apply(topics, topics.Status("d"), statusPayload(t, fmt.Sprintf("X%d", i), "", protocol.StateRejected), t3)
	}
	if n := len(s.earlier["d"]); n != maxEarlierReports {
		t.Fatalf("%d earlier reports kept, want %d", n, maxEarlierReports)
	}
}

func TestApplyReportsWhyAMessageIsMalformed(t *testing.T) {
	topics := mustTopics(t, "why")
	s := NewState(Limits{})
	res := s.Apply(topics, "why/devices/bad id/presence", []byte(`{"v":1,"state":"online"}`), time.Now())
	if !res.Malformed || !errors.Is(res.Err, protocol.ErrMalformed) {
		t.Fatalf("%+v", res)
	}
}

// TestSummaryFollowsEveryChange: the summary kept as messages are applied
// equals a recount of the devices after any sequence of presence,
// inventory and withdrawal messages.
func TestSummaryFollowsEveryChange(t *testing.T) {
	topics := mustTopics(t, "tally")
	s := NewState(Limits{})
	r := rand.New(rand.NewPCG(1, 2))
	now := time.Unix(1000, 0)
	for i := range 5000 {
		id := fmt.Sprintf("d%d", r.IntN(50))
		var topic, payload string
		switch r.IntN(5) {
		case 0:
			topic, payload = topics.Presence(id), `{"v":1,"state":"online"}`
		case 1:
			topic, payload = topics.Presence(id), `{"v":1,"state":"offline"}`
		case 2:
			topic = topics.Inventory(id)
			payload = fmt.Sprintf(`{"v":1,"deviceId":%q,"model":"m%d","hardwareRevision":"r","firmwareVersion":"1.%d.0"}`, id, r.IntN(3), r.IntN(4))
		case 3:
			topic = []string{topics.Presence(id), topics.Inventory(id)}[r.IntN(2)]
		case 4:
			topic, payload = topics.Inventory(id), `{"v":1,"deviceId":"someone-else"}` // malformed: changes nothing
		}
		s.Apply(topics, topic, []byte(payload), now.Add(time.Duration(i)*time.Second))
	}
	got := s.Summarize()
	want := Summary{Versions: map[string]int{}, Models: map[string]int{}}
	s.Each(func(d *Device) {
		if !d.HasInventory {
			return
		}
		want.Known++
		if d.Online {
			want.Online++
		} else {
			want.Offline++
		}
		want.Versions[d.FirmwareVersion]++
		want.Models[d.Model]++
	})
	if got.Known != want.Known || got.Online != want.Online || got.Offline != want.Offline ||
		!maps.Equal(got.Versions, want.Versions) || !maps.Equal(got.Models, want.Models) {
		t.Fatalf("summary %+v, recount %+v", got, want)
	}
	if want.Known == 0 || len(want.Versions) < 2 {
		t.Fatalf("the sequence left too little to compare: %+v", want)
	}
}

// TestProgressRestartsTheClock: a device without a clock of its own sends
// progress reports that differ only in progress; each is a new report
// (its receipt restarts the device's timeout), while a republished one is
// not.
func TestProgressRestartsTheClock(t *testing.T) {
	topics := mustTopics(t, "progress")
	s := NewState(Limits{})
	report := func(progress int, at int64) int64 {
		p := fmt.Sprintf(`{"v":1,"rolloutUID":"u","rollout":"ns/r","targetVersion":"2.0.0","state":"downloading","progress":%d}`, progress)
		if res := s.Apply(topics, topics.Status("d"), []byte(p), time.Unix(at, 0)); res.Malformed {
			t.Fatal(res.Err)
		}
		var seen int64
		s.Each(func(d *Device) { seen = d.Status.Seen })
		return seen
	}
	if got := report(10, 100); got != 100 {
		t.Fatalf("seen %d", got)
	}
	if got := report(20, 200); got != 200 {
		t.Fatalf("a new progress report seen at %d, want 200", got)
	}
	if got := report(20, 300); got != 200 {
		t.Fatalf("a republished report seen at %d, want its first receipt 200", got)
	}
}
