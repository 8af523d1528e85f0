package mqtt

import (
	"fmt"
	"time"

	"github.com/heraldiot/herald/mqtt/packet"
)

// inbound is a received message on its way to the handlers, with what is
// needed to acknowledge it afterwards.
type inbound struct {
	msg *Message
	id  uint16
	cn  *conn // the connection it arrived on; acks go only there
}

// handlePacket acts on one packet from the reader. b aliases the read
// buffer and is only valid during the call. A returned error closes the
// connection with the error's reason code.
func (c *Client) handlePacket(cn *conn, in *inboundPackets, h packet.Header, b []byte) error {
	v := cn.version
	switch h.Type {
	case packet.TypePublish:
		if err := in.publish.Unmarshal(v, h.Flags, b); err != nil {
			return fmt.Errorf("PUBLISH: %w", err)
		}
		return c.handlePublish(cn, &in.publish)
	case packet.TypePuback, packet.TypePubrec, packet.TypePubrel, packet.TypePubcomp:
		in.ack.PacketType = h.Type
		if err := in.ack.Unmarshal(v, h.Flags, b); err != nil {
			return fmt.Errorf("%s: %w", h.Type, err)
		}
		return c.handleAck(cn, &in.ack)
	case packet.TypeSuback:
		if err := in.suback.Unmarshal(v, h.Flags, b); err != nil {
			return fmt.Errorf("SUBACK: %w", err)
		}
		c.completeSub(in.suback.PacketID, packet.TypeSubscribe, in.suback.ReasonCodes, in.suback.Properties.ReasonString)
	case packet.TypeUnsuback:
		if err := in.unsuback.Unmarshal(v, h.Flags, b); err != nil {
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
		})
	case packet.TypeAuth:
		return c.handleAuth(cn, h, b)
	default:
		return fmt.Errorf("%w: server sent %s", packet.ProtocolError, h.Type)
	}
	return nil
}

// handlePublish enforces flow control and exactly-once state for a received
// PUBLISH and queues it for the handlers.
func (c *Client) handlePublish(cn *conn, p *packet.Publish) error {
	topic, err := cn.inAliases.resolve(p, c.opts.TopicAliasMaximum)
	if err != nil {
		return err
	}
	if p.QoS > 0 {
		// The hard bound is the handler queue, the memory we protect; see
		// Options.StrictReceiveMaximum for why it is not ReceiveMaximum.
		limit := int32(c.opts.HandlerQueue)
		if c.opts.StrictReceiveMaximum {
			limit = int32(c.opts.ReceiveMaximum)
		}
		switch n := cn.inboundUnacked.Add(1); {
		case cn.version != V5:
		case n > limit:
			return fmt.Errorf("%w: %d unacknowledged, maximum %d", packet.ReceiveMaximumExceeded, n, c.opts.ReceiveMaximum)
		case n > int32(c.opts.ReceiveMaximum):
			c.stats.receiveMaximumOvershoot.Add(1)
		}
	}
	if p.QoS == 2 {
		c.mu.Lock()
		_, seen := c.inboundQoS2[p.PacketID]
		if !seen {
			c.inboundQoS2[p.PacketID] = struct{}{}
		}
		c.mu.Unlock()
		if seen {
			// Delivered already; the server did not see our PUBREC.
			cn.writeAck(packet.TypePubrec, p.PacketID)
			return nil
		}
		if err := c.store.PutInbound(p.PacketID); err != nil {
			return err
		}
	}
	item := inbound{msg: messageFrom(p, topic), id: p.PacketID, cn: cn}
	if c.queue.tryPush(item) {
		return nil
	}
	if p.QoS == 0 && c.opts.DropQoS0WhenFull {
		c.stats.droppedQoS0.Add(1)
		return nil
	}
	// Back-pressure: wait for the handlers. The keepalive check knows the
	// reader, not the link, is what is slow meanwhile.
	cn.readerWaiting.Store(true)
	defer func() {
		cn.lastRecv.Store(time.Now().UnixNano())
		cn.readerWaiting.Store(false)
	}()
	// The wait outlives a lost connection on purpose: the message was
	// received, and for QoS 2 it is already recorded as delivered, so
	// dropping it here would turn exactly-once into at-most-once.
	if !c.queue.push(item, c.ctx.Done()) {
		if p.QoS == 2 {
			// Not delivered: let the server's resend in a later session
			// deliver it.
			c.mu.Lock()
			delete(c.inboundQoS2, p.PacketID)
			c.mu.Unlock()
			_ = c.store.DeleteInbound(p.PacketID)
		}
	}
	return nil
}

// startDispatcher runs a dispatcher for a queue that has just received an
// item with none running. The reader calls it, before its connection's end
// lets Disconnect wait for the dispatcher.
func (c *Client) startDispatcher() {
	c.wg.Add(1)
	go c.dispatcher()
}

// dispatch runs handlers in arrival order and acknowledges QoS 1 and 2
// messages once their handler has returned, on the connection they came on.
func (c *Client) dispatch() {
	defer c.wg.Done()
	for {
		item, ok := c.queue.pop()
		if !ok {
			return
		}
		c.router.route(item.msg, c.opts.DefaultHandler)
		switch item.msg.QoS {
		case AtLeastOnce:
			// Count the message as answered before the PUBACK can reach
			// the server and free its slot for the next one.
			if item.cn.inboundUnacked.Add(-1) < 0 {
				item.cn.inboundUnacked.Store(0)
			}
			item.cn.writeAck(packet.TypePuback, item.id)
		case ExactlyOnce:
			item.cn.writeAck(packet.TypePubrec, item.id)
		}
	}
}
