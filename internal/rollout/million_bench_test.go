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

// BenchmarkPlan1M plans a rollout over a fleet state of 1,000,000 devices
// (presence, inventory, and a status on the rollout for a third of them),
// built the way a session builds it, and reports the state's live heap,
// one plan's time and allocation, and their sum: the manager's memory at
// 1M devices, short of the MQTT client's buffers (issue 16: < 512 MiB).
func BenchmarkPlan1M(b *testing.B) {
	const n = 1_000_000
	topics, _ := protocol.NewTopics("root")
	now := time.Now()
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
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
	runtime.GC()
	var built runtime.MemStats
	runtime.ReadMemStats(&built)
	stateBytes := float64(built.HeapAlloc - before.HeapAlloc)

	ro := testRollout(percent(10), percent(50), percent(100))
	notices := map[string]fleet.NoticeRef{}
	for c := range 50 {
		notices[topics.GroupNotice("m", c)] = fleet.NoticeRef{RolloutUID: uid, SeenAt: now}
	}
	start := metav1.NewTime(now)
	ro.Status.Waves = []v1.WaveStatus{{StartTime: &start, CompletionTime: &start}, {StartTime: &start}, {}}
	in := Input{
		Rollout: ro, Devices: state.EachReport, Notices: notices, Topics: topics, Now: now,
		OfflineGrace: time.Minute, NoticeBudget: -1, DeviceBudget: -1, SizeHint: state.Len(),
	}
	var planBytes float64
	for b.Loop() {
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		out := Plan(in)
		runtime.ReadMemStats(&m1)
		planBytes = float64(m1.TotalAlloc - m0.TotalAlloc)
		if out.Status.Totals.Targeted != n {
			b.Fatalf("targeted %d", out.Status.Totals.Targeted)
		}
	}
	runtime.KeepAlive(state)
	b.ReportMetric(stateBytes/(1<<20), "state-MiB")
	b.ReportMetric(planBytes/(1<<20), "plan-alloc-MiB")
	b.ReportMetric((stateBytes+planBytes)/(1<<20), "state+plan-MiB")
}
