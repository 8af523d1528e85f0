package main

import (
	"context"
	"io"
	"strings"
	"sync"

	"github.com/heraldiot/herald/mqtt"
	"github.com/heraldiot/herald/mqtt/packet"
)

// wireTap watches the packets of a client's connections. The client keeps
// its packets to itself, yet the CLI needs what only the wire shows: the -d
// lines, each received message's packet identifier (%m) and whether v5
// properties were present at all, and when a packet has gone to the socket
// (see tapConn.Write), so that our DISCONNECT never overtakes a QoS 0
// PUBLISH or the acknowledgement of the last message printed.
type wireTap struct {
	version mqtt.Version
	debug   io.Writer // nil without -d

	mu      sync.Mutex
	changed chan struct{} // closed at every change and replaced, to wake waiters
	client  string        // our client identifier for -d lines
	// published counts PUBLISH packets written (or being written), over
	// all connections.
	published int
	// lost counts connections that ended.
	lost int
	// delivered are the received messages the client will hand to its
	// handler, oldest first.
	delivered []wireMessage
	// awaitingRel mirrors the client's exactly-once state: a QoS 2 message
	// delivered once is not delivered again until its PUBREL.
	awaitingRel map[uint16]bool
	// unacked are received QoS 1 and 2 messages whose flow we have not
	// finished with PUBACK or PUBCOMP.
	unacked map[uint16]bool
}

// wireMessage is what the wire says about a received message beyond what
// mqtt.Message carries.
type wireMessage struct {
	topic string
	mid   uint16
	// hasFormat and hasExpiry tell an absent v5 property from a zero one.
	hasFormat, hasExpiry bool
	format               byte
}

func newWireTap(v mqtt.Version, debug io.Writer) *wireTap {
	return &wireTap{
		version:     v,
		debug:       debug,
		changed:     make(chan struct{}),
		client:      "(null)",
		awaitingRel: make(map[uint16]bool),
		unacked:     make(map[uint16]bool),
	}
}

func (t *wireTap) sent(h packet.Header, body []byte) {
	t.observe(h, body, t.sentLocked, debugSent)
}

func (t *wireTap) received(h packet.Header, body []byte) {
	t.observe(h, body, t.receivedLocked, debugReceived)
}

// observe decodes a packet, updates the state with it, prints its -d lines
// and wakes the waiters.
func (t *wireTap) observe(h packet.Header, body []byte, update func(packet.Packet), lines func(string, packet.Packet) []string) {
	p, err := packet.New(h.Type)
	if err != nil {
		return
	}
	if err := p.Unmarshal(t.version, h.Flags, body); err != nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	update(p)
	t.printLocked(lines(t.client, p))
	t.notifyLocked()
}

func (t *wireTap) sentLocked(p packet.Packet) {
	switch p := p.(type) {
	case *packet.Connect:
		if len(p.ClientID) > 0 {
			t.client = string(p.ClientID)
		}
		// A new connection: flows of the last one are resent or gone.
		clear(t.unacked)
	case *packet.Publish:
		t.published++
		if p.QoS == 0 {
			// libmosquitto gives QoS 0 messages a message id too, from the
			// same count; for a publisher it is the message's number.
			p.PacketID = uint16(t.published)
		}
	case *packet.Ack:
		if p.PacketType == packet.TypePuback || p.PacketType == packet.TypePubcomp {
			delete(t.unacked, p.PacketID)
		}
	}
}

func (t *wireTap) receivedLocked(p packet.Packet) {
	switch p := p.(type) {
	case *packet.Connack:
		if id := p.Properties.AssignedClientID; len(id) > 0 {
			t.client = string(id)
		}
		if !p.SessionPresent {
			clear(t.awaitingRel)
		}
	case *packet.Publish:
		t.receivedPublishLocked(p)
	case *packet.Ack:
		if p.PacketType == packet.TypePubrel {
			delete(t.awaitingRel, p.PacketID)
		}
	}
}

func (t *wireTap) receivedPublishLocked(p *packet.Publish) {
	if p.QoS == 2 {
		if t.awaitingRel[p.PacketID] {
			return // a resend the client will not deliver again
		}
		t.awaitingRel[p.PacketID] = true
	}
	if p.QoS > 0 {
		t.unacked[p.PacketID] = true
	}
	pr := &p.Properties
	t.delivered = append(t.delivered, wireMessage{
		topic:     string(p.Topic),
		mid:       p.PacketID,
		hasFormat: pr.Has(packet.PropPayloadFormat),
		format:    pr.PayloadFormat,
		hasExpiry: pr.Has(packet.PropMessageExpiry),
	})
}

func (t *wireTap) closed() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lost++
	t.notifyLocked()
}

func (t *wireTap) printLocked(lines []string) {
	if t.debug == nil {
		return
	}
	// One write per packet keeps its lines together on the shared stdout.
	_, _ = io.WriteString(t.debug, strings.Join(lines, "\n")+"\n")
}

func (t *wireTap) notifyLocked() {
	close(t.changed)
	t.changed = make(chan struct{})
}

// await blocks until cond, called with t.mu held, is true or ctx ends.
func (t *wireTap) await(ctx context.Context, cond func() bool) error {
	for {
		t.mu.Lock()
		ok, changed := cond(), t.changed
		t.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// counts returns how many PUBLISH packets have been written and how many
// connections have ended, for awaitWritten.
func (t *wireTap) counts() (published, lost int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.published, t.lost
}

// awaitWritten waits until n PUBLISH packets have been written, or a
// connection ended after lost had been counted (the client will resend
// what QoS 1 and 2 still owe; a QoS 0 message is gone).
func (t *wireTap) awaitWritten(ctx context.Context, n, lost int) error {
	return t.await(ctx, func() bool { return t.published >= n || t.lost > lost })
}

// awaitAcked waits until the flow of received message mid is finished on
// our side, or the connection ended.
func (t *wireTap) awaitAcked(ctx context.Context, mid uint16) error {
	lost := t.lostCount()
	return t.await(ctx, func() bool { return !t.unacked[mid] || t.lost > lost })
}

func (t *wireTap) lostCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lost
}

// next returns what the wire said about the message the client is handing
// over now. Messages reach the handler in wire order, so it is the oldest
// entry with that topic; older entries with other topics were dropped by
// the client (a connection ended while they waited for the handler).
func (t *wireTap) next(topic string) wireMessage {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, m := range t.delivered {
		if m.topic == topic {
			t.delivered = t.delivered[i+1:]
			return m
		}
	}
	return wireMessage{topic: topic}
}
