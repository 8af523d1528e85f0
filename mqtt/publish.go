package mqtt

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/heraldiot/herald/mqtt/packet"
)

// pending is an outbound flow awaiting its acknowledgement. Values are
// recycled, so a steady stream of publishes allocates nothing.
type pending struct {
	kind      packet.Type // TypePublish, TypeSubscribe or TypeUnsubscribe
	qos       QoS
	topic     string
	pubrec    bool   // QoS 2: PUBREC received, PUBREL sent
	abandoned bool   // the caller stopped waiting
	gen       uint64 // SUBSCRIBE and UNSUBSCRIBE: the connection it was sent on
	done      chan error
	codes     []ReasonCode // SUBACK/UNSUBACK result
	reason    string       // v5 reason string of the ack
	// resubscribe is the subscription a SUBSCRIBE repeats after the
	// server lost the session, for logging refusals.
	resubscribe *subscribeRecord
	// wantResult: a PublishWithResult caller waits, and result holds
	// what the PUBACK or PUBREC said.
	wantResult bool
	result     PublishResult
}

// PublishResult is what the server answered to a QoS 1 or 2 publish: the
// PUBACK's reason code and properties at QoS 1, the PUBREC's at QoS 2. It
// is zero (Success) at QoS 0 and under MQTT 3.1.1, whose acknowledgements
// carry nothing.
type PublishResult struct {
	// ReasonCode is Success, a success with news such as
	// packet.NoMatchingSubscribers (0x10: nobody subscribes to the topic,
	// a server that knows it says so), or a failure (0x80 and above), with
	// which the publish also returns a *PublishError.
	ReasonCode ReasonCode
	// ReasonString and UserProperties are the acknowledgement's (v5).
	ReasonString   string
	UserProperties []UserProperty
}

// Publish sends m and returns when its QoS flow completes: at once for QoS
// 0, at PUBACK for QoS 1, at PUBCOMP for QoS 2. A server refusal (v5) is a
// *PublishError. QoS 1 and 2 messages published while disconnected wait for
// the next connection; if ctx ends first, Publish returns ctx.Err() but the
// message stays in the session and is still delivered.
//
// With Options.DisableAutoReconnect no connection comes by itself, so
// nothing waits for one: while disconnected Publish fails with
// ErrNotConnected at every QoS, and a QoS 1 or 2 publish in flight when the
// connection is lost returns an error wrapping ErrConnectionLost. Like one
// whose ctx ended, its message stays in the session, and goes out again if
// Connect is called (until Disconnect).
func (c *Client) Publish(ctx context.Context, m *Message) error {
	_, err := c.publish(ctx, m, false)
	return err
}

// PublishWithResult is Publish returning, besides the error, what the
// server's acknowledgement said (v5): its reason code, such as
// packet.NoMatchingSubscribers, reason string and user properties. A
// refusal returns both the result and a *PublishError.
func (c *Client) PublishWithResult(ctx context.Context, m *Message) (PublishResult, error) {
	// Acknowledgements are decoded with their user properties while a
	// caller wants them.
	c.resultWaiters.Add(1)
	defer c.resultWaiters.Add(-1)
	return c.publish(ctx, m, true)
}

func (c *Client) publish(ctx context.Context, m *Message, wantResult bool) (PublishResult, error) {
	if m.QoS > ExactlyOnce {
		return PublishResult{}, fmt.Errorf("mqtt: invalid QoS %d", m.QoS)
	}
	if m.QoS == AtMostOnce {
		return PublishResult{}, c.publishQoS0(m)
	}
	c.beginAwait()
	defer c.endAwait()
	c.mu.Lock()
	if err := c.checkPublish(m); err != nil {
		c.mu.Unlock()
		return PublishResult{}, err
	}
	stopped := c.ctx.Done() // this start of the client ends at Disconnect
	for c.inflight >= c.quota {
		c.mu.Unlock()
		select {
		case <-c.quotaFree:
		case <-ctx.Done():
			return PublishResult{}, ctx.Err()
		case <-stopped:
			return PublishResult{}, ErrClosed
		}
		c.mu.Lock()
		if err := c.checkPublish(m); err != nil {
			// Pass the wake on: the next waiter fails the same way.
			c.passQuota()
			c.mu.Unlock()
			return PublishResult{}, err
		}
	}
	c.inflight++
	if c.inflight < c.quota {
		c.passQuota()
	}
	id := c.allocID()
	p := c.newPending(packet.TypePublish)
	p.qos, p.topic, p.wantResult = m.QoS, m.Topic, wantResult
	c.pending[id] = p
	c.fillPublishLocked(m, id)
	if err := c.sendPublishLocked(id); err != nil {
		delete(c.pending, id)
		c.releaseQuota()
		c.recycle(p)
		c.mu.Unlock()
		return PublishResult{}, err
	}
	c.mu.Unlock()
	done, err := c.await(ctx, id, p)
	if !done {
		return PublishResult{}, err
	}
	c.mu.Lock()
	res := p.result
	c.recycle(p)
	c.mu.Unlock()
	return res, err
}

// checkPublish applies what the server announced in CONNACK, and refuses
// a QoS 1 or 2 publish that would wait for a connection nothing will make.
// c.mu is held.
func (c *Client) checkPublish(m *Message) error {
	if c.closed {
		return ErrClosed
	}
	if c.conn == nil && c.opts.DisableAutoReconnect {
		return ErrNotConnected
	}
	if ack := c.connack; ack != nil {
		if m.QoS > ack.MaximumQoS {
			return ErrQoSNotSupported // [MQTT-3.2.2-11]
		}
		if m.Retain && !ack.RetainAvailable {
			return ErrRetainNotSupported // [MQTT-3.2.2-14]
		}
	}
	if m.TopicAlias != 0 {
		return checkCallerAlias(m.TopicAlias, c.opts.Version, c.connack, c.opts.OutboundTopicAliases)
	}
	return nil
}

func (c *Client) publishQoS0(m *Message) error {
	c.mu.Lock()
	if err := c.checkPublish(m); err != nil {
		c.mu.Unlock()
		return err
	}
	cn := c.conn
	if cn == nil {
		c.mu.Unlock()
		return ErrNotConnected
	}
	c.fillPublishLocked(m, 0)
	buffered, err := cn.queuePublish(c.pub, c.pubAlias, nil)
	c.mu.Unlock()
	if err != nil {
		return err
	}
	cn.waitDrained(buffered, cn.ctx.Done())
	return nil
}

// fillPublishLocked sets the client's reusable PUBLISH from m; c.mu is
// held. It is made at the first publish, since many clients only subscribe.
func (c *Client) fillPublishLocked(m *Message, id uint16) {
	if c.pub == nil {
		c.pub = new(packet.Publish)
	}
	c.user = fillPublish(c.pub, m, c.opts.Version, c.user)
	c.pub.PacketID = id
	c.pubAlias = 0
	if c.opts.Version == V5 {
		c.pubAlias = m.TopicAlias
	}
}

// sendPublishLocked encodes c.pub into the connection's write buffer, or
// only into the store while disconnected, and records it in the store.
// Holding c.mu keeps this atomic with a reconnect's resend, so a message is
// never stored after the resend has read the store yet never sent. A
// connection that fills its write buffer ends here, and the message waits
// in the store for the next one, like one published while disconnected.
func (c *Client) sendPublishLocked(id uint16) error {
	if cn := c.conn; cn != nil {
		_, err := cn.queuePublish(c.pub, c.pubAlias, func(encoded []byte, aliased bool) error {
			if aliased {
				var err error
				if c.scratch, err = c.pub.Append(c.scratch[:0], c.opts.Version); err != nil {
					return err
				}
				encoded = c.scratch
			}
			return c.store.PutOutbound(id, encoded)
		})
		if !errors.Is(err, ErrWriteBufferFull) && !errors.Is(err, ErrNotConnected) {
			return err
		}
	}
	var err error
	c.scratch, err = c.pub.Append(c.scratch[:0], c.opts.Version)
	if err != nil {
		return err
	}
	if ack := c.connack; ack != nil && ack.MaximumPacketSize > 0 && len(c.scratch) > int(ack.MaximumPacketSize) {
		return ErrPacketTooLarge
	}
	return c.store.PutOutbound(id, c.scratch)
}

// await blocks until the flow under id completes and returns its error;
// the caller then reads p's results and recycles it, under c.mu. When ctx
// ends first, await reports done false with ctx's error: p stays in the
// session then, and its completion recycles it.
func (c *Client) await(ctx context.Context, id uint16, p *pending) (done bool, err error) {
	select {
	case err = <-p.done:
	case <-ctx.Done():
		c.mu.Lock()
		if c.pending[id] == p {
			p.abandoned = true
			c.mu.Unlock()
			return false, ctx.Err()
		}
		c.mu.Unlock()
		err = <-p.done
	}
	return true, err
}

// waitResult waits for a SUBSCRIBE or UNSUBSCRIBE flow and returns the
// codes and reason string of its SUBACK or UNSUBACK.
func (c *Client) waitResult(ctx context.Context, id uint16, p *pending) ([]ReasonCode, string, error) {
	done, err := c.await(ctx, id, p)
	if !done {
		return nil, "", err
	}
	c.mu.Lock()
	codes, reason := slices.Clone(p.codes), p.reason
	c.recycle(p)
	c.mu.Unlock()
	return codes, reason, err
}

// beginAwait counts a caller that is about to wait for a packet only the
// reader can deliver, and wakes a reader waiting for room in the handler
// queue so that it reads on (see enqueueFull). endAwait undoes it.
func (c *Client) beginAwait() {
	c.awaiting.Add(1)
	c.queue.wake()
}

func (c *Client) endAwait() { c.awaiting.Add(-1) }

// releasePublishersLocked returns err to every caller waiting for a
// publish flow, leaving the flow itself in the session as an abandoned
// one: its packet identifier stays reserved, and the next connection
// resends it or receives its acknowledgement. c.mu is held.
func (c *Client) releasePublishersLocked(err error) {
	for id, p := range c.pending {
		if p.kind != packet.TypePublish || p.abandoned {
			continue
		}
		// The caller recycles p when it has the error, so the session
		// keeps a copy.
		kept := c.newPending(packet.TypePublish)
		kept.qos, kept.topic, kept.pubrec, kept.abandoned = p.qos, p.topic, p.pubrec, true
		c.pending[id] = kept
		p.done <- err
	}
	// Publishers waiting for a quota slot fail one after another (checkPublish).
	c.passQuota()
}

// allocID returns a packet identifier not in use. c.mu is held; there is
// always one free because in-flight flows are bounded by the quota.
func (c *Client) allocID() uint16 {
	for {
		c.nextID++
		if c.nextID == 0 {
			c.nextID = 1
		}
		if _, used := c.pending[c.nextID]; !used {
			return c.nextID
		}
	}
}

func (c *Client) newPending(kind packet.Type) *pending {
	var p *pending
	if n := len(c.freeList); n > 0 {
		p, c.freeList = c.freeList[n-1], c.freeList[:n-1]
	} else {
		p = &pending{done: make(chan error, 1)}
	}
	p.kind = kind
	return p
}

func (c *Client) recycle(p *pending) {
	*p = pending{done: p.done, codes: p.codes[:0]}
	c.freeList = append(c.freeList, p)
}

// passQuota wakes one publisher waiting for a slot; it passes the wake on
// if it finds room left over.
func (c *Client) passQuota() {
	select {
	case c.quotaFree <- struct{}{}:
	default:
	}
}

func (c *Client) releaseQuota() {
	c.inflight--
	c.passQuota()
}

// completeLocked ends the flow under id with err. c.mu is held.
func (c *Client) completeLocked(id uint16, err error) {
	p := c.pending[id]
	if p == nil {
		return
	}
	delete(c.pending, id)
	if p.kind == packet.TypePublish {
		c.releaseQuota()
		if serr := c.store.DeleteOutbound(id); serr != nil {
			c.log.Error(serr, "deleting from the session store", "packetID", id)
		}
	}
	if p.abandoned {
		c.recycle(p)
		return
	}
	p.done <- err
}

// handleAck processes PUBACK, PUBREC, PUBREL and PUBCOMP.
func (c *Client) handleAck(cn *conn, a *packet.Ack) error {
	if code := a.ReasonCode; code != packet.Success && !code.IsError() && !code.ValidFor(a.PacketType) {
		// Decoded with AcceptUnlistedAckSuccess: a success all the same.
		c.stats.unlistedAckReasons.Add(1)
		c.log.V(1).Info("acknowledgement with a reason code its packet type does not list, taken as success",
			"type", a.PacketType.String(), "packetID", a.PacketID, "reasonCode", byte(code))
	}
	switch a.PacketType {
	case packet.TypePuback, packet.TypePubcomp:
		c.mu.Lock()
		p := c.pending[a.PacketID]
		if p == nil || p.kind != packet.TypePublish {
			c.mu.Unlock()
			c.log.V(1).Info("acknowledgement for an unknown packet", "type", a.PacketType.String(), "packetID", a.PacketID)
			return nil
		}
		wantQoS := AtLeastOnce
		if a.PacketType == packet.TypePubcomp {
			wantQoS = ExactlyOnce
		}
		if p.qos != wantQoS {
			c.mu.Unlock()
			return fmt.Errorf("%w: %s for a QoS %d publish", packet.ProtocolError, a.PacketType, p.qos)
		}
		if a.PacketType == packet.TypePuback {
			p.noteResult(a)
		}
		c.completeLocked(a.PacketID, c.publishResult(p, a))
		c.mu.Unlock()
	case packet.TypePubrec:
		c.mu.Lock()
		p := c.pending[a.PacketID]
		if p == nil || p.kind != packet.TypePublish || p.qos != ExactlyOnce {
			c.mu.Unlock()
			// Answer anyway so the server can end its flow.
			cn.writeAckReason(packet.TypePubrel, a.PacketID, packet.PacketIdentifierNotFound)
			return nil
		}
		p.noteResult(a)
		if a.ReasonCode.IsError() {
			c.completeLocked(a.PacketID, c.publishResult(p, a))
			c.mu.Unlock()
			return nil
		}
		p.pubrec = true
		// The PUBREL replaces the PUBLISH in the store, so a resumed
		// session resends the PUBREL, not the message. [MQTT-4.3.3-5]
		rel := [4]byte{byte(packet.TypePubrel)<<4 | 0x02, 2, byte(a.PacketID >> 8), byte(a.PacketID)}
		err := c.store.PutOutbound(a.PacketID, rel[:])
		c.mu.Unlock()
		if err != nil {
			return err
		}
		cn.writeRaw(rel[:])
	case packet.TypePubrel:
		c.mu.Lock()
		_, known := c.inboundQoS2[a.PacketID]
		delete(c.inboundQoS2, a.PacketID)
		c.mu.Unlock()
		code := packet.Success
		if known {
			if err := c.store.DeleteInbound(a.PacketID); err != nil {
				return err
			}
		} else {
			code = packet.PacketIdentifierNotFound
		}
		if cn.inboundUnacked.Add(-1) < 0 {
			cn.inboundUnacked.Store(0)
		}
		cn.writeAckReason(packet.TypePubcomp, a.PacketID, code)
	}
	return nil
}

// noteResult keeps what a PUBACK or PUBREC said for a PublishWithResult
// caller; Publish pays nothing for it. c.mu is held.
func (p *pending) noteResult(a *packet.Ack) {
	if !p.wantResult {
		return
	}
	p.result = PublishResult{
		ReasonCode:     a.ReasonCode,
		ReasonString:   string(a.Properties.ReasonString),
		UserProperties: userPropertiesFrom(a.Properties.User),
	}
}

func (c *Client) publishResult(p *pending, a *packet.Ack) error {
	if !a.ReasonCode.IsError() {
		return nil
	}
	return &PublishError{Topic: p.topic, Code: a.ReasonCode, ReasonString: string(a.Properties.ReasonString)}
}
