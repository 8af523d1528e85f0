package mqtt_test

import (
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/heraldiot/herald/internal/testenv"
	"github.com/heraldiot/herald/mqtt"
	"github.com/heraldiot/herald/mqtt/packet"
)

// TestSharedSubscriptionSplitsMessages has two consumers in one share
// group: each message goes to exactly one of them, and between them they
// get everything. The group's filter has a wildcard, so the client must
// route by the filter inside $share/{group}/ (under 3.1.1, with no
// subscription identifiers, by nothing else).
func TestSharedSubscriptionSplitsMessages(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	for _, v := range versions {
		t.Run("v"+v.String(), func(t *testing.T) {
			ctx := testContext(t)
			const total = 200
			topic := func(i int) string { return fmt.Sprintf("jobs-v%s/line%d", v, i%4) }
			filter := fmt.Sprintf("$share/workers/jobs-v%s/+", v)

			// Worker -1 is the default handler, for what no
			// subscription's handler was routed.
			type delivery struct {
				worker int
				msg    *mqtt.Message
			}
			deliveries := make(chan delivery, 2*total)
			for w := range 2 {
				c := dial(t, b, mqtt.Options{Version: v, ClientID: fmt.Sprintf("worker-%d", w),
					DefaultHandler: func(m *mqtt.Message) { deliveries <- delivery{-1, m} }})
				handler := func(m *mqtt.Message) { deliveries <- delivery{w, m} }
				if err := c.Subscribe(ctx, handler, mqtt.Subscription{Filter: filter, QoS: mqtt.AtLeastOnce}); err != nil {
					t.Fatal(err)
				}
			}
			pub := dial(t, b, mqtt.Options{Version: v, ClientID: "dispatcher"})
			for i := range total {
				if err := pub.Publish(ctx, &mqtt.Message{Topic: topic(i), QoS: mqtt.AtLeastOnce, Payload: strconv.AppendInt(nil, int64(i), 10)}); err != nil {
					t.Fatal(err)
				}
			}

			owner := make(map[int]int) // message → the worker that got it
			var counts [2]int
			check := func(d delivery) {
				t.Helper()
				if d.worker < 0 {
					t.Fatalf("message on %q reached no handler: the shared subscription was not routed", d.msg.Topic)
				}
				i, err := strconv.Atoi(string(d.msg.Payload))
				if err != nil || d.msg.Topic != topic(i) {
					t.Fatalf("worker %d: message %q on %q", d.worker, d.msg.Payload, d.msg.Topic)
				}
				if prev, dup := owner[i]; dup {
					t.Fatalf("message %d delivered to worker %d and again to worker %d", i, prev, d.worker)
				}
				owner[i] = d.worker
				counts[d.worker]++
			}
			deadline := time.After(10 * time.Second)
			for len(owner) < total {
				select {
				case d := <-deliveries:
					check(d)
				case <-deadline:
					t.Fatalf("%d of %d messages after 10s", len(owner), total)
				}
			}
			// Everything arrived; what remains to check is that nothing
			// more does, which no event can signal.
			select {
			case d := <-deliveries:
				check(d)
			case <-time.After(200 * time.Millisecond):
			}
			// mosquitto hands a group's messages out in turn.
			for w, n := range counts {
				if n < total/4 {
					t.Fatalf("worker %d got %d of %d messages: the group did not share them out (%v)", w, n, total, counts)
				}
			}
			t.Logf("split %v", counts)
		})
	}
}

// TestSharedSubscriptionIdentifiersTwoConsumers gives two consumers
// overlapping subscriptions, plain and shared, each with its own
// subscription identifier. A message names only identifiers of the
// receiving session's subscriptions that match it, and each handler gets
// exactly the messages that name its subscription: a plain subscription
// every message its filter matches, once; a shared one its consumer's part
// of the group's messages.
func TestSharedSubscriptionIdentifiersTwoConsumers(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	ctx := testContext(t)

	type subscription struct {
		consumer string
		id       uint32
		filter   string
	}
	subs := []subscription{
		{"a", 1, "plant/#"},
		{"a", 5, "$share/alarms/plant/+/alarm"},
		{"b", 2, "plant/+/temp"},
		{"b", 3, "plant/line1/#"},
		{"b", 6, "$share/alarms/plant/+/alarm"},
	}
	type delivery struct {
		sub subscription
		msg *mqtt.Message
	}
	deliveries := make(chan delivery, 1000)
	unrouted := newCollector()
	clients := map[string]*mqtt.Client{}
	for _, s := range subs {
		c := clients[s.consumer]
		if c == nil {
			c = dial(t, b, mqtt.Options{ClientID: "consumer-" + s.consumer, DefaultHandler: unrouted.handle})
			clients[s.consumer] = c
		}
		handler := func(m *mqtt.Message) { deliveries <- delivery{s, m} }
		if _, err := c.SubscribeWith(ctx, mqtt.SubscribeRequest{ID: s.id, Handler: handler,
			Subscriptions: []mqtt.Subscription{{Filter: s.filter, QoS: mqtt.AtLeastOnce}}}); err != nil {
			t.Fatal(err)
		}
	}

	var topics []string
	for _, line := range []string{"line1", "line2"} {
		for _, kind := range []string{"temp", "pressure"} {
			topics = append(topics, "plant/"+line+"/"+kind)
		}
	}
	for i := range 40 {
		topics = append(topics, fmt.Sprintf("plant/line%d/alarm", 1+i%3))
	}
	pub := dial(t, b, mqtt.Options{ClientID: "plant"})
	for i, topic := range topics {
		if err := pub.Publish(ctx, &mqtt.Message{Topic: topic, QoS: mqtt.AtLeastOnce, Payload: strconv.AppendInt(nil, int64(i), 10)}); err != nil {
			t.Fatal(err)
		}
	}

	// What each subscription must get; a shared one is keyed by its group
	// filter and must get, across its members, each message once.
	want := map[string][]int{}
	key := func(s subscription) string {
		if _, _, shared := packet.SplitShared([]byte(s.filter)); shared {
			return s.filter
		}
		return fmt.Sprintf("%s/%d", s.consumer, s.id)
	}
	expected := 0
	for _, s := range subs {
		k := key(s)
		if _, done := want[k]; done {
			continue
		}
		want[k] = []int{}
		for i, topic := range topics {
			if packet.MatchTopic(s.filter, topic) {
				want[k] = append(want[k], i)
				expected++
			}
		}
	}

	got := map[string][]int{}
	deadline := time.After(10 * time.Second)
	for n := 0; n < expected; n++ {
		var d delivery
		select {
		case d = <-deliveries:
		case m := <-unrouted.ch:
			t.Fatalf("message on %q with identifiers %v reached no handler", m.Topic, m.SubscriptionIDs)
		case <-deadline:
			t.Fatalf("%d of %d deliveries after 10s", n, expected)
		}
		s, m := d.sub, d.msg
		i, err := strconv.Atoi(string(m.Payload))
		if err != nil || i >= len(topics) || m.Topic != topics[i] {
			t.Fatalf("subscription %d: message %q on %q", s.id, m.Payload, m.Topic)
		}
		if !slices.Contains(m.SubscriptionIDs, s.id) {
			t.Fatalf("handler of subscription %d got %q naming identifiers %v", s.id, m.Topic, m.SubscriptionIDs)
		}
		for _, id := range m.SubscriptionIDs {
			if !slices.ContainsFunc(subs, func(o subscription) bool {
				return o.consumer == s.consumer && o.id == id && packet.MatchTopic(o.filter, m.Topic)
			}) {
				t.Fatalf("consumer %s got %q naming identifier %d, not one of its subscriptions matching it", s.consumer, m.Topic, id)
			}
		}
		k := key(s)
		if slices.Contains(got[k], i) {
			t.Fatalf("%s: message %d (%q) delivered twice", k, i, m.Topic)
		}
		got[k] = append(got[k], i)
	}
	for k, w := range want {
		slices.Sort(got[k])
		if !slices.Equal(got[k], w) {
			t.Fatalf("%s got messages %v, want %v", k, got[k], w)
		}
	}
	// Everything expected arrived; what remains to check is that nothing
	// more does, which no event can signal.
	select {
	case d := <-deliveries:
		t.Fatalf("unexpected delivery to subscription %d: %q with identifiers %v", d.sub.id, d.msg.Topic, d.msg.SubscriptionIDs)
	case m := <-unrouted.ch:
		t.Fatalf("message on %q with identifiers %v reached no handler", m.Topic, m.SubscriptionIDs)
	case <-time.After(200 * time.Millisecond):
	}
}

// TestSharedSubscriptionBesidePlainWithIdentifier has two workers that
// each monitor every job through a subscription with an identifier and
// take their share of the work through a shared subscription without one.
// mosquitto sends a copy per matching subscription, and only the copy for
// the monitoring subscription names its identifier [MQTT-3.3.4-3], so the
// monitor must get each job exactly once.
func TestSharedSubscriptionBesidePlainWithIdentifier(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	ctx := testContext(t)
	const total = 20
	type delivery struct {
		worker  int
		monitor bool
		msg     *mqtt.Message
	}
	deliveries := make(chan delivery, 4*total)
	for w := range 2 {
		c := dial(t, b, mqtt.Options{ClientID: fmt.Sprintf("worker-%d", w)})
		monitor := func(m *mqtt.Message) { deliveries <- delivery{w, true, m} }
		if _, err := c.SubscribeWith(ctx, mqtt.SubscribeRequest{ID: 1, Handler: monitor,
			Subscriptions: []mqtt.Subscription{{Filter: "jobs/#", QoS: mqtt.AtLeastOnce}}}); err != nil {
			t.Fatal(err)
		}
		work := func(m *mqtt.Message) { deliveries <- delivery{w, false, m} }
		if err := c.Subscribe(ctx, work, mqtt.Subscription{Filter: "$share/workers/jobs/+", QoS: mqtt.AtLeastOnce}); err != nil {
			t.Fatal(err)
		}
	}
	pub := dial(t, b, mqtt.Options{ClientID: "dispatcher"})
	for i := range total {
		if err := pub.Publish(ctx, &mqtt.Message{Topic: fmt.Sprintf("jobs/%d", i), QoS: mqtt.AtLeastOnce}); err != nil {
			t.Fatal(err)
		}
	}

	// Each job reaches each monitor once and one worker; wait for as many
	// deliveries, then for any more.
	var monitored [2]map[string]int
	var unnamed, worked [2]int // monitor copies not naming [1]; work deliveries
	for w := range monitored {
		monitored[w] = make(map[string]int)
	}
	collect := func(d delivery) {
		if !d.monitor {
			worked[d.worker]++
			return
		}
		monitored[d.worker][d.msg.Topic]++
		if !slices.Equal(d.msg.SubscriptionIDs, []uint32{1}) {
			unnamed[d.worker]++
		}
	}
	deadline := time.After(10 * time.Second)
	for n := 0; n < 3*total; n++ {
		select {
		case d := <-deliveries:
			collect(d)
		case <-deadline:
			t.Fatalf("%d of %d deliveries after 10s", n, 3*total)
		}
	}
	// What remains to check is that nothing more arrives, which no event
	// can signal.
	for quiet := false; !quiet; {
		select {
		case d := <-deliveries:
			collect(d)
		case <-time.After(200 * time.Millisecond):
			quiet = true
		}
	}
	for w := range monitored {
		var copies int
		for _, n := range monitored[w] {
			copies += n
		}
		t.Logf("worker %d: monitor handler %d deliveries, work handler %d", w, copies, worked[w])
		if len(monitored[w]) != total || copies != total || unnamed[w] > 0 {
			t.Errorf("worker %d: the monitor got %d deliveries of %d jobs, %d of them not naming its identifier; want each of the %d jobs once, naming [1]",
				w, copies, len(monitored[w]), unnamed[w], total)
		}
	}
}
