package mqtt

import (
	"fmt"
	"sync"

	"github.com/heraldiot/herald/mqtt/packet"
)

// Acknowledging received messages. A QoS 1 message is answered with
// PUBACK, a QoS 2 one with PUBREC, and both must go out in the order the
// PUBLISH packets arrived [MQTT-4.6.0-2], [MQTT-4.6.0-3]. By default a
// message is acknowledged when its handler returns, which the one
// dispatcher does in arrival order anyway; with manual acknowledgement
// (Options.ManualAck, SubscribeRequest.ManualAck) the application calls
// Message.Ack whenever it is done, in any order, so each connection keeps
// the acknowledgements it owes in arrival order and sends one only when
// every earlier one is ready too.

// ackQueue is the acknowledgements one connection owes, in the order their
// messages arrived. Only the connection's reader appends (oweAck); the
// dispatcher and Message.Ack mark entries ready (ackReady). Both are
// called under Client.mu, which sending a manual acknowledgement needs to
// drop its record; the queue's own lock comes after Client.mu and before
// conn.wmu.
type ackQueue struct {
	mu   sync.Mutex
	owed []owedAck // owed[head:] are owed; owed[head] has sequence number base
	head int
	base uint64
}

type owedAck struct {
	id    uint16
	qos   QoS
	ready bool
	held  *heldAck // a manual QoS 1 acknowledgement, dropped from Client.held once sent
}

// keptAckCapacity is the largest array an emptied ack queue keeps.
const keptAckCapacity = 16

// oweAck records that the message id just received must be acknowledged,
// after every message received before it, and returns the entry's
// sequence number for ackReady. ready is set for an acknowledgement that
// waits for nothing but its turn: the answer to a duplicate. Client.mu is
// held.
func (cn *conn) oweAck(id uint16, qos QoS, ready bool, held *heldAck) uint64 {
	q := &cn.acks
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.head > 0 && q.head >= len(q.owed)/2 {
		n := copy(q.owed, q.owed[q.head:])
		q.owed, q.head = q.owed[:n], 0
	}
	seq := q.base + uint64(len(q.owed)-q.head)
	q.owed = append(q.owed, owedAck{id: id, qos: qos, ready: ready, held: held})
	if ready {
		cn.sendReadyAcksLocked()
	}
	return seq
}

// ackReady marks the acknowledgement seq ready and sends every ready one
// at the head of the queue. On a connection that has ended it does
// nothing. Client.mu is held.
func (cn *conn) ackReady(seq uint64) {
	select {
	case <-cn.done:
		return
	default:
	}
	q := &cn.acks
	q.mu.Lock()
	defer q.mu.Unlock()
	if seq < q.base || seq-q.base >= uint64(len(q.owed)-q.head) {
		return // sent already
	}
	q.owed[q.head+int(seq-q.base)].ready = true
	cn.sendReadyAcksLocked()
}

// sendReadyAcksLocked writes the ready acknowledgements at the head of the
// queue and drops them from it. A manual QoS 1 acknowledgement that the
// connection took is dropped from Client.held; one it did not take, having
// ended, stays there for the server's resend. The caller holds Client.mu
// and acks.mu.
func (cn *conn) sendReadyAcksLocked() {
	q := &cn.acks
	for q.head < len(q.owed) && q.owed[q.head].ready {
		a := q.owed[q.head]
		switch a.qos {
		case AtLeastOnce:
			// Count the message as answered before the PUBACK can reach
			// the server and free its slot for the next one.
			if cn.inboundUnacked.Add(-1) < 0 {
				cn.inboundUnacked.Store(0)
			}
			if cn.writeAck(packet.TypePuback, a.id) && a.held != nil && cn.c.held[a.id] == a.held {
				// Sent: a copy the server sends again all the same is a
				// new delivery, as in automatic mode.
				delete(cn.c.held, a.id)
			}
		case ExactlyOnce:
			cn.writeAck(packet.TypePubrec, a.id)
		}
		q.owed[q.head] = owedAck{}
		q.head++
		q.base++
	}
	if q.head == len(q.owed) {
		q.owed, q.head = q.owed[:0], 0
		if cap(q.owed) > keptAckCapacity {
			q.owed = nil
		}
	}
}

// heldAck is the acknowledgement of a received message that waits for the
// application's Message.Ack. It lives in Client.held, under Client.mu,
// from the message's arrival until Ack, and across reconnects: the server
// sends an unacknowledged message again on the next connection of the
// session [MQTT-4.4.0-1], and that copy is not delivered again but moves
// the acknowledgement to the new connection.
type heldAck struct {
	c   *Client
	id  uint16
	qos QoS
	cn  *conn  // the connection that owes the acknowledgement now
	seq uint64 // its entry in cn.acks
	// acked (QoS 1): Ack was called, and the PUBACK waits for its turn,
	// or, if the connection ended first, for the server's resend, which
	// is answered without delivering it again.
	acked bool
}

// Ack acknowledges a received QoS 1 or 2 message whose acknowledgement was
// left to the application (Options.ManualAck, SubscribeRequest.ManualAck):
// PUBACK for QoS 1, PUBREC for QoS 2. It may be called from any goroutine,
// at any time after the handler received m, once or more; the
// acknowledgement goes out once every message that arrived before m on the
// connection has been acknowledged too, as MQTT requires, so one message
// never acknowledged holds back the acknowledgements of all that follow,
// and the server stops sending once our Receive Maximum of them are
// unacknowledged.
//
// Until Ack the message is not the client's: a QoS 2 message is recorded
// as delivered (the session's Store) only at Ack, so a process that ends
// first has it delivered again by the server. If the connection ends first
// and the session resumes, the server sends the message again; the client
// recognises it by its packet identifier, does not deliver it again, and
// sends the acknowledgement on the new connection when Ack is called. If
// the server kept no session, the message is not sent again and Ack has
// nothing to do.
//
// Ack returns an error only when the Store cannot record a QoS 2 message
// as delivered; the acknowledgement is not sent then, and Ack may be
// called again. For a QoS 0 message, a message acknowledged automatically
// and one not received, it does nothing.
func (m *Message) Ack() error {
	if m.ack == nil {
		return nil
	}
	return m.ack.c.ack(m.ack)
}

func (c *Client) ack(h *heldAck) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held[h.id] != h || h.acked {
		// Acknowledged already, or the session that held it is gone.
		return nil
	}
	if h.qos == ExactlyOnce {
		// From here on a resend is answered, not delivered: the message
		// has reached the application exactly once.
		if err := c.store.PutInbound(h.id); err != nil {
			return fmt.Errorf("mqtt: ack: recording the message as delivered: %w", err)
		}
		c.inboundQoS2[h.id] = struct{}{}
		delete(c.held, h.id)
		// If the connection has ended, the resend meets the record above
		// and is answered then.
		h.cn.ackReady(h.seq)
		return nil
	}
	// The record goes when the PUBACK is sent (sendReadyAcksLocked).
	h.acked = true
	h.cn.ackReady(h.seq)
	return nil
}

// admitAcked decides what a received QoS 1 or 2 message needs before it
// is queued for the handlers, and owes its acknowledgement on cn. It
// reports false for a message that must not be delivered again: a QoS 2
// message delivered already, or any message the application holds for a
// manual acknowledgement. manual says the application acknowledges item
// itself; item.seq is set for the dispatcher otherwise. store reports
// that the caller must record a QoS 2 message as delivered.
func (c *Client) admitAcked(cn *conn, item *inbound, dup, manual bool) (deliver, store bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id, qos := item.id, item.qos
	if h := c.held[id]; h != nil {
		// The identifier stays in use until acknowledged [MQTT-2.2.1-4],
		// so this is the held message again: repeated on the connection
		// that owes its acknowledgement, or sent again on a new one, with
		// DUP set at QoS 1 [MQTT-3.3.1-1]. A QoS 1 copy without DUP on a
		// new connection is a new message, and the record is stale (a
		// server that dropped the message it had sent).
		switch {
		case h.cn == cn && h.qos == qos:
			// Its acknowledgement is owed already: one message, counted
			// once.
			cn.inboundUnacked.Add(-1)
			return false, false, nil
		case h.cn == cn:
			return false, false, fmt.Errorf("%w: QoS %d PUBLISH with packet identifier %d, in use by a QoS %d message",
				packet.ProtocolError, qos, id, h.qos)
		case h.qos == qos && (dup || qos == ExactlyOnce):
			var held *heldAck
			if qos == AtLeastOnce {
				held = h
			}
			h.cn, h.seq = cn, cn.oweAck(id, qos, h.acked, held)
			return false, false, nil
		}
		delete(c.held, id)
	}
	if qos == ExactlyOnce {
		if _, seen := c.inboundQoS2[id]; seen {
			// Delivered already; the server did not see our PUBREC.
			cn.oweAck(id, qos, true, nil)
			return false, false, nil
		}
	}
	if manual {
		h := &heldAck{c: c, id: id, qos: qos, cn: cn}
		var held *heldAck
		if qos == AtLeastOnce {
			held = h
		}
		h.seq = cn.oweAck(id, qos, false, held)
		if c.held == nil {
			c.held = make(map[uint16]*heldAck)
		}
		c.held[id] = h
		item.msg.ack = h
		return true, false, nil
	}
	item.seq = cn.oweAck(id, qos, false, nil)
	if qos == ExactlyOnce {
		c.inboundQoS2[id] = struct{}{}
		return true, true, nil
	}
	return true, false, nil
}

// wantsManualAck reports whether m, just received, reaches a handler that
// acknowledges by hand: any handler under Options.ManualAck, else that of
// a subscription made with SubscribeRequest.ManualAck. It is decided on
// arrival, before a QoS 2 message is recorded as delivered.
func (c *Client) wantsManualAck(m *Message) bool {
	if c.opts.ManualAck {
		return c.router.delivers(m, c.opts.DefaultHandler != nil)
	}
	return c.router.manualRoutes.Load() > 0 && c.router.manual(m)
}

// undeliver undoes the delivery state of a message that was queued but
// never handed to a handler, so that the server's resend in a later
// connection is delivered.
func (c *Client) undeliver(item inbound) {
	if item.msg != nil && item.msg.ack != nil {
		c.mu.Lock()
		if c.held[item.id] == item.msg.ack {
			delete(c.held, item.id)
		}
		c.mu.Unlock()
		return
	}
	if item.qos == ExactlyOnce {
		c.forgetInbound(item.id)
	}
}
