package rollout

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/internal/fleet"
	"github.com/heraldiot/herald/protocol"
)

// millionDevices is the size of issue 16's fleet.
const millionDevices = 1_000_000

// millionFleet builds a fleet state of n devices the way a session builds
// it (presence, inventory with a label, and for a third a success on the
// rollout), and an Input for a rollout in its second wave over it. It
// returns the state's live heap in bytes.
func millionFleet(b *testing.B, n int, now time.Time) (*fleet.State, Input, float64) {
	b.Helper()
	topics, _ := protocol.NewTopics("root")
	before := liveHeap()
	state := fleet.NewState(fleet.Limits{MaxDevices: n})
	online := []byte(`{"v":1,"state":"online"}`)
	for i := range n {
		id := fmt.Sprintf("dev-%07d", i)
		state.Apply(topics, topics.Presence(id), online, now)
		inv := fmt.Sprintf(`{"v":1,"deviceId":%q,"model":"m","hardwareRevision":"r1","firmwareVersion":"1.0.0","labels":{"site":"hall-%d"}}`, id, i%8)
		state.Apply(topics, topics.Inventory(id), []byte(inv), now)
		if i%3 == 0 {
			st := fmt.Sprintf(`{"v":1,"rolloutUID":%q,"rollout":"ns/r","targetVersion":"2.0.0","state":"succeeded"}`, uid)
			state.Apply(topics, topics.Status(id), []byte(st), now)
		}
	}
	stateBytes := liveHeap() - before

	ro := testRolloutInWave2()
	notices := map[string]fleet.NoticeRef{}
	for c := range 50 {
		notices[topics.GroupNotice("m", c)] = fleet.NoticeRef{RolloutUID: uid, SeenAt: now}
	}
	in := Input{
		Rollout: ro, Devices: state.EachReport, Notices: notices, Topics: topics, Now: now,
		OfflineGrace: time.Minute, NoticeBudget: -1, DeviceBudget: -1, SizeHint: state.Len(),
	}
	return state, in, stateBytes
}

// liveHeap is the heap in use after a collection.
func liveHeap() float64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapAlloc)
}

// BenchmarkPlan1M plans a rollout from scratch over a fleet state of
// 1,000,000 devices: what the operator does once per rollout when it
// starts or the spec changes, and what every plan cost before the
// Tracker. It reports the state's live heap, one plan's time and
// allocation, and their sum.
func BenchmarkPlan1M(b *testing.B) {
	now := time.Now()
	state, in, stateBytes := millionFleet(b, millionDevices, now)
	var planBytes float64
	for b.Loop() {
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		out := Plan(in)
		runtime.ReadMemStats(&m1)
		planBytes = float64(m1.TotalAlloc - m0.TotalAlloc)
		if out.Status.Totals.Targeted != millionDevices {
			b.Fatalf("targeted %d", out.Status.Totals.Targeted)
		}
	}
	runtime.KeepAlive(state)
	b.ReportMetric(stateBytes/(1<<20), "state-MiB")
	b.ReportMetric(planBytes/(1<<20), "plan-alloc-MiB")
	b.ReportMetric((stateBytes+planBytes)/(1<<20), "state+plan-MiB")
}

// BenchmarkTracker1M is the operator's steady state at 1,000,000 devices:
// one device message applied to the fleet state, then one plan by the
// rollout's Tracker, per operation; ns/op is the work one message costs
// when every message is planned for (the controller plans at most once per
// event interval, so a burst shares one plan). It reports the tracker's
// live heap, the first plan's walk, the state and tracker together
// (manager-MiB: the fleet's share of the manager's memory, before the MQTT
// client's buffers and GC headroom), the cost per message of a burst that
// shares one plan, and checks that no plan walked the fleet again and that
// the counts follow the messages exactly.
func BenchmarkTracker1M(b *testing.B) {
	now := time.Now()
	state, in, stateBytes := millionFleet(b, millionDevices, now)
	before := liveHeap()
	var tr Tracker
	walkStart := time.Now()
	first := tr.Plan(in, state)
	walk := time.Since(walkStart)
	trackerBytes := liveHeap() - before
	succeeded := first.Status.Totals.Succeeded

	// Devices not yet on the rollout accept, then succeed: two messages
	// each, every one changing the counts.
	accepted := []byte(fmt.Sprintf(`{"v":1,"rolloutUID":%q,"rollout":"ns/r","targetVersion":"2.0.0","state":"accepted"}`, uid))
	done := []byte(fmt.Sprintf(`{"v":1,"rolloutUID":%q,"rollout":"ns/r","targetVersion":"2.0.0","state":"succeeded"}`, uid))
	ids := make([]string, 0, 1<<16)
	for i := 1; len(ids) < cap(ids); i++ {
		if i%3 != 0 && protocol.Cohort(fmt.Sprintf("dev-%07d", i)) < 50 {
			ids = append(ids, fmt.Sprintf("dev-%07d", i))
		}
	}
	topics := in.Topics
	n := 0
	var out Output
	for b.Loop() {
		id := ids[(n/2)%len(ids)]
		payload := accepted
		if n%2 == 1 {
			payload = done
		}
		n++
		state.Apply(topics, topics.Status(id), payload, now)
		out = tr.Plan(in, state)
	}
	if tr.walks != 1 {
		b.Fatalf("the tracker walked the fleet %d times", tr.walks)
	}
	if want := succeeded + int32(min(n/2, len(ids))); n <= 2*len(ids) && out.Status.Totals.Succeeded != want {
		b.Fatalf("succeeded %d after %d messages, want %d", out.Status.Totals.Succeeded, n, want)
	}
	// A burst shares one plan, as the controller plans at most once per
	// event interval: the cost per message of 10,000 then one plan.
	const burst = 10_000
	b.StopTimer()
	burstStart := time.Now()
	for i := range burst {
		id := ids[(n/2+i)%len(ids)]
		state.Apply(topics, topics.Status(id), accepted, now)
	}
	tr.Plan(in, state)
	perMessage := time.Since(burstStart) / burst
	if tr.walks != 1 {
		b.Fatalf("the tracker walked the fleet %d times", tr.walks)
	}
	runtime.KeepAlive(state)
	b.ReportMetric(float64(perMessage.Nanoseconds()), "burst-ns/message")
	b.ReportMetric(walk.Seconds(), "first-plan-s")
	b.ReportMetric(trackerBytes/(1<<20), "tracker-MiB")
	b.ReportMetric((stateBytes+trackerBytes)/(1<<20), "manager-MiB")
}

// BenchmarkTrackerPerDevice1M: a rollout with per-device notices (here a
// label selector; Snapshot targeting is the same) over 1,000,000 online
// devices, all notified, each by its own retained notice. Per op, one
// device report and one plan; it reports the live heap of the fleet state
// and of the tracker, and a plan from scratch beside it (scratch-ms).
func BenchmarkTrackerPerDevice1M(b *testing.B) {
	const n = millionDevices
	now := time.Now()
	before := liveHeap()
	topics, _ := protocol.NewTopics("root")
	state := fleet.NewState(fleet.Limits{MaxDevices: n})
	online := []byte(`{"v":1,"state":"online"}`)
	notice := []byte(fmt.Sprintf(`{"v":1,"action":"update","rollout":{"namespace":"ns","name":"r","uid":%q},"targetVersion":"2.0.0","models":["m"],"artifacts":[{"url":"https://example.com/fw.bin"}],"sha256":"%s","size":1,"issuedAt":"2026-11-22T12:00:00Z"}`, uid, sha))
	for i := range n {
		id := fmt.Sprintf("dev-%07d", i)
		state.Apply(topics, topics.Presence(id), online, now)
		inv := fmt.Sprintf(`{"v":1,"deviceId":%q,"model":"m","hardwareRevision":"r1","firmwareVersion":"1.0.0","labels":{"site":"a"}}`, id)
		state.Apply(topics, topics.Inventory(id), []byte(inv), now)
		if res := state.Apply(topics, topics.DeviceNotice(id), notice, now); res.Err != nil {
			b.Fatal(res.Err)
		}
	}
	ro := testRollout(percent(100))
	ro.Spec.Selector = &v1.DeviceSelector{Labels: &metav1.LabelSelector{MatchLabels: map[string]string{"site": "a"}}}
	start := metav1.NewTime(now)
	ro.Status.Waves = []v1.WaveStatus{{StartTime: &start}}
	in := Input{Rollout: ro, Devices: state.EachReport, Topics: topics, Now: now,
		OfflineGrace: time.Minute, NoticeBudget: -1, DeviceBudget: -1, SizeHint: n}
	stateBytes := liveHeap() - before
	var tr Tracker
	first := time.Now()
	tr.Plan(in, state)
	b.ReportMetric(time.Since(first).Seconds(), "first-plan-s")
	trackerBytes := liveHeap() - before - stateBytes
	accepted := []byte(fmt.Sprintf(`{"v":1,"rolloutUID":%q,"rollout":"ns/r","targetVersion":"2.0.0","state":"accepted"}`, uid))
	i := 0
	for b.Loop() {
		state.Apply(topics, topics.Status(fmt.Sprintf("dev-%07d", i%n)), accepted, now)
		i++
		tr.Plan(in, state)
	}
	b.StopTimer()
	if tr.walks != 1 {
		b.Fatalf("the tracker walked the fleet %d times", tr.walks)
	}
	in.Notices = state.Notices()
	scratch := time.Now()
	Plan(in)
	b.ReportMetric(float64(time.Since(scratch).Milliseconds()), "scratch-ms")
	b.ReportMetric(stateBytes/(1<<20), "state-MiB")
	b.ReportMetric(trackerBytes/(1<<20), "tracker-MiB")
	runtime.KeepAlive(state)
}
