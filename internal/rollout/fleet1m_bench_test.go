package rollout

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/internal/fleet"
	"github.com/heraldiot/herald/internal/testenv"
	"github.com/heraldiot/herald/internal/testenv/load"
	"github.com/heraldiot/herald/mqtt"
	"github.com/heraldiot/herald/protocol"
)

// BenchmarkFleet1M is issue 16's fleet end to end on a real mosquitto,
// without the apiserver: 1,000,000 devices' retained presence, inventory
// and, for a third, a success on the rollout (3,000,000-odd messages,
// published over four pipelined connections, a memory-lean simulated
// fleet), then
//
//   - a new session's rebuild from the retained replay (rebuild-s; issue
//     16's target is 30 s), as an operator's after a restart, beside the
//     same replay to a client that only counts it (replay-only-s: the
//     broker's share, which no operator can beat);
//   - the manager's live heap for the fleet: the session (state, MQTT
//     client) plus one rollout's Tracker (manager-MiB; target < 512 MiB
//     with GC headroom, which --memory-limit-ratio leaves);
//   - 20,480 device reports through the broker (10,240 devices accept,
//     then succeed), planned as the controller plans: once per fleet
//     change event. It reports the reports' rate end to end, how many
//     plans that took, and the mean plan's time: what planning costs per
//     report, now that a plan reads what changed.
//
// It takes about three minutes and 2 GiB (most of it mosquitto's).
func BenchmarkFleet1M(b *testing.B) {
	broker, err := testenv.NewBroker(b.TempDir(), testenv.BrokerOptions{Config: []string{"max_queued_messages 0"}})
	if err != nil {
		b.Skip(err)
	}
	defer broker.Stop()
	const n = millionDevices
	topics, _ := protocol.NewTopics("m1")
	id := func(i int) string { return fmt.Sprintf("dev-%07d", i) }
	online := []byte(`{"v":1,"state":"online"}`)
	succeeded := []byte(fmt.Sprintf(`{"v":1,"rolloutUID":%q,"rollout":"ns/r","targetVersion":"2.0.0","state":"succeeded"}`, uid))
	accepted := []byte(fmt.Sprintf(`{"v":1,"rolloutUID":%q,"rollout":"ns/r","targetVersion":"2.0.0","state":"accepted"}`, uid))
	ctx := context.Background()
	err = load.Publish(ctx, broker.URL(), 3*n, func(i int) mqtt.Message {
		d := id(i / 3)
		switch i % 3 {
		case 0:
			return mqtt.Message{Topic: topics.Presence(d), Payload: online, Retain: true, QoS: 1}
		case 1:
			inv := fmt.Sprintf(`{"v":1,"deviceId":%q,"model":"m","hardwareRevision":"r1","firmwareVersion":"1.0.0","labels":{"site":"hall-%d"}}`, d, i%8)
			return mqtt.Message{Topic: topics.Inventory(d), Payload: []byte(inv), Retain: true, QoS: 1}
		}
		if i/3%3 == 0 {
			return mqtt.Message{Topic: topics.Status(d), Payload: succeeded, Retain: true, QoS: 1}
		}
		// Not on the rollout yet: a presence again, which changes nothing.
		return mqtt.Message{Topic: topics.Presence(d), Payload: online, Retain: true, QoS: 1}
	})
	if err != nil {
		b.Fatal(err)
	}
	// The rollout's group notices, for the cohorts of its started waves.
	ro := testRolloutInWave2()
	notice := []byte(fmt.Sprintf(`{"v":1,"action":"update","rollout":{"namespace":"ns","name":"r","uid":%q},"targetVersion":"2.0.0","models":["m"],"artifacts":[{"url":"https://example.com/fw.bin"}],"sha256":"%s","size":1,"issuedAt":"2026-11-22T12:00:00Z"}`, uid, sha))
	err = load.Publish(ctx, broker.URL(), 50, func(c int) mqtt.Message {
		return mqtt.Message{Topic: topics.GroupNotice("m", c), Payload: notice, Retain: true, QoS: 1}
	})
	if err != nil {
		b.Fatal(err)
	}

	// The broker's share of a rebuild: the same retained replay to a
	// subscriber that only counts it. Presence and inventory for every
	// device, a status for a third, and the notices.
	replay := replayAlone(b, broker.URL(), "m1/#", 2*n+(n+2)/3+50)

	for b.Loop() {
		mctx, stop := context.WithCancel(ctx)
		m := fleet.NewManager(logr.Discard(), time.Second, fleet.Hooks{})
		done := make(chan error, 1)
		go func() { done <- m.Start(mctx) }()
		before := liveHeap()
		start := time.Now()
		key := types.NamespacedName{Namespace: "bench", Name: fmt.Sprint(start.UnixNano())}
		s, err := m.Ensure(key, fleet.Config{URLs: []string{broker.URL()}, Version: mqtt.V5, ClientID: key.Name,
			KeepAlive: 30 * time.Second, TopicRoot: "m1", MaxDevices: n})
		if err != nil {
			b.Fatal(err)
		}
		var synced time.Time
		for ok := false; !ok; ok, synced = s.Synced() {
			<-m.FleetEvents
		}
		rebuild := synced.Sub(start)
		sessionBytes := liveHeap() - before

		state := s.State()
		in := func() Input {
			return Input{Rollout: ro, Devices: state.EachReport, Notices: state.Notices(), Topics: topics, Now: time.Now(),
				OfflineGrace: time.Minute, NoticeBudget: -1, DeviceBudget: -1, SizeHint: state.Len()}
		}
		var tr Tracker
		first := tr.Plan(in(), state)
		if first.Status.Totals.Targeted != n {
			b.Fatalf("targeted %d after the rebuild, want %d", first.Status.Totals.Targeted, n)
		}
		trackerBytes := liveHeap() - before - sessionBytes

		// Devices in the first cohorts that had not reported accept,
		// then succeed. load.Publish spreads messages over 256 publishers by
		// index, each publishing in order: with 40×256 devices, a
		// device's two reports go through one publisher, accepted first.
		var movers []string
		for i := 0; len(movers) < 40*256; i++ {
			if d := id(i); i%3 != 0 && protocol.Cohort(d) < 50 {
				movers = append(movers, d)
			}
		}
		for len(m.RolloutEvents) > 0 {
			<-m.RolloutEvents
		}
		sent := time.Now()
		go func() {
			err := load.Publish(ctx, broker.URL(), 2*len(movers), func(i int) mqtt.Message {
				p := accepted
				if i >= len(movers) {
					p = succeeded
				}
				return mqtt.Message{Topic: topics.Status(movers[i%len(movers)]), Payload: p, Retain: true, QoS: 1}
			})
			if err != nil {
				b.Error(err)
			}
		}()
		want := first.Status.Totals.Succeeded + int32(len(movers))
		plans, planning := 0, time.Duration(0)
		for got := first.Status.Totals.Succeeded; got != want; {
			<-m.RolloutEvents
			t0 := time.Now()
			out := tr.Plan(in(), state)
			planning += time.Since(t0)
			plans++
			got = out.Status.Totals.Succeeded
		}
		elapsed := time.Since(sent)
		if tr.walks != 1 {
			b.Fatalf("the tracker walked the fleet %d times", tr.walks)
		}
		stop()
		<-done

		b.ReportMetric(rebuild.Seconds(), "rebuild-s")
		b.ReportMetric(replay.Seconds(), "replay-only-s")
		b.ReportMetric(rebuild.Seconds()/replay.Seconds(), "rebuild/replay")
		b.ReportMetric(sessionBytes/(1<<20), "session-MiB")
		b.ReportMetric(trackerBytes/(1<<20), "tracker-MiB")
		b.ReportMetric((sessionBytes+trackerBytes)/(1<<20), "manager-MiB")
		b.ReportMetric(float64(2*len(movers))/elapsed.Seconds(), "reports/s")
		b.ReportMetric(float64(plans), "plans")
		b.ReportMetric(planning.Seconds()*1000/float64(plans), "plan-ms")
	}
}

// testRolloutInWave2 is a three-wave rollout whose second wave is under
// way: 50 cohorts have their group notices.
func testRolloutInWave2() *v1.FirmwareRollout {
	ro := testRollout(percent(10), percent(50), percent(100))
	start := metav1.NewTime(time.Now())
	ro.Status.Waves = []v1.WaveStatus{{StartTime: &start, CompletionTime: &start}, {StartTime: &start}, {}}
	return ro
}

// replayAlone subscribes to filter on a new clean session and returns how
// long the broker takes to deliver the want retained messages it holds to
// a client that only counts them.
func replayAlone(b *testing.B, url, filter string, want int64) time.Duration {
	b.Helper()
	ctx := context.Background()
	var got atomic.Int64
	all := make(chan struct{})
	c, err := mqtt.Dial(ctx, mqtt.Options{Servers: []string{url}, ClientID: "counting-replay", CleanStart: true})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Disconnect(ctx)
	start := time.Now()
	err = c.Subscribe(ctx, func(*mqtt.Message) {
		if got.Add(1) == want {
			close(all)
		}
	}, mqtt.Subscription{Filter: filter, QoS: 1})
	if err != nil {
		b.Fatal(err)
	}
	select {
	case <-all:
	case <-time.After(5 * time.Minute):
		b.Fatalf("the counting subscriber got %d of %d retained messages", got.Load(), want)
	}
	return time.Since(start)
}
