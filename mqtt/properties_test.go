package mqtt_test

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/heraldiot/herald/internal/testenv"
	"github.com/heraldiot/herald/mqtt"
)

func TestMessagePropertiesRoundTrip(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	ctx := testContext(t)
	got := newCollector()
	sub := dial(t, b, mqtt.Options{ClientID: "props-sub"})
	if err := sub.Subscribe(ctx, got.handle, mqtt.Subscription{Filter: "props/#", QoS: 1}); err != nil {
		t.Fatal(err)
	}
	pub := dial(t, b, mqtt.Options{ClientID: "props-pub"})
	sent := &mqtt.Message{
		Topic: "props/x", QoS: 1, Payload: []byte(`{"ok":true}`),
		PayloadUTF8: true, Expiry: time.Hour, ContentType: "application/json",
		ResponseTopic: "props/reply", CorrelationData: []byte{1, 2, 3},
		UserProperties: []mqtt.UserProperty{{Key: "a", Value: "1"}, {Key: "a", Value: "2"}, {Key: "b", Value: ""}},
	}
	if err := pub.Publish(ctx, sent); err != nil {
		t.Fatal(err)
	}
	m := got.next(t)
	if !m.PayloadUTF8 || m.ContentType != sent.ContentType || m.ResponseTopic != sent.ResponseTopic ||
		!bytes.Equal(m.CorrelationData, sent.CorrelationData) || !slices.Equal(m.UserProperties, sent.UserProperties) {
		t.Fatalf("received %+v, want the properties of %+v", m, sent)
	}
	// The server passes on the time left, which may have ticked down.
	if m.Expiry <= 0 || m.Expiry > time.Hour {
		t.Fatalf("expiry %v", m.Expiry)
	}
}

// TestSubscriptionIdentifiersRoute has two overlapping subscriptions with
// identifiers: each handler gets exactly the messages of its subscription.
func TestSubscriptionIdentifiersRoute(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	ctx := testContext(t)
	c := dial(t, b, mqtt.Options{ClientID: "subid"})
	all, one := newCollector(), newCollector()
	if _, err := c.SubscribeWith(ctx, mqtt.SubscribeRequest{ID: 7, Handler: all.handle,
		Subscriptions: []mqtt.Subscription{{Filter: "ids/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SubscribeWith(ctx, mqtt.SubscribeRequest{ID: 9, Handler: one.handle,
		Subscriptions: []mqtt.Subscription{{Filter: "ids/one", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{"ids/one", "ids/two"} {
		if err := c.Publish(ctx, &mqtt.Message{Topic: topic, QoS: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if m := one.next(t); m.Topic != "ids/one" || !slices.Contains(m.SubscriptionIDs, 9) {
		t.Fatalf("subscription 9 got %s ids %v", m.Topic, m.SubscriptionIDs)
	}
	seen := map[string]bool{}
	for range 2 {
		m := all.next(t)
		if !slices.Contains(m.SubscriptionIDs, 7) {
			t.Fatalf("subscription 7 got %s with ids %v", m.Topic, m.SubscriptionIDs)
		}
		seen[m.Topic] = true
	}
	if !seen["ids/one"] || !seen["ids/two"] {
		t.Fatalf("subscription 7 saw %v", seen)
	}
	one.none(t, 200*time.Millisecond)
}

// TestSlowHandlerDoesNotKillConnection floods a handler that takes longer
// than the keepalive to drain: back-pressure must not look like a dead link.
func TestSlowHandlerDoesNotKillConnection(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	ctx := testContext(t)
	release := make(chan struct{})
	got := make(chan struct{}, 1000)
	sub := dial(t, b, mqtt.Options{ClientID: "slow", KeepAlive: time.Second, HandlerQueue: 4,
		DefaultHandler: func(*mqtt.Message) {
			<-release
			got <- struct{}{}
		}})
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	if err := sub.Subscribe(ctx, nil, mqtt.Subscription{Filter: "flood", QoS: 0}); err != nil {
		t.Fatal(err)
	}
	pub := dial(t, b, mqtt.Options{ClientID: "flooder"})
	const n = 200
	for range n {
		if err := pub.Publish(ctx, &mqtt.Message{Topic: "flood", Payload: make([]byte, 100)}); err != nil {
			t.Fatal(err)
		}
	}
	// Hold the handler for three keepalive intervals.
	time.Sleep(3 * time.Second)
	close(release)
	for i := range n {
		select {
		case <-got:
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of %d messages handled", i, n)
		}
	}
	if s := sub.Stats(); s.ConnectionsLost != 0 || s.DroppedQoS0 != 0 {
		t.Fatalf("stats %+v: the slow handler cost the connection or messages", s)
	}
}

// TestDiscardUserProperties receives one message with user properties on
// two clients, one of which discards them: it gets the message and its
// other properties, without the user properties.
func TestDiscardUserProperties(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	ctx := testContext(t)
	pub := dial(t, b, mqtt.Options{ClientID: "user-props-pub"})
	sent := []mqtt.UserProperty{{Key: "trace", Value: "4bf92f35"}, {Key: "", Value: ""}}
	tests := map[string]struct {
		discard bool
		want    []mqtt.UserProperty
	}{
		"kept":      {false, sent},
		"discarded": {true, nil},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got := newCollector()
			sub := dial(t, b, mqtt.Options{ClientID: "user-props-" + name, DiscardUserProperties: tt.discard})
			topic := "user-props/" + name
			if err := sub.Subscribe(ctx, got.handle, mqtt.Subscription{Filter: topic, QoS: 1}); err != nil {
				t.Fatal(err)
			}
			if err := pub.Publish(ctx, &mqtt.Message{Topic: topic, QoS: 1, Payload: []byte("p"),
				ContentType: "text/plain", UserProperties: sent}); err != nil {
				t.Fatal(err)
			}
			m := got.next(t)
			if !slices.Equal(m.UserProperties, tt.want) || m.ContentType != "text/plain" || string(m.Payload) != "p" {
				t.Fatalf("received %q, content type %q, user properties %q; want %q", m.Payload, m.ContentType, m.UserProperties, tt.want)
			}
		})
	}
}
