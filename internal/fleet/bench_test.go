package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"

	"github.com/heraldiot/herald/internal/testenv"
	"github.com/heraldiot/herald/internal/testenv/load"
	"github.com/heraldiot/herald/mqtt"
	"github.com/heraldiot/herald/protocol"
)

const benchDevices = 100_000

// benchMessages returns the retained messages a fleet of n devices leaves
// on the broker: presence, inventory and a status each, with a realistic
// mix of models, versions and label sets.
func benchMessages(topics protocol.Topics, n int) []mqtt.Message {
	msgs := make([]mqtt.Message, 0, 3*n)
	for i := range n {
		id := fmt.Sprintf("dev-%06d", i)
		pres, _ := json.Marshal(protocol.Presence{V: 1, State: protocol.PresenceOnline})
		inv, _ := json.Marshal(protocol.Inventory{
			V: 1, DeviceID: id, Model: fmt.Sprintf("model-%d", i%4), HardwareRevision: "r2",
			FirmwareVersion: fmt.Sprintf("1.%d.0", i%7), Labels: map[string]string{"site": fmt.Sprintf("site-%d", i%20), "ring": "ga"},
		})
		st, _ := json.Marshal(protocol.Status{V: 1, RolloutUID: "uid-1", Rollout: "ns/r", TargetVersion: "2.0.0", State: protocol.StateSucceeded})
		msgs = append(msgs,
			mqtt.Message{Topic: topics.Presence(id), Payload: pres, Retain: true, QoS: 1},
			mqtt.Message{Topic: topics.Inventory(id), Payload: inv, Retain: true, QoS: 1},
			mqtt.Message{Topic: topics.Status(id), Payload: st, Retain: true, QoS: 1})
	}
	return msgs
}

// BenchmarkStateMemoryPerDevice measures the operator's memory per tracked
// device (target: at most 256 B) over a 100,000-device fleet.
func BenchmarkStateMemoryPerDevice(b *testing.B) {
	topics, _ := protocol.NewTopics("bench")
	msgs := benchMessages(topics, benchDevices)
	now := time.Now()
	var perDevice float64
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		s := NewState(Limits{})
		for i := range msgs {
			s.Apply(topics, msgs[i].Topic, msgs[i].Payload, now)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		perDevice = float64(after.HeapAlloc-before.HeapAlloc) / benchDevices
		runtime.KeepAlive(s)
	}
	b.ReportMetric(perDevice, "B/device")
}

// BenchmarkRebuild100k measures how long a new session (an operator after
// a restart) takes to rebuild a 100,000-device fleet from the retained
// messages on a real mosquitto (target: at most 5 s), from the start of
// the session to the end of the replay.
func BenchmarkRebuild100k(b *testing.B) {
	dir := b.TempDir()
	// A broker for a large fleet must not cap per-client queues (see
	// docs/operator.md): the replay is 300,000 messages at once.
	broker, err := testenv.NewBroker(dir, testenv.BrokerOptions{Config: []string{"max_queued_messages 0"}})
	if err != nil {
		b.Skip(err)
	}
	defer broker.Stop()
	topics, _ := protocol.NewTopics("bench")
	msgs := benchMessages(topics, benchDevices)
	publishAll(b, broker.URL(), msgs)

	var rebuild time.Duration
	for b.Loop() {
		start := time.Now()
		key := types.NamespacedName{Namespace: "bench", Name: fmt.Sprint(start.UnixNano())}
		s, err := newSession(key, Config{URLs: []string{broker.URL()}, Version: mqtt.V5, ClientID: key.Name, KeepAlive: 30 * time.Second, TopicRoot: "bench"},
			Hooks{}, logr.Discard(), func() {})
		if err != nil {
			b.Fatal(err)
		}
		s.start(time.Second)
		for {
			if ok, at := s.Synced(); ok {
				rebuild = at.Sub(start)
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if sum := s.Summarize(); sum.Known != benchDevices {
			b.Logf("client stats %+v", s.client.Stats())
			b.Logf("broker log: %s", broker.Log())
			b.Fatalf("rebuilt %d devices, want %d", sum.Known, benchDevices)
		}
		s.stop(false)
	}
	b.ReportMetric(rebuild.Seconds(), "rebuild-s")
}

// publishAll publishes msgs as a fleet's devices would have.
func publishAll(b *testing.B, url string, msgs []mqtt.Message) {
	b.Helper()
	if err := load.Publish(context.Background(), url, len(msgs), func(i int) mqtt.Message { return msgs[i] }); err != nil {
		b.Fatal(err)
	}
}
