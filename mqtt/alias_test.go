package mqtt_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/heraldiot/herald/internal/testenv"
	"github.com/heraldiot/herald/mqtt"
	"github.com/heraldiot/herald/mqtt/packet"
)

// TestOutboundTopicAliases publishes round-robin over more topics than the
// aliases allowed, so mappings are defined, used and reassigned; mosquitto
// (Topic Alias Maximum 10) must deliver every message on its own topic, and
// the aliased stream must be smaller on the wire.
func TestOutboundTopicAliases(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	ctx := testContext(t)
	got := newCollector()
	sub := dial(t, b, mqtt.Options{ClientID: "alias-sub"})
	if err := sub.Subscribe(ctx, got.handle, mqtt.Subscription{Filter: "fleet/#", QoS: mqtt.AtLeastOnce}); err != nil {
		t.Fatal(err)
	}
	topics := make([]string, 6)
	for i := range topics {
		topics[i] = fmt.Sprintf("fleet/region-%d/devices/very-long-device-identifier/notice", i)
	}
	send := func(c *mqtt.Client, rounds int) {
		for r := range rounds {
			for i, topic := range topics {
				// Hot topics 0 and 1 appear twice per round and stay mapped.
				for _, tp := range []string{topic, topics[i%2]} {
					m := &mqtt.Message{Topic: tp, QoS: mqtt.QoS(r % 3), Payload: []byte(tp)}
					if err := c.Publish(ctx, m); err != nil {
						t.Fatalf("publish to %s: %v", tp, err)
					}
				}
			}
		}
	}
	const rounds = 5
	want := rounds * len(topics) * 2
	receive := func() {
		for range want {
			m := got.next(t)
			if string(m.Payload) != m.Topic {
				t.Fatalf("message for %q arrived on %q", m.Payload, m.Topic)
			}
		}
	}

	plain := dial(t, b, mqtt.Options{ClientID: "alias-plain"})
	send(plain, rounds)
	receive()
	aliased := dial(t, b, mqtt.Options{ClientID: "alias-pub", OutboundTopicAliases: 4})
	if n := aliased.ServerInfo().TopicAliasMaximum; n == 0 {
		t.Fatal("broker offers no topic aliases; the test needs some")
	}
	send(aliased, rounds)
	receive()
	if p, a := plain.Stats().BytesOut, aliased.Stats().BytesOut; a >= p*3/4 {
		t.Fatalf("aliased publisher sent %d bytes, plain %d: aliases saved too little", a, p)
	}
}

// TestOutboundTopicAliasesResetOnReconnect uses a scripted server, since
// mosquitto 2.0 keeps a client's aliases across its connections and would
// not notice: after a reconnect the first publish to a topic must define
// its alias again instead of sending only the alias.
func TestOutboundTopicAliasesResetOnReconnect(t *testing.T) {
	// The server ends each connection after two publishes.
	url, publishes := aliasPeer(t, 2, func(i int, _ *packet.Publish) bool { return i == 1 })
	connected := make(chan struct{}, 4)
	c := dial(t, nil, mqtt.Options{ClientID: "x", Servers: []string{url}, OutboundTopicAliases: 2,
		Backoff:   mqtt.Backoff{Min: time.Millisecond, Max: 10 * time.Millisecond},
		OnConnect: func(*mqtt.Client, *mqtt.Connack) { connected <- struct{}{} }})
	want := []aliasSeen{
		{0, "a/b", 1}, {0, "", 1}, // defined, then used
		{1, "a/b", 1}, {1, "", 1}, // a new connection defines it again
	}
	for i, w := range want {
		if i%2 == 0 {
			<-connected
		}
		if err := c.Publish(testContext(t), &mqtt.Message{Topic: "a/b"}); err != nil {
			t.Fatal(err)
		}
		if got := <-publishes; got != w {
			t.Fatalf("publish %d: server saw %+v, want %+v", i, got, w)
		}
	}
}

// TestInboundTopicAliases has a scripted server define, use and redefine
// aliases within our maximum, then use one it never defined: the client
// must deliver the first messages on their topics and close the connection
// with Protocol Error for the last.
func TestInboundTopicAliases(t *testing.T) {
	reason := make(chan packet.ReasonCode, 1)
	url := startPeer(t, packet.V5, func(p *peer) {
		send := func(topic string, alias uint16, payload string) {
			pub := &packet.Publish{Topic: []byte(topic), Payload: []byte(payload)}
			pub.Properties.TopicAlias = alias
			p.write(pub)
		}
		send("long/topic/one", 1, "1")
		send("", 1, "2")
		send("long/topic/two", 2, "3")
		send("", 2, "4")
		send("long/topic/three", 1, "5")
		send("", 1, "6")
		send("", 3, "unknown") // within the maximum, never defined
		reason <- p.expectDisconnect()
	})
	got := newCollector()
	_, lost := connectToPeer(t, url, mqtt.Options{ClientID: "x", TopicAliasMaximum: 3, DefaultHandler: got.handle})
	want := []string{"long/topic/one", "long/topic/one", "long/topic/two", "long/topic/two", "long/topic/three", "long/topic/three"}
	for i, topic := range want {
		if m := got.next(t); m.Topic != topic || string(m.Payload) != fmt.Sprint(i+1) {
			t.Fatalf("message %d: %q on %q, want on %q", i+1, m.Payload, m.Topic, topic)
		}
	}
	if err := awaitLost(t, lost); packet.ReasonOf(err) != packet.ProtocolError {
		t.Fatalf("lost with %v, want protocol error", err)
	}
	if code := <-reason; code != packet.ProtocolError {
		t.Fatalf("client sent DISCONNECT %s, want protocol error", code)
	}
	got.none(t, 50*time.Millisecond)
}

// TestConnectAnnouncesTopicAliasMaximum checks the CONNECT property that
// tells the server how many aliases it may use.
func TestConnectAnnouncesTopicAliasMaximum(t *testing.T) {
	seen := make(chan uint16, 1)
	url := listenPeers(t, packet.V5, func(p *peer, _ int) {
		if c := p.connect(); c != nil {
			seen <- c.Properties.TopicAliasMaximum
			p.write(&packet.Connack{})
			p.read() // until the client leaves
		}
	})
	connectToPeer(t, url, mqtt.Options{ClientID: "x", TopicAliasMaximum: 7})
	if n := <-seen; n != 7 {
		t.Fatalf("CONNECT announced topic alias maximum %d, want 7", n)
	}
}

// TestCallerTopicAliases: aliases a publisher chooses (Message.TopicAlias)
// above the automatic ones travel alongside them through mosquitto (Topic
// Alias Maximum 10): each message arrives on its topic, a repeated topic
// travels without its name, an alias may be moved to another topic, and
// aliases the caller may not use are refused before anything is sent.
func TestCallerTopicAliases(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	ctx := testContext(t)
	got := newCollector()
	sub := dial(t, b, mqtt.Options{ClientID: "caller-alias-sub"})
	if err := sub.Subscribe(ctx, got.handle, mqtt.Subscription{Filter: "fleet/#"}); err != nil {
		t.Fatal(err)
	}
	pub := dial(t, b, mqtt.Options{ClientID: "caller-alias-pub", OutboundTopicAliases: 4})
	if n := pub.ServerInfo().TopicAliasMaximum; n != 10 {
		t.Fatalf("broker's topic alias maximum %d, the test expects 10", n)
	}
	a := "fleet/region-1/devices/very-long-device-identifier/notice"
	bt := "fleet/region-2/devices/very-long-device-identifier/notice"
	sent := func() uint64 { return pub.Stats().Sent[packet.TypePublish].Bytes }
	publish := func(topic string, alias uint16) uint64 {
		t.Helper()
		before := sent()
		if err := pub.Publish(ctx, &mqtt.Message{Topic: topic, TopicAlias: alias, Payload: []byte(topic)}); err != nil {
			t.Fatalf("publish to %s with alias %d: %v", topic, alias, err)
		}
		return sent() - before
	}
	defining := publish(a, 5)
	if using := publish(a, 5); defining-using != uint64(len(a)) {
		t.Errorf("a publish using alias 5 took %d bytes, the one defining it %d: the topic was sent again", using, defining)
	}
	publish(bt, 5) // moves alias 5 to another topic
	publish(a, 10)
	publish(a, 0) // automatic aliases still work beside them
	publish(a, 10)
	publish(bt, 5)
	want := []string{a, a, bt, a, a, a, bt}
	for i, topic := range want {
		if m := got.next(t); m.Topic != topic || string(m.Payload) != topic {
			t.Fatalf("message %d: %q on %q, want it on %q", i, m.Payload, m.Topic, topic)
		}
	}
	for _, alias := range []uint16{1, 4, 11} {
		if err := pub.Publish(ctx, &mqtt.Message{Topic: a, TopicAlias: alias, QoS: mqtt.AtLeastOnce}); !errors.Is(err, mqtt.ErrTopicAliasInvalid) {
			t.Errorf("alias %d: %v, want ErrTopicAliasInvalid (5–10 are the caller's)", alias, err)
		}
	}
	old := dial(t, b, mqtt.Options{ClientID: "caller-alias-311", Version: mqtt.V311})
	if err := old.Publish(ctx, &mqtt.Message{Topic: a, TopicAlias: 5}); !errors.Is(err, mqtt.ErrTopicAliasInvalid) {
		t.Errorf("alias under 3.1.1: %v, want ErrTopicAliasInvalid", err)
	}
	if s := pub.Stats(); s.ConnectionsLost != 0 {
		t.Fatalf("publisher lost its connection %d times", s.ConnectionsLost)
	}
}

// TestCallerTopicAliasesResetOnReconnect uses a scripted server, since
// mosquitto keeps a client's aliases across connections and would not
// notice: on a new connection a caller's alias is defined again, and a
// QoS 1 publish resent there carries its topic.
func TestCallerTopicAliasesResetOnReconnect(t *testing.T) {
	// The first connection ends at its first QoS 1 publish, unacknowledged.
	url, publishes := aliasPeer(t, 4, func(_ int, pub *packet.Publish) bool { return pub.QoS == 1 })
	connected := make(chan struct{}, 4)
	c := dial(t, nil, mqtt.Options{ClientID: "x", Servers: []string{url}, OutboundTopicAliases: 2, SessionExpiry: time.Hour,
		Backoff:   mqtt.Backoff{Min: time.Millisecond, Max: 10 * time.Millisecond},
		OnConnect: func(*mqtt.Client, *mqtt.Connack) { connected <- struct{}{} }})
	<-connected
	ctx := testContext(t)
	publish := func(topic string, qos mqtt.QoS) {
		t.Helper()
		if err := c.Publish(ctx, &mqtt.Message{Topic: topic, TopicAlias: 3, QoS: qos}); err != nil {
			t.Fatal(err)
		}
	}
	publish("a/b", 0)
	publish("a/b", 0)
	publish("c/d", 0)
	publish("c/d", 1) // the server closes the connection without a PUBACK
	publish("c/d", 0)
	want := []aliasSeen{
		{0, "a/b", 3}, {0, "", 3}, {0, "c/d", 3}, {0, "", 3},
		{1, "c/d", 0}, // the resend carries its topic, no alias
		{1, "c/d", 3}, // and the alias is defined again
	}
	for i, w := range want {
		if got := <-publishes; got != w {
			t.Fatalf("publish %d: server saw %+v, want %+v", i, got, w)
		}
	}
}

// aliasSeen is what a scripted server saw of a PUBLISH: the connection it
// came on (counted from 0), its topic name and its topic alias.
type aliasSeen struct {
	conn  int
	topic string
	alias uint16
}

// aliasPeer is a scripted server announcing Topic Alias Maximum maximum
// and reporting every PUBLISH. It acknowledges QoS 1 ones, except on the
// first connection, which it ends after the i-th publish (from 0) for
// which last returns true, unacknowledged; the client then reconnects,
// and finds its session present.
func aliasPeer(t *testing.T, maximum uint16, last func(i int, pub *packet.Publish) bool) (string, <-chan aliasSeen) {
	publishes := make(chan aliasSeen, 8)
	url := listenPeers(t, packet.V5, func(p *peer, n int) {
		if p.connect() == nil {
			return
		}
		ack := &packet.Connack{SessionPresent: n > 0}
		ack.Properties.TopicAliasMaximum = maximum
		p.write(ack)
		for i := 0; ; i++ {
			pub, ok := p.read().(*packet.Publish)
			if !ok {
				return
			}
			publishes <- aliasSeen{n, string(pub.Topic), pub.Properties.TopicAlias}
			if n == 0 && last(i, pub) {
				return // returning closes the connection
			}
			if pub.QoS == 1 {
				p.write(&packet.Ack{PacketType: packet.TypePuback, PacketID: pub.PacketID})
			}
		}
	})
	return url, publishes
}
