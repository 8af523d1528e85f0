package mqtt

import (
	"context"
	"fmt"
	"slices"

	"github.com/heraldiot/herald/mqtt/packet"
)

// RetainHandling says when a v5 server sends retained messages for a new
// subscription.
type RetainHandling byte

// Retain handling options. (3.8.3.1)
const (
	SendRetained      RetainHandling = 0
	SendRetainedIfNew RetainHandling = 1
	DoNotSendRetained RetainHandling = 2
)

// Subscription is a topic filter with its options.
type Subscription struct {
	Filter string
	QoS    QoS
	// NoLocal (v5): do not receive our own publications.
	NoLocal bool
	// RetainAsPublished (v5): keep the RETAIN flag of forwarded messages.
	RetainAsPublished bool
	RetainHandling    RetainHandling
}

// SubscribeRequest is one SUBSCRIBE: filters sharing a handler and, under
// v5, a subscription identifier and user properties.
type SubscribeRequest struct {
	Subscriptions []Subscription
	// Handler receives the messages that match; nil leaves them to
	// Options.DefaultHandler.
	Handler Handler
	// ID is the v5 subscription identifier (1–268,435,455; 0 for none).
	ID             uint32
	UserProperties []UserProperty
	// NoRenew leaves the subscription out of those the client renews on a
	// new connection whose server kept no session: the caller subscribes
	// again itself, from OnConnect or later. For callers that must act
	// before a server replays retained messages, which a renewal would
	// start at once.
	NoRenew bool
	// ManualAck leaves the acknowledgement of the QoS 1 and 2 messages
	// Handler receives to the application, which calls Message.Ack when it
	// is done with each, instead of the handler's return acknowledging it
	// (see Message.Ack for the order and reconnect rules, and
	// Options.ManualAck for all subscriptions). A message that also
	// reaches handlers without it is acknowledged at Ack all the same.
	// Whether a message is acknowledged by hand is decided on its arrival.
	ManualAck bool
}

// subscribeRecord remembers a successful SUBSCRIBE to repeat it when a
// server has lost our session.
type subscribeRecord struct {
	req SubscribeRequest
}

// Subscribe subscribes h to the filters. It returns a *SubscribeError if the
// server refused any of them; the others stay subscribed.
func (c *Client) Subscribe(ctx context.Context, h Handler, subs ...Subscription) error {
	_, err := c.SubscribeWith(ctx, SubscribeRequest{Subscriptions: subs, Handler: h})
	return err
}

// SubscribeWith sends one SUBSCRIBE and returns the server's reason codes
// (the granted QoS, or a failure) in the order of req.Subscriptions.
// Handlers are in place before SUBSCRIBE goes out, so retained messages that
// follow the SUBACK are routed.
func (c *Client) SubscribeWith(ctx context.Context, req SubscribeRequest) ([]ReasonCode, error) {
	if len(req.Subscriptions) == 0 {
		return nil, packet.ErrNoFilters
	}
	p := &packet.Subscribe{Subscriptions: make([]packet.Subscription, len(req.Subscriptions))}
	for i, s := range req.Subscriptions {
		if err := packet.ValidTopicFilter([]byte(s.Filter)); err != nil {
			return nil, fmt.Errorf("subscribe %q: %w", s.Filter, err)
		}
		p.Subscriptions[i] = packet.Subscription{
			Filter: []byte(s.Filter), QoS: byte(s.QoS), NoLocal: s.NoLocal,
			RetainAsPublished: s.RetainAsPublished, RetainHandling: byte(s.RetainHandling),
		}
	}
	if err := c.checkSubscribe(&req); err != nil {
		return nil, err
	}
	if c.opts.Version == V5 {
		if req.ID != 0 {
			p.Properties.SubscriptionIDs = []uint32{req.ID}
		}
		p.Properties.User = packetUserProperties(req.UserProperties)
	}
	// The router matches by identifier only when the server was told it:
	// under 3.1.1 no message will ever carry one.
	routeID := req.ID
	if c.opts.Version != V5 {
		routeID = 0
	}
	owner := c.router.newOwner()
	for _, s := range req.Subscriptions {
		c.router.add(s.Filter, routeID, req.Handler, owner, req.ManualAck && req.Handler != nil)
	}
	codes, reason, err := c.request(ctx, nil, p, packet.TypeSubscribe)
	if err != nil {
		for _, s := range req.Subscriptions {
			c.router.remove(s.Filter)
		}
		return nil, err
	}
	if len(codes) != len(req.Subscriptions) {
		return codes, fmt.Errorf("%w: SUBACK has %d codes for %d filters", packet.ProtocolError, len(codes), len(req.Subscriptions))
	}
	var refused *SubscribeError
	kept := req
	kept.Subscriptions = nil
	for i, code := range codes {
		s := req.Subscriptions[i]
		if code.IsError() {
			c.router.remove(s.Filter)
			if refused == nil {
				refused = &SubscribeError{ReasonString: reason}
			}
			refused.Filters = append(refused.Filters, s.Filter)
			refused.Codes = append(refused.Codes, code)
			continue
		}
		kept.Subscriptions = append(kept.Subscriptions, s)
	}
	if len(kept.Subscriptions) > 0 {
		c.mu.Lock()
		c.forgetFilters(kept.Subscriptions)
		if !req.NoRenew {
			c.subs = append(c.subs, &subscribeRecord{req: kept})
		}
		c.mu.Unlock()
	}
	if refused != nil {
		return codes, refused
	}
	return codes, nil
}

// checkSubscribe applies what the server announced it supports. (3.2.2.3.11–13)
func (c *Client) checkSubscribe(req *SubscribeRequest) error {
	c.mu.Lock()
	ack := c.connack
	c.mu.Unlock()
	if ack == nil {
		return nil
	}
	if req.ID != 0 && !ack.SubIDAvailable {
		return fmt.Errorf("%w: subscription identifiers", ErrFeatureNotSupported)
	}
	for _, s := range req.Subscriptions {
		_, _, shared := packet.SplitShared([]byte(s.Filter))
		if shared && !ack.SharedSubAvailable {
			return fmt.Errorf("%w: shared subscriptions (%q)", ErrFeatureNotSupported, s.Filter)
		}
		if !ack.WildcardAvailable && slices.ContainsFunc([]byte(s.Filter), func(b byte) bool { return b == '+' || b == '#' }) {
			return fmt.Errorf("%w: wildcard subscriptions (%q)", ErrFeatureNotSupported, s.Filter)
		}
	}
	return nil
}

// forgetFilters drops filters from earlier records, since a new
// subscription to the same filter replaces the old one. c.mu is held.
func (c *Client) forgetFilters(subs []Subscription) {
	for _, rec := range c.subs {
		rec.req.Subscriptions = slices.DeleteFunc(rec.req.Subscriptions, func(old Subscription) bool {
			return slices.ContainsFunc(subs, func(s Subscription) bool { return s.Filter == old.Filter })
		})
	}
	c.subs = slices.DeleteFunc(c.subs, func(rec *subscribeRecord) bool { return len(rec.req.Subscriptions) == 0 })
}

// Unsubscribe removes subscriptions and their handlers. It returns a
// *SubscribeError if the server refused any of the filters.
func (c *Client) Unsubscribe(ctx context.Context, filters ...string) error {
	_, err := c.UnsubscribeWith(ctx, UnsubscribeRequest{Filters: filters})
	return err
}

// UnsubscribeRequest is one UNSUBSCRIBE: filters and, under v5, user
// properties.
type UnsubscribeRequest struct {
	Filters        []string
	UserProperties []UserProperty
}

// UnsubscribeWith sends one UNSUBSCRIBE and returns the server's reason
// codes in the order of req.Filters: under v5 Success,
// packet.NoSubscriptionExisted (0x11, also a success) or a failure, which
// also makes the error a *SubscribeError naming the refused filters. A
// 3.1.1 UNSUBACK carries no codes, and every filter is reported as
// Success. The handlers of the filters are removed either way.
func (c *Client) UnsubscribeWith(ctx context.Context, req UnsubscribeRequest) ([]ReasonCode, error) {
	filters := req.Filters
	if len(filters) == 0 {
		return nil, packet.ErrNoFilters
	}
	p := &packet.Unsubscribe{}
	for _, f := range filters {
		if err := packet.ValidTopicFilter([]byte(f)); err != nil {
			return nil, fmt.Errorf("unsubscribe %q: %w", f, err)
		}
		p.Filters = append(p.Filters, []byte(f))
	}
	if c.opts.Version == V5 {
		p.Properties.User = packetUserProperties(req.UserProperties)
	}
	codes, reason, err := c.request(ctx, nil, p, packet.TypeUnsubscribe)
	if err != nil {
		return nil, err
	}
	if c.opts.Version != V5 {
		codes = make([]ReasonCode, len(filters)) // all Success
	}
	c.mu.Lock()
	subs := make([]Subscription, len(filters))
	for i, f := range filters {
		subs[i].Filter = f
		c.router.remove(f)
	}
	c.forgetFilters(subs)
	c.mu.Unlock()
	if len(codes) != len(filters) {
		return codes, fmt.Errorf("%w: UNSUBACK has %d codes for %d filters", packet.ProtocolError, len(codes), len(filters))
	}
	var refused *SubscribeError
	for i, code := range codes {
		if code.IsError() {
			if refused == nil {
				refused = &SubscribeError{ReasonString: reason}
			}
			refused.Filters = append(refused.Filters, filters[i])
			refused.Codes = append(refused.Codes, code)
		}
	}
	if refused != nil {
		return codes, refused
	}
	return codes, nil
}

// resubscribeLocked queues the recorded SUBSCRIBE on a new connection
// whose server kept no session. It goes into the write buffer ahead of the
// publishes being resent, so the server has the subscriptions before it
// routes them, and the client receives its own in-flight messages on
// topics it subscribes to. Nobody waits for the SUBACK; refusals are
// logged when it arrives. c.mu is held.
func (c *Client) resubscribeLocked(cn *conn, rec *subscribeRecord) {
	p := &packet.Subscribe{}
	for _, s := range rec.req.Subscriptions {
		p.Subscriptions = append(p.Subscriptions, packet.Subscription{
			Filter: []byte(s.Filter), QoS: byte(s.QoS), NoLocal: s.NoLocal,
			RetainAsPublished: s.RetainAsPublished, RetainHandling: byte(s.RetainHandling),
		})
	}
	if c.opts.Version == V5 {
		if rec.req.ID != 0 {
			p.Properties.SubscriptionIDs = []uint32{rec.req.ID}
		}
		p.Properties.User = packetUserProperties(rec.req.UserProperties)
	}
	id := c.allocID()
	pd := c.newPending(packet.TypeSubscribe)
	pd.abandoned, pd.resubscribe, pd.gen = true, rec, cn.gen
	p.PacketID = id
	if err := cn.queueBeforeStart(p); err != nil {
		c.recycle(pd)
		c.log.Error(err, "resubscribing")
		return
	}
	c.pending[id] = pd
}

// request sends a SUBSCRIBE or UNSUBSCRIBE on the current connection (or
// on cn) and waits for its acknowledgement. If the connection ends first,
// it fails with ErrConnectionLost (failRequestsLocked).
func (c *Client) request(ctx context.Context, cn *conn, p packet.Packet, kind packet.Type) ([]ReasonCode, string, error) {
	c.beginAwait()
	defer c.endAwait()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, "", ErrClosed
	}
	if cn == nil {
		cn = c.conn
	}
	if cn == nil {
		c.mu.Unlock()
		return nil, "", ErrNotConnected
	}
	id := c.allocID()
	pd := c.newPending(kind)
	pd.gen = cn.gen
	c.pending[id] = pd
	switch sp := p.(type) {
	case *packet.Subscribe:
		sp.PacketID = id
	case *packet.Unsubscribe:
		sp.PacketID = id
	}
	err := cn.writePacket(p)
	if err != nil {
		delete(c.pending, id)
		c.recycle(pd)
		c.mu.Unlock()
		return nil, "", err
	}
	c.mu.Unlock()
	return c.waitResult(ctx, id, pd)
}

// completeSub ends a SUBSCRIBE or UNSUBSCRIBE flow with the server's codes.
func (c *Client) completeSub(id uint16, kind packet.Type, codes []ReasonCode, reason []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.pending[id]
	if p == nil || p.kind != kind {
		c.log.V(1).Info("acknowledgement for an unknown request", "kind", kind.String(), "packetID", id)
		return
	}
	if rec := p.resubscribe; rec != nil {
		for i, code := range codes {
			if code.IsError() && i < len(rec.req.Subscriptions) {
				c.log.Info("resubscribe refused", "filter", rec.req.Subscriptions[i].Filter, "reason", code.String())
			}
		}
	}
	p.codes = append(p.codes[:0], codes...)
	p.reason = string(reason)
	c.completeLocked(id, nil)
}

// failRequestsLocked ends the SUBSCRIBE and UNSUBSCRIBE flows sent on the
// connection gen, which has ended, with err. The server answers them on
// that connection or never, and MQTT has no resending them on the next
// (unlike PUBLISH): the caller knows whether to try again. A SUBSCRIBE the
// server did carry out before the connection ended stays in its session;
// subscribing again is harmless. c.mu is held.
func (c *Client) failRequestsLocked(gen uint64, err error) {
	for id, p := range c.pending {
		if (p.kind == packet.TypeSubscribe || p.kind == packet.TypeUnsubscribe) && p.gen == gen {
			c.completeLocked(id, err)
		}
	}
}
