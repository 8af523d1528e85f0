package mqtt

import (
	"fmt"
	"time"

	"github.com/heraldiot/herald/mqtt/packet"
)

// inbound is a received message on its way to the handlers, with what is
// needed to acknowledge it afterwards. msg is nil for a message skipped as
// oversized, which goes through the queue only to be acknowledged in turn.
type inbound struct {
	msg *Message
	id  uint16
	qos QoS
	cn  *conn  // the connection it arrived on; acks go only there
	seq uint64 // QoS 1 and 2 acknowledged automatically: its entry in cn.acks
}

// handlePacket acts on one packet from the reader. b aliases the read
// buffer and is only valid during the call. A returned error closes the
// connection with the error's reason code.
func (c *Client) handlePacket(cn *conn, in *inboundPackets, h packet.Header, b []byte) error {
	v := cn.version
	// The user properties of SUBACK and UNSUBACK are never surfaced, nor
	// those of PUBACK and PUBREC unless a PublishWithResult caller waits:
	// they are checked, not kept.
	discardUser := packet.UnmarshalOptions{DiscardUserProperties: true}
	switch h.Type {
	case packet.TypePublish:
		opts := packet.UnmarshalOptions{DiscardUserProperties: c.opts.DiscardUserProperties}
		if err := opts.Unmarshal(&in.publish, v, h.Flags, b); err != nil {
			return fmt.Errorf("PUBLISH: %w", err)
		}
		return c.handlePublish(cn, &in.publish)
	case packet.TypePuback, packet.TypePubrec, packet.TypePubrel, packet.TypePubcomp:
		in.ack.PacketType = h.Type
		// Taking an unlisted success code as malformed would close the
		// connection, and the resent PUBLISH would meet the same answer:
		// a reconnect loop duplicating the message (handleAck counts it).
		ackOpts := discardUser
		ackOpts.AcceptUnlistedAckSuccess = true
		ackOpts.DiscardUserProperties = c.resultWaiters.Load() == 0
		if err := ackOpts.Unmarshal(&in.ack, v, h.Flags, b); err != nil {
			return fmt.Errorf("%s: %w", h.Type, err)
		}
		return c.handleAck(cn, &in.ack)
	case packet.TypeSuback:
		if err := discardUser.Unmarshal(&in.suback, v, h.Flags, b); err != nil {
			return fmt.Errorf("SUBACK: %w", err)
		}
		c.completeSub(in.suback.PacketID, packet.TypeSubscribe, in.suback.ReasonCodes, in.suback.Properties.ReasonString)
	case packet.TypeUnsuback:
		if err := discardUser.Unmarshal(&in.unsuback, v, h.Flags, b); err != nil {
			return fmt.Errorf("UNSUBACK: %w", err)
		}
		c.completeSub(in.unsuback.PacketID, packet.TypeUnsubscribe, in.unsuback.ReasonCodes, in.unsuback.Properties.ReasonString)
	case packet.TypePingresp:
		if len(b) != 0 {
			return packet.ErrTrailingBytes
		}
		cn.pingSent.Store(0)
	case packet.TypeDisconnect:
		if err := in.disconnect.Unmarshal(v, h.Flags, b); err != nil {
			return fmt.Errorf("DISCONNECT: %w", err)
		}
		pr := &in.disconnect.Properties
		cn.close(&DisconnectError{
			Code:            in.disconnect.ReasonCode,
			ReasonString:    string(pr.ReasonString),
			ServerReference: string(pr.ServerReference),
			UserProperties:  userPropertiesFrom(pr.User),
		})
	case packet.TypeAuth:
		return c.handleAuth(cn, h, b)
	default:
		return fmt.Errorf("%w: server sent %s", packet.ProtocolError, h.Type)
	}
	return nil
}

// handlePublish resolves a received PUBLISH's topic and takes it in.
func (c *Client) handlePublish(cn *conn, p *packet.Publish) error {
	topic, err := cn.inAliases.resolve(p, c.opts.TopicAliasMaximum)
	if err != nil {
		return err
	}
	return c.receive(cn, QoS(p.QoS), p.PacketID, p.Dup, p, topic)
}

// dropOversized accounts for a PUBLISH the reader skipped for exceeding
// MaximumPacketSize. A QoS 1 or 2 one still takes its turn in the handler
// queue, to be acknowledged in order [MQTT-4.6.0-2], [MQTT-4.6.0-3], with
// the exactly-once state of any other: the server must not keep it in
// flight forever, where it would hold one of its slots for us (mosquitto
// has 20 by default) and come back at every resumed session.
func (c *Client) dropOversized(cn *conn, s oversizedPublish) error {
	c.stats.droppedOversized.Add(1)
	c.log.Info("skipped a message larger than MaximumPacketSize", "topic", s.topic, "size", s.size,
		"qos", int(s.qos), "maximumPacketSize", c.opts.MaximumPacketSize)
	if s.qos == AtMostOnce {
		return nil
	}
	return c.receive(cn, s.qos, s.id, false, nil, "")
}

// receive enforces flow control and exactly-once state for a received
// PUBLISH and queues it for the handlers, or only for its acknowledgement
// when p is nil.
func (c *Client) receive(cn *conn, qos QoS, id uint16, dup bool, p *packet.Publish, topic string) error {
	if qos > 0 {
		// Overshoot is counted and, by default, tolerated: see
		// Options.StrictReceiveMaximum for why the connection is not
		// closed, and enqueueFull for how the memory stays bounded.
		switch n := cn.inboundUnacked.Add(1); {
		case cn.version != V5 || n <= int32(c.opts.ReceiveMaximum):
		case c.opts.StrictReceiveMaximum:
			return fmt.Errorf("%w: %d unacknowledged, maximum %d", packet.ReceiveMaximumExceeded, n, c.opts.ReceiveMaximum)
		default:
			c.stats.receiveMaximumOvershoot.Add(1)
		}
	}
	item := inbound{id: id, qos: qos, cn: cn}
	if p != nil {
		item.msg = messageFrom(p, topic)
	}
	if qos > 0 {
		manual := item.msg != nil && c.wantsManualAck(item.msg)
		deliver, store, err := c.admitAcked(cn, &item, dup, manual)
		if !deliver {
			return err
		}
		if store {
			if err := c.store.PutInbound(id); err != nil {
				return err
			}
		}
	}
	if c.queue.tryPush(item) {
		return nil
	}
	if qos == AtMostOnce && c.opts.DropQoS0WhenFull {
		c.stats.droppedQoS0.Add(1)
		return nil
	}
	// The keepalive check knows the reader, not the link, is what is slow
	// meanwhile.
	cn.readerWaiting.Store(true)
	defer func() {
		cn.lastRecv.Store(time.Now().UnixNano())
		cn.readerWaiting.Store(false)
	}()
	if !c.enqueueFull(item) {
		// Not delivered: let the server's resend in a later session
		// deliver it.
		c.undeliver(item)
	}
	return nil
}

// enqueueFull queues a message that found the handler queue full. It
// reports false only when the client is stopping and a QoS 1 or 2 message
// was not queued.
//
// The rule: the reader waits for room, which is back-pressure through TCP
// to the server, only while no caller waits for a packet from the server.
// Acknowledgements arrive behind the messages, so a reader waiting for the
// handlers would keep a handler that publishes at QoS 1 (Client.Respond)
// from ever seeing its PUBACK, and nothing would move again. While a
// caller waits (c.awaiting > 0, checked again whenever one starts to) the
// reader reads on, and then:
//   - a QoS 0 message is dropped and counted (Stats.DroppedQoS0), which
//     is all QoS 0 promises, and what keeps the memory bounded: only QoS 0
//     has no bound in the protocol;
//   - a QoS 1 or 2 message is queued beyond the bound: it is never
//     dropped. The server's flow control bounds them (our Receive Maximum
//     under v5, tolerated overshoot included; under 3.1.1 the server's own
//     in-flight limit, mosquitto's max_inflight_messages).
//
// The wait outlives a lost connection on purpose: the message was
// received, and for QoS 2 it is already recorded as delivered, so dropping
// it here would turn exactly-once into at-most-once.
func (c *Client) enqueueFull(item inbound) bool {
	defer c.queue.unpark()
	for {
		room := c.queue.room()
		if c.queue.tryPush(item) {
			return true
		}
		if c.awaiting.Load() > 0 {
			if item.qos == AtMostOnce {
				c.stats.droppedQoS0.Add(1)
				return true
			}
			return c.queue.pushOver(item)
		}
		select {
		case <-room:
		case <-item.cn.ctx.Done():
			return false
		}
	}
}

// forgetInbound undoes the exactly-once record of a QoS 2 message that was
// not delivered after all, so that the server's resend is.
func (c *Client) forgetInbound(id uint16) {
	c.mu.Lock()
	delete(c.inboundQoS2, id)
	c.mu.Unlock()
	if err := c.store.DeleteInbound(id); err != nil {
		c.log.Error(err, "deleting from the session store", "packetID", id)
	}
}

// startDispatcher runs a dispatcher for a queue that has just received an
// item with none running. The queue calls it under its lock, before its
// close lets Disconnect wait for the dispatcher.
func (c *Client) startDispatcher() {
	c.dispatchers.Add(1)
	go c.dispatcher()
}

// dispatch runs handlers in arrival order and acknowledges QoS 1 and 2
// messages once their handler has returned, on the connection they came
// on, unless the application acknowledges them (Message.Ack).
func (c *Client) dispatch() {
	defer c.dispatchers.Done()
	for {
		item, ok := c.queue.pop()
		if !ok {
			return
		}
		if item.msg != nil {
			c.router.route(item.msg, c.opts.DefaultHandler)
		}
		if item.qos > 0 && (item.msg == nil || item.msg.ack == nil) {
			c.mu.Lock()
			item.cn.ackReady(item.seq)
			c.mu.Unlock()
		}
	}
}
