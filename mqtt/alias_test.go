package mqtt_test

import (
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
	type seen struct {
		conn  int
		topic string
		alias uint16
	}
	publishes := make(chan seen, 8)
	url := listenPeers(t, packet.V5, func(p *peer, n int) {
		if p.connect() == nil {
			return
		}
		ack := &packet.Connack{}
		ack.Properties.TopicAliasMaximum = 2
		p.write(ack)
		for range 2 {
			pub, ok := p.read().(*packet.Publish)
			if !ok {
				return
			}
			publishes <- seen{n, string(pub.Topic), pub.Properties.TopicAlias}
		}
		// Returning closes the connection; the client reconnects.
	})
	connected := make(chan struct{}, 4)
	c := dial(t, nil, mqtt.Options{ClientID: "x", Servers: []string{url}, OutboundTopicAliases: 2,
		Backoff:   mqtt.Backoff{Min: time.Millisecond, Max: 10 * time.Millisecond},
		OnConnect: func(*mqtt.Client, *mqtt.Connack) { connected <- struct{}{} }})
	want := []seen{
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
