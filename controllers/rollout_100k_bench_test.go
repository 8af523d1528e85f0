package controllers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/internal/testenv"
	"github.com/heraldiot/herald/mqtt"
	"github.com/heraldiot/herald/protocol"
)

// muxFleet simulates many devices over a few MQTT connections: when a group
// notice arrives it answers for every device of the group (accepted,
// succeeded, new inventory), as the devices would.
type muxFleet struct {
	topics  protocol.Topics
	clients []*mqtt.Client
	groups  map[string][]string // group notice topic → device IDs
	model   string
	sent    atomic.Int64
	wg      sync.WaitGroup
	seen    sync.Map
}

func (f *muxFleet) messagesFor(id, uid, version string) []mqtt.Message {
	st := func(s protocol.State) mqtt.Message {
		p, _ := json.Marshal(protocol.Status{V: 1, RolloutUID: uid, Rollout: "ns/r", TargetVersion: version, State: s})
		return mqtt.Message{Topic: f.topics.Status(id), Payload: p, Retain: true, QoS: 1}
	}
	inv, _ := json.Marshal(protocol.Inventory{V: 1, DeviceID: id, Model: f.model, HardwareRevision: "r1", FirmwareVersion: version})
	return []mqtt.Message{st(protocol.StateAccepted), st(protocol.StateSucceeded),
		{Topic: f.topics.Inventory(id), Payload: inv, Retain: true, QoS: 1}}
}

// publish sends each device's messages in order, as the device would,
// and different devices' messages pipelined over the fleet's connections.
func (f *muxFleet) publish(ctx context.Context, devices [][]mqtt.Message) error {
	const perConn = 32
	var wg sync.WaitGroup
	errs := make(chan error, len(f.clients)*perConn)
	workers := len(f.clients) * perConn
	for w := range workers {
		c := f.clients[w%len(f.clients)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(devices); i += workers {
				for j := range devices[i] {
					if err := c.Publish(ctx, &devices[i][j]); err != nil {
						errs <- err
						return
					}
					f.sent.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// announce publishes the retained presence and inventory of n devices,
// dev-000000 on, and records each in its group when f tracks groups.
func (f *muxFleet) announce(ctx context.Context, n int) error {
	pres, _ := json.Marshal(protocol.Presence{V: 1, State: protocol.PresenceOnline})
	var msgs [][]mqtt.Message
	for i := range n {
		id := fmt.Sprintf("dev-%06d", i)
		if f.groups != nil {
			g := f.topics.GroupNotice(f.model, protocol.Cohort(id))
			f.groups[g] = append(f.groups[g], id)
		}
		inv, _ := json.Marshal(protocol.Inventory{V: 1, DeviceID: id, Model: f.model, HardwareRevision: "r1", FirmwareVersion: "1.0.0"})
		msgs = append(msgs, []mqtt.Message{
			{Topic: f.topics.Presence(id), Payload: pres, Retain: true, QoS: 1},
			{Topic: f.topics.Inventory(id), Payload: inv, Retain: true, QoS: 1}})
	}
	return f.publish(ctx, msgs)
}

func (f *muxFleet) onNotice(m *mqtt.Message) {
	if len(m.Payload) == 0 {
		return
	}
	n, err := protocol.ParseNotice(m.Payload)
	if err != nil || n.Action != protocol.ActionUpdate {
		return
	}
	if _, dup := f.seen.LoadOrStore(m.Topic, true); dup {
		return
	}
	var msgs [][]mqtt.Message
	for _, id := range f.groups[m.Topic] {
		msgs = append(msgs, f.messagesFor(id, n.Rollout.UID, n.TargetVersion))
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		_ = f.publish(context.Background(), msgs)
	}()
}

// BenchmarkRollout100k runs a three-wave rollout over 100,000 devices
// (multiplexed over 4 connections) and reports its wall time next to the
// time the same device messages take through the broker: on their own
// (publish-only), and delivered to one subscriber that only counts them
// (broker-bound: what the broker must do for any operator, which has to
// receive every device message).
func BenchmarkRollout100k(b *testing.B) {
	const n = 100_000
	dir := b.TempDir()
	big, err := testenv.NewBroker(dir, testenv.BrokerOptions{Config: []string{"max_queued_messages 0"}})
	if err != nil {
		b.Skip(err)
	}
	defer big.Stop()
	ns := newNamespace(b)
	root := "bench100k/" + ns
	topics, _ := protocol.NewTopics(root)
	ctx := context.Background()
	f := &muxFleet{topics: topics, groups: map[string][]string{}, model: "sensor"}
	for c := range 4 {
		cl, err := mqtt.Dial(ctx, mqtt.Options{Servers: []string{big.URL()}, ClientID: fmt.Sprintf("mux-%d", c), DefaultHandler: f.onNotice})
		if err != nil {
			b.Fatal(err)
		}
		defer cl.Disconnect(ctx)
		f.clients = append(f.clients, cl)
	}
	if err := f.announce(ctx, n); err != nil {
		b.Fatal(err)
	}

	// The broker-bound reference: the rollout's device messages alone.
	// They go under another root, which the operator does not watch.
	refTopics, _ := protocol.NewTopics(root + "-ref")
	refFleet := &muxFleet{topics: refTopics, model: "sensor"}
	var ref [][]mqtt.Message
	for i := range n {
		ref = append(ref, refFleet.messagesFor(fmt.Sprintf("dev-%06d", i), "ref", "2.0.0"))
	}
	refStart := time.Now()
	if err := f.publish(ctx, ref); err != nil {
		b.Fatal(err)
	}
	publishOnly := time.Since(refStart)

	// The same messages again, now delivered to one QoS 1 subscriber that
	// only counts them: the broker's share of any operator, which must
	// receive every device message. This is the broker-bound time.
	var got atomic.Int64
	all := make(chan struct{})
	want := int64(3 * n)
	sink, err := mqtt.Dial(ctx, mqtt.Options{Servers: []string{big.URL()}, ClientID: "null-operator", CleanStart: true})
	if err != nil {
		b.Fatal(err)
	}
	defer sink.Disconnect(ctx)
	err = sink.Subscribe(ctx, func(*mqtt.Message) {
		if got.Add(1) == want {
			close(all)
		}
	}, mqtt.Subscription{Filter: root + "-sub/#", QoS: 1})
	if err != nil {
		b.Fatal(err)
	}
	subTopics, _ := protocol.NewTopics(root + "-sub")
	subFleet := &muxFleet{topics: subTopics, model: "sensor"}
	var sub [][]mqtt.Message
	for i := range n {
		sub = append(sub, subFleet.messagesFor(fmt.Sprintf("dev-%06d", i), "ref", "2.0.0"))
	}
	subStart := time.Now()
	if err := f.publish(ctx, sub); err != nil {
		b.Fatal(err)
	}
	select {
	case <-all:
	case <-time.After(5 * time.Minute):
		b.Fatalf("the counting subscriber got %d of %d messages", got.Load(), want)
	}
	brokerBound := time.Since(subStart)
	_ = sink.Disconnect(ctx)

	// The operator connects to this broker.
	startManager(b)
	fl := &v1.DeviceFleet{}
	fl.Name, fl.Namespace = "fleet", ns
	fl.Spec.Broker.URLs = []string{big.URL()}
	fl.Spec.TopicRoot = root
	if err := k8s.Create(ctx, fl); err != nil {
		b.Fatal(err)
	}
	for _, c := range f.clients {
		if err := c.Subscribe(ctx, nil, mqtt.Subscription{Filter: root + "/notices/#", QoS: 1}); err != nil {
			b.Fatal(err)
		}
	}
	// The fleet's rebuild from the retained replay is BenchmarkRebuild100k;
	// the rollout starts on a synced fleet, as rollouts of a running
	// operator do.
	eventually(b, 2*time.Minute, "the fleet synced", func() (bool, string) {
		var got v1.DeviceFleet
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(fl), &got); err != nil {
			return false, err.Error()
		}
		c := apimeta.FindStatusCondition(got.Status.Conditions, v1.ConditionReady)
		return c != nil && c.Reason == v1.ReasonSynced && c.Status == metav1.ConditionTrue, fmt.Sprintf("%+v", c)
	})
	b.ResetTimer()
	start := time.Now()
	if err := k8s.Create(ctx, rollout(ns, "r", "fleet", pct(10), pct(50), pct(100))); err != nil {
		b.Fatal(err)
	}
	waitPhase(b, ns, "r", v1.PhaseSucceeded, 10*time.Minute)
	wall := time.Since(start)
	b.StopTimer()
	f.wg.Wait()
	ro := getRollout(b, ns, "r")
	if ro.Status.Totals.Succeeded != n {
		b.Fatalf("totals %+v", ro.Status.Totals)
	}
	b.ReportMetric(wall.Seconds(), "rollout-s")
	b.ReportMetric(publishOnly.Seconds(), "publish-only-s")
	b.ReportMetric(brokerBound.Seconds(), "broker-bound-s")
	b.ReportMetric(wall.Seconds()/publishOnly.Seconds(), "ratio-publish-only")
	b.ReportMetric(wall.Seconds()/brokerBound.Seconds(), "ratio")
}
