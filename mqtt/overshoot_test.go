package mqtt_test

import (
	"testing"
	"time"

	"github.com/heraldiot/herald/mqtt"
	"github.com/heraldiot/herald/mqtt/packet"
)

// TestReceiveMaximumOvershootBackPressure: a server that sends far more
// unacknowledged QoS 1 messages than the client's Receive Maximum, and its
// handler queue, keeps the connection (by default): the reader waits for
// the handlers, nothing is lost, every message is acknowledged, and the
// overshoot is counted.
func TestReceiveMaximumOvershootBackPressure(t *testing.T) {
	const sent = 40 // ReceiveMaximum 4, HandlerQueue 8
	acked := make(chan int, 1)
	url := startPeer(t, packet.V5, func(p *peer) {
		for id := uint16(1); id <= sent; id++ {
			p.write(&packet.Publish{QoS: 1, PacketID: id, Topic: []byte("t"), Payload: []byte("x")})
		}
		n := 0
		for n < sent {
			a, ok := p.read().(*packet.Ack)
			if !ok {
				break
			}
			if a.PacketType == packet.TypePuback {
				n++
			}
		}
		acked <- n
		p.read() // until the client leaves
	})
	release := make(chan struct{})
	got := newCollector()
	c, lost := connectToPeer(t, url, mqtt.Options{ClientID: "x", ReceiveMaximum: 4, HandlerQueue: 8,
		DefaultHandler: func(m *mqtt.Message) {
			<-release
			got.handle(m)
		}})
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	// The reader fills the queue and then waits: the server's messages
	// stay in the socket until the handlers make room.
	deadline := time.Now().Add(10 * time.Second)
	for c.Stats().Queued < 8 {
		if time.Now().After(deadline) {
			t.Fatalf("handler queue holds %d, want it full (8)", c.Stats().Queued)
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(release)
	for range sent {
		got.next(t)
	}
	if n := <-acked; n != sent {
		t.Fatalf("server got %d PUBACKs, want %d", n, sent)
	}
	select {
	case err := <-lost:
		t.Fatalf("connection lost: %v", err)
	default:
	}
	if st := c.Stats(); st.ReceiveMaximumOvershoot == 0 || st.ConnectionsLost != 0 {
		t.Fatalf("stats %+v: want the overshoot counted and no connection lost", st)
	}
}
