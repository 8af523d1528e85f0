package mqtt

import (
	"sync/atomic"

	"github.com/heraldiot/herald/mqtt/packet"
)

// counters are the client's running statistics. They are atomics bumped
// where things happen, so reading them (Client.Stats, a Prometheus
// scrape) costs the hot path nothing but the increments.
type counters struct {
	bytesIn, bytesOut, reconnects, connectionsLost, droppedQoS0 atomic.Uint64
	receiveMaximumOvershoot, droppedOversized                   atomic.Uint64
	writeBufferFull, writeBufferPeak, unlistedAckReasons        atomic.Uint64
	sent, received                                              packetCounters
}

// noteWriteBuffer raises writeBufferPeak to n bytes. Connections call it
// only when they pass their own previous peak, so it is rare.
func (ctr *counters) noteWriteBuffer(n int) {
	for {
		old := ctr.writeBufferPeak.Load()
		if uint64(n) <= old || ctr.writeBufferPeak.CompareAndSwap(old, uint64(n)) {
			return
		}
	}
}

// packetCounters count packets and bytes by packet type.
type packetCounters [16]struct{ packets, bytes atomic.Uint64 }

func (pc *packetCounters) add(t packet.Type, n int) {
	e := &pc[t&0x0F]
	e.packets.Add(1)
	e.bytes.Add(uint64(n))
}

func (pc *packetCounters) snapshot() (out [16]PacketCounts) {
	for i := range pc {
		out[i] = PacketCounts{Packets: pc[i].packets.Load(), Bytes: pc[i].bytes.Load()}
	}
	return out
}

// PacketCounts counts the packets of one type in one direction and their
// bytes on the wire, fixed header included.
type PacketCounts struct {
	Packets, Bytes uint64
}

// Stats is a snapshot of a client's counters. Package mqttprom exports
// them as Prometheus metrics.
type Stats struct {
	BytesIn, BytesOut uint64
	// Sent and Received count packets by type, indexed by packet.Type
	// (packet.TypePublish, packet.TypePuback, ...).
	Sent, Received [16]PacketCounts
	Reconnects     uint64
	// ConnectionsLost counts connections that ended other than by Disconnect.
	ConnectionsLost uint64
	// DroppedQoS0 counts QoS 0 messages that found the handler queue full
	// and were dropped: with DropQoS0WhenFull, or while a caller waited for
	// an acknowledgement the reader had to read on for.
	DroppedQoS0 uint64
	// ReceiveMaximumOvershoot counts messages the server sent beyond our
	// Receive Maximum (see Options.StrictReceiveMaximum).
	ReceiveMaximumOvershoot uint64
	// DroppedOversized counts received PUBLISH packets larger than
	// Options.MaximumPacketSize, skipped without delivery.
	DroppedOversized uint64
	// WriteBufferFull counts connections closed with ErrWriteBufferFull.
	WriteBufferFull uint64
	// UnlistedAckReasons counts v5 PUBACK, PUBREC, PUBREL and PUBCOMP
	// packets whose reason code is below 0x80, so success, but not one the
	// specification lists for their type (mochi-mqtt 2.7.9 acknowledges
	// QoS 1 with PUBACK 0x01). They are taken as success.
	UnlistedAckReasons uint64
	// WriteBufferPeak is the most bytes any connection has had queued
	// against Options.MaxWriteBuffer: how close the client came to it.
	WriteBufferPeak uint64
	// InFlight is the number of QoS 1 and 2 publishes awaiting acknowledgement.
	InFlight int
	// Queued is the number of received messages waiting for handlers.
	Queued int
	// Connected reports whether a connection is up.
	Connected bool
}

// Stats returns a snapshot of the client's counters.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	inflight, connected := c.inflight, c.conn != nil
	c.mu.Unlock()
	return Stats{
		BytesIn:                 c.stats.bytesIn.Load(),
		BytesOut:                c.stats.bytesOut.Load(),
		Sent:                    c.stats.sent.snapshot(),
		Received:                c.stats.received.snapshot(),
		Reconnects:              c.stats.reconnects.Load(),
		ConnectionsLost:         c.stats.connectionsLost.Load(),
		DroppedQoS0:             c.stats.droppedQoS0.Load(),
		ReceiveMaximumOvershoot: c.stats.receiveMaximumOvershoot.Load(),
		DroppedOversized:        c.stats.droppedOversized.Load(),
		WriteBufferFull:         c.stats.writeBufferFull.Load(),
		WriteBufferPeak:         c.stats.writeBufferPeak.Load(),
		UnlistedAckReasons:      c.stats.unlistedAckReasons.Load(),
		InFlight:                inflight,
		Queued:                  c.queue.len(),
		Connected:               connected,
	}
}

// countDirect counts a packet that bypasses the connection's reader and
// writer: the CONNECT exchange and a closing DISCONNECT.
func (c *Client) countDirect(sent bool, t packet.Type, n int) {
	if sent {
		c.stats.sent.add(t, n)
		c.stats.bytesOut.Add(uint64(n))
	} else {
		c.stats.received.add(t, n)
		c.stats.bytesIn.Add(uint64(n))
	}
}

// headerSize is the size of a fixed header for a body of n bytes.
func headerSize(n int) int {
	switch {
	case n < 128:
		return 2
	case n < 16384:
		return 3
	case n < 2097152:
		return 4
	}
	return 5
}
