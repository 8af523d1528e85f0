package mqtt_test

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"

	"github.com/heraldiot/herald/internal/testenv"
	"github.com/heraldiot/herald/mqtt"
	"github.com/heraldiot/herald/mqtt/packet"
)

// logLines collects what a client logs, for tests that check a log entry.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) add(_, args string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, args)
}

func (l *logLines) find(substr string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		if strings.Contains(line, substr) {
			return line
		}
	}
	return ""
}

// TestOversizedPublishSkipped has a scripted server send a PUBLISH larger
// than our Maximum Packet Size, then a small QoS 1 one. The large one must
// be acknowledged as its QoS asks, in order, and not delivered; the small
// one must be delivered on the same connection.
func TestOversizedPublishSkipped(t *testing.T) {
	const maxSize = 1024
	tests := []struct {
		name     string
		v        packet.Version
		qos      byte
		topicLen int
	}{
		{"QoS 0, 3.1.1", packet.V311, 0, 10},
		{"QoS 1, 3.1.1", packet.V311, 1, 10},
		{"QoS 2, 3.1.1", packet.V311, 2, 10},
		{"QoS 0, 5.0", packet.V5, 0, 10},
		{"QoS 1, 5.0", packet.V5, 1, 10},
		{"QoS 2, 5.0", packet.V5, 2, 10},
		// The topic alone is larger than the read buffer: it is
		// discarded in chunks too, and only its start is logged.
		{"QoS 1, topic of 5000 bytes, 3.1.1", packet.V311, 1, 5000},
		{"QoS 2, topic of 5000 bytes, 5.0", packet.V5, 2, 5000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			big := &packet.Publish{QoS: tt.qos, Topic: bytes.Repeat([]byte("t"), tt.topicLen), Payload: make([]byte, 10_000)}
			if tt.qos > 0 {
				big.PacketID = 1
			}
			if tt.v == packet.V5 {
				big.Properties.User = []packet.UserProperty{{Key: []byte("k"), Value: []byte("v")}}
			}
			raw, err := big.Append(nil, tt.v)
			if err != nil {
				t.Fatal(err)
			}
			acks := make(chan []string, 1)
			url := startPeer(t, tt.v, func(p *peer) {
				p.writeRaw(raw)
				p.write(&packet.Publish{QoS: 1, PacketID: 2, Topic: []byte("small"), Payload: []byte("ok")})
				// Collect acknowledgements until the small message's PUBACK
				// and, for QoS 2, the large one's PUBCOMP.
				var got []string
				for done := false; !done; {
					a, ok := p.read().(*packet.Ack)
					if !ok {
						break
					}
					got = append(got, fmt.Sprintf("%s %d 0x%02X", a.PacketType, a.PacketID, byte(a.ReasonCode)))
					if a.PacketType == packet.TypePubrec {
						p.write(&packet.Ack{PacketType: packet.TypePubrel, PacketID: a.PacketID})
					}
					done = strings.Contains(strings.Join(got, ","), "PUBACK 2") &&
						(tt.qos != 2 || strings.Contains(strings.Join(got, ","), "PUBCOMP 1"))
				}
				acks <- got
				// Stay connected until the client disconnects.
				for p.read() != nil {
				}
			})
			logs := &logLines{}
			msgs := newCollector()
			c, _ := connectToPeer(t, url, mqtt.Options{Version: tt.v, ClientID: "x", MaximumPacketSize: maxSize,
				DefaultHandler: msgs.handle, Logger: funcr.New(logs.add, funcr.Options{})})
			if m := msgs.next(t); m.Topic != "small" || string(m.Payload) != "ok" {
				t.Fatalf("first delivery on %q (%d bytes): the oversized message was delivered", m.Topic, len(m.Payload))
			}
			var got []string
			select {
			case got = <-acks:
			case <-time.After(10 * time.Second):
				t.Fatal("the peer did not get its acknowledgements")
			}
			const success = "0x00"
			var want []string
			switch tt.qos {
			case 1:
				want = []string{"PUBACK 1 " + success}
			case 2:
				// PUBCOMP answers our PUBREC's PUBREL, so it may pass
				// the small message's PUBACK; it must say the flow was known.
				want = []string{"PUBREC 1 " + success}
				if len(got) == 3 && got[1] == "PUBCOMP 1 "+success {
					got[1], got[2] = got[2], got[1]
				}
			}
			want = append(want, "PUBACK 2 "+success)
			if tt.qos == 2 {
				want = append(want, "PUBCOMP 1 "+success)
			}
			if strings.Join(got, ", ") != strings.Join(want, ", ") {
				t.Errorf("acknowledgements %q, want %q", got, want)
			}
			if s := c.Stats(); s.DroppedOversized != 1 || s.ConnectionsLost != 0 {
				t.Errorf("stats: %d dropped as oversized, %d connections lost; want 1 and 0", s.DroppedOversized, s.ConnectionsLost)
			}
			logged := strings.Repeat("t", min(tt.topicLen, 128))
			if line := logs.find(`"topic"="` + logged + `"`); !strings.Contains(line, fmt.Sprintf(`"size"=%d`, len(raw))) {
				t.Errorf("no log entry with the topic cut to %d bytes and the size %d; logged:\n%s", len(logged), len(raw), strings.Join(logs.lines, "\n"))
			}
		})
	}
}

// TestOversizedRetainedMessageNoReconnectLoop retains a 2 MiB message at a
// real mosquitto and subscribes to it with a 1 MiB Maximum Packet Size,
// beside a topic of small messages. Under 3.1.1 the server cannot know our
// limit and sends it; the client must skip it and stay connected, at the
// first connect and again after a broker restart, instead of losing every
// connection to it. Under 5.0 mosquitto knows the limit and drops the
// message itself [MQTT-3.1.2-25], so nothing is skipped.
func TestOversizedRetainedMessageNoReconnectLoop(t *testing.T) {
	for _, v := range versions {
		t.Run("v"+v.String(), func(t *testing.T) {
			b := testenv.StartBroker(t, testenv.BrokerOptions{Persistence: true})
			ctx := testContext(t)
			backoff := mqtt.Backoff{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond}
			pub := dial(t, b, mqtt.Options{Version: v, ClientID: "big-pub", Backoff: backoff})
			if err := pub.Publish(ctx, &mqtt.Message{Topic: "big/retained", QoS: 1, Retain: true,
				Payload: make([]byte, 2<<20)}); err != nil {
				t.Fatal(err)
			}
			perConnect := uint64(0)
			if v == mqtt.V311 {
				perConnect = 1
			}

			connected := make(chan struct{}, 10)
			got := newCollector()
			sub := dial(t, b, mqtt.Options{Version: v, ClientID: "big-sub", MaximumPacketSize: 1 << 20,
				// A clean session at every connect: each one subscribes
				// anew, and so is sent the retained message again.
				CleanStart: true, Backoff: backoff,
				OnConnect: func(*mqtt.Client, *mqtt.Connack) {
					select {
					case connected <- struct{}{}:
					default: // a reconnect loop, which the checks below report
					}
				}})
			<-connected
			// Retained first, then the message on the other topic: both
			// filters in one SUBSCRIBE, the oversized one first.
			if err := sub.Subscribe(ctx, got.handle, mqtt.Subscription{Filter: "big/retained", QoS: 1},
				mqtt.Subscription{Filter: "big/small", QoS: 1}); err != nil {
				t.Fatal(err)
			}
			if err := pub.Publish(ctx, &mqtt.Message{Topic: "big/small", QoS: 1, Retain: true, Payload: []byte("later")}); err != nil {
				t.Fatal(err)
			}
			if m := got.next(t); m.Topic != "big/small" || string(m.Payload) != "later" {
				t.Fatalf("received %q on %q, want the small message", m.Payload, m.Topic)
			}
			if s := sub.Stats(); s.ConnectionsLost != 0 || s.DroppedOversized != perConnect {
				t.Fatalf("after the first subscribe: %d connections lost, %d dropped as oversized; want 0 and %d",
					s.ConnectionsLost, s.DroppedOversized, perConnect)
			}

			// A restart keeps the retained messages; the reconnect
			// resubscribes and meets the large one again.
			if err := b.Stop(); err != nil {
				t.Fatal(err)
			}
			if err := b.Start(); err != nil {
				t.Fatal(err)
			}
			select {
			case <-connected:
			case <-time.After(10 * time.Second):
				t.Fatal("no reconnect after the broker restart")
			}
			if m := got.next(t); m.Topic != "big/small" || !m.Retain {
				t.Fatalf("after the reconnect received %q on %q (retain %v), want the retained small message", m.Payload, m.Topic, m.Retain)
			}
			if s := sub.Stats(); s.ConnectionsLost != 1 || s.Reconnects != 1 || s.DroppedOversized != 2*perConnect {
				t.Fatalf("after the restart: %d connections lost, %d reconnects, %d dropped as oversized; want 1, 1 and %d",
					s.ConnectionsLost, s.Reconnects, s.DroppedOversized, 2*perConnect)
			}
		})
	}
}
