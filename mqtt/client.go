package mqtt

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"

	"github.com/heraldiot/herald/mqtt/packet"
)

// Client is an MQTT client holding one session. Its methods are safe for
// concurrent use.
//
// Concurrency. Locks are taken in this order, and none is taken while a
// later one is held:
//
//  1. Client.mu: the session (pending flows and their packet
//     identifiers, the quota, inbound QoS 2 identifiers, acknowledgements
//     held for Message.Ack, the connection, the subscriptions to renew,
//     started, closed and the lifetime context).
//  2. conn.acks.mu: one connection's acknowledgements owed, in arrival
//     order (ack.go).
//  3. conn.wmu: one connection's write buffer and its closed flag,
//     touched only by conn's own methods (queuePublish, queueResend,
//     writePacket, writeRaw, ...), never by the Client directly.
//  4. the Store's own lock: Store methods are called under any of them.
//
// router.mu and handlerQueue.mu are leaves: nothing else is locked while
// one is held, and no user code runs under either (the queue starts a
// dispatcher goroutine under its lock, which takes no lock). conn.close
// takes wmu, so it is called without wmu held, with or without mu.
//
// Goroutines and what each may wait for:
//
//   - A connection's reader reads, decodes and acts on packets, and
//     queues messages for the dispatcher. It waits for room in a full
//     handler queue only while no caller waits for a packet from the
//     server (awaiting == 0); see enqueueFull. So a handler that
//     publishes, subscribes or re-authenticates always gets its answer.
//   - Its writer, and the keepalive timer, wait for the socket only.
//   - The dispatcher runs handlers, one at a time, and acknowledges
//     their messages unless the application does (Message.Ack, from any
//     goroutine). Handlers may call any method; Disconnect from a handler
//     does not wait for the dispatcher (see ownGoroutine).
//   - The supervisor runs after a connection ends: it fails the
//     SUBSCRIBE and UNSUBSCRIBE flows of that connection, calls
//     OnConnectionLost, and reconnects (or, with DisableAutoReconnect,
//     releases waiting publishers and lets Connect be called again).
//   - Disconnect waits for the reader and writer (which end once the
//     socket is closed), and for the dispatcher and the supervisor (which
//     may be running user code) only until its context ends. Connect may
//     start the client again afterwards: each start has its own lifetime
//     context, which every goroutine of that start takes from its
//     connection (conn.ctx), so one left over from before a Disconnect
//     sees its context ended and stops, whatever started since.
type Client struct {
	opts  Options
	log   logr.Logger
	store Store

	mu sync.Mutex
	// ctx is the lifetime of one start of the client: it ends at
	// Disconnect, and Connect afterwards makes a new one. Read under mu.
	ctx    context.Context
	cancel context.CancelFunc
	conn   *conn // nil while disconnected
	// started: Connect was called and the session is kept up from now on.
	// It ends at Disconnect, at a failed Connect, and, with
	// DisableAutoReconnect, when the connection is lost, so that Connect
	// may be called again.
	started bool
	// closed: Disconnect was called, and Connect has not been since.
	// closing: Disconnect is still ending the flows of the session, so
	// Connect must not start the client again yet.
	closed   bool
	closing  bool
	gen      uint64
	clientID string
	connack  *Connack

	// Outbound flows, by packet identifier.
	pending   map[uint16]*pending
	freeList  []*pending
	nextID    uint16
	inflight  int             // QoS 1 and 2 publishes in flight
	quota     int             // the server's Receive Maximum
	quotaFree chan struct{}   // a slot freed up; the waker passes it on
	pub       *packet.Publish // reused for every publish, under mu
	pubAlias  uint16          // the caller's topic alias for pub (Message.TopicAlias)
	user      []packet.UserProperty
	scratch   []byte

	// Inbound QoS 2 messages delivered and awaiting PUBREL.
	inboundQoS2 map[uint16]struct{}
	// Inbound QoS 1 and 2 messages whose acknowledgement waits for
	// Message.Ack (ack.go), by packet identifier; made at the first.
	held map[uint16]*heldAck
	// resultWaiters counts PublishWithResult callers waiting: while it is
	// above 0 the user properties of acknowledgements are decoded.
	resultWaiters atomic.Int32

	router     router
	subs       []*subscribeRecord // for resubscribing when the server lost the session
	queue      *handlerQueue
	dispatcher func() // dispatch as a value made once: starting one allocates nothing
	stats      counters
	// awaiting counts callers waiting for a packet only the reader can
	// deliver (an acknowledgement, a quota slot, an AUTH): while it is
	// above 0 the reader never waits for the handlers. See enqueueFull.
	awaiting    atomic.Int32
	dispatchers sync.WaitGroup // the dispatcher, running only while messages wait
	supervisors sync.WaitGroup // the supervisor, running only after a connection ended
	lastAttempt int            // reconnect attempts since the last healthy connection; under mu

	// Where a server's DISCONNECT redirected us (v5 Server Reference):
	// tried first at the next connect, and at every one after if the
	// server moved for good.
	redirect      string
	redirectMoved bool
}

// Connack is what the server said when accepting the connection, with v5
// defaults filled in for properties it left out.
type Connack struct {
	SessionPresent bool
	// AssignedClientID is set when the server chose our client identifier.
	AssignedClientID string
	// KeepAlive is the keepalive in force (the server's, if it sent one).
	KeepAlive time.Duration
	// ReceiveMaximum is how many QoS 1 and 2 publishes may be in flight.
	ReceiveMaximum uint16
	// MaximumPacketSize is the largest packet the server accepts (0: no limit).
	MaximumPacketSize    uint32
	MaximumQoS           QoS
	RetainAvailable      bool
	WildcardAvailable    bool
	SharedSubAvailable   bool
	SubIDAvailable       bool
	TopicAliasMaximum    uint16
	SessionExpiry        time.Duration
	ResponseInformation  string
	ServerReference      string
	ReasonString         string
	UserProperties       []UserProperty
	AuthenticationMethod string
}

// New returns a client for opts without connecting it.
func New(opts Options) *Client {
	opts.setDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{
		opts:        opts,
		log:         opts.Logger,
		store:       opts.Store,
		ctx:         ctx,
		cancel:      cancel,
		clientID:    opts.ClientID,
		pending:     make(map[uint16]*pending),
		quotaFree:   make(chan struct{}, 1),
		inboundQoS2: make(map[uint16]struct{}),
	}
	c.quota = c.capQuota(65535)
	c.dispatcher = c.dispatch
	c.queue = newHandlerQueue(opts.HandlerQueue, c.startDispatcher)
	return c
}

// Dial creates a client and connects it.
func Dial(ctx context.Context, opts Options) (*Client, error) {
	c := New(opts)
	if err := c.Connect(ctx); err != nil {
		c.cancel() // nobody else has c
		return nil, err
	}
	return c, nil
}

// capQuota applies Options.MaxInflight to the server's Receive Maximum.
func (c *Client) capQuota(receiveMaximum int) int {
	if n := c.opts.MaxInflight; n > 0 && n < receiveMaximum {
		return n
	}
	return receiveMaximum
}

// Connect makes a connection, trying each server once. After it succeeds
// the client keeps the session up by itself until Disconnect, unless
// Options.DisableAutoReconnect is set: then, once the connection is lost,
// Connect may be called again to resume the session on a new connection,
// which resends the QoS 1 and 2 flows still in flight as a reconnect does.
//
// Connect may also be called after Disconnect has returned, to start the
// client again with its session: subscriptions and handlers, QoS 1 and 2
// publishes still in flight and inbound QoS 2 state carry over, and the
// server resumes its half of the session if it kept it (v5: SessionExpiry
// above 0, and v5 Clean Start applies to the first connection only; 3.1.1:
// CleanStart unset). ServerInfo().SessionPresent tells whether it did.
func (c *Client) Connect(ctx context.Context) error {
	if c.opts.Version == V311 && c.opts.ClientID == "" && !c.opts.CleanStart {
		// A 3.1.1 server must refuse it [MQTT-3.1.3-7]; say why here
		// rather than pass on its "identifier rejected".
		return ErrClientIDRequired
	}
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return fmt.Errorf("%w: Disconnect has not returned", ErrClosed)
	}
	if c.started {
		c.mu.Unlock()
		return errors.New("mqtt: already connected")
	}
	if c.closed {
		// A new start after Disconnect.
		c.closed = false
		c.ctx, c.cancel = context.WithCancel(context.Background())
		c.queue.reopen()
	}
	c.started = true
	// A client that has been connected resumes its session: the store
	// holds flows in flight, and v5 Clean Start applies to the first
	// connection only, as for reconnects.
	resume := c.gen > 0
	run := c.ctx
	c.mu.Unlock()
	err := c.prepareSession(resume)
	var cn *conn
	if err == nil {
		cn, err = c.connect(ctx, run, !resume)
	}
	if err != nil {
		c.mu.Lock()
		c.started = false
		c.mu.Unlock()
		return err
	}
	c.afterConnect(cn)
	return nil
}

// prepareSession readies the store for the first connection: emptied for
// a clean start, else read for what an earlier process left.
func (c *Client) prepareSession(resume bool) error {
	switch {
	case resume:
		return nil
	case c.opts.CleanStart:
		if err := c.store.Reset(); err != nil {
			return fmt.Errorf("reset session store: %w", err)
		}
		return nil
	}
	return c.loadSession()
}

// loadSession adopts the state a Store kept from an earlier process: the
// identifiers of inbound QoS 2 messages already delivered, and outbound
// flows nobody waits for any more but which must still complete, so their
// packet identifiers stay reserved and their acknowledgements clear them
// from the store.
func (c *Client) loadSession() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	err := c.store.Inbound(func(id uint16) bool {
		c.inboundQoS2[id] = struct{}{}
		return true
	})
	if err != nil {
		return fmt.Errorf("read session store: %w", err)
	}
	err = c.store.Outbound(func(id uint16, encoded []byte) bool {
		if _, ok := c.pending[id]; ok || len(encoded) == 0 {
			return true
		}
		p := c.newPending(packet.TypePublish)
		p.abandoned = true
		switch packet.Type(encoded[0] >> 4) {
		case packet.TypePubrel:
			p.qos, p.pubrec = ExactlyOnce, true
		default:
			p.qos = QoS(encoded[0] >> 1 & 3)
		}
		c.pending[id] = p
		c.inflight++
		c.nextID = id
		return true
	})
	if err != nil {
		return fmt.Errorf("read session store: %w", err)
	}
	return nil
}

// connect tries each server in turn, following redirects within
// Options.MaxRedirects, and installs the first connection in the start of
// the client whose lifetime is run.
func (c *Client) connect(ctx, run context.Context, first bool) (*conn, error) {
	if len(c.opts.Servers) == 0 {
		return nil, errors.New("mqtt: no servers configured")
	}
	c.mu.Lock()
	servers := c.opts.Servers
	if c.redirect != "" {
		// Where a DISCONNECT sent us, ahead of the configured list.
		servers = append([]string{c.redirect}, servers...)
		if !c.redirectMoved {
			c.redirect = ""
		}
	}
	c.mu.Unlock()
	var errs []error
	for _, server := range servers {
		for hops := 0; ; hops++ {
			cn, ack, err := c.handshake(ctx, server, first)
			if err == nil {
				cn.server = server
				if err := c.install(cn, ack, run); err != nil {
					return nil, err
				}
				c.log.V(1).Info("connected", "server", server, "sessionPresent", ack.SessionPresent)
				return cn, nil
			}
			errs = append(errs, fmt.Errorf("%s: %w", server, err))
			if ctx.Err() != nil {
				return nil, joinErrors(errs)
			}
			next := c.redirectTarget(err, server)
			if next == "" || hops >= c.opts.MaxRedirects {
				break
			}
			c.log.Info("redirected by the server", "from", server, "to", next)
			server = next
		}
	}
	return nil, joinErrors(errs)
}

func joinErrors(errs []error) error {
	if len(errs) == 1 {
		return errs[0]
	}
	return errors.Join(errs...)
}

// handshake dials server and exchanges CONNECT and CONNACK, with the
// enhanced authentication exchange in between when an Authenticator is set.
func (c *Client) handshake(ctx context.Context, server string, first bool) (*conn, *Connack, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.ConnectTimeout)
	defer cancel()
	auth := c.opts.Authenticator
	if auth != nil && c.opts.Version != V5 {
		return nil, nil, ErrAuthNeedsV5
	}
	nc, err := dial(ctx, &c.opts, server)
	if err != nil {
		return nil, nil, err
	}
	if d, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	fail := func(err error) (*conn, *Connack, error) {
		nc.Close()
		if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			return nil, nil, fmt.Errorf("connect: %w", ctx.Err())
		}
		return nil, nil, err
	}

	c.mu.Lock()
	clientID := c.clientID
	c.mu.Unlock()
	connect := c.connectPacket(clientID, first)
	if auth != nil {
		data, err := auth.Start(ctx)
		if err != nil {
			return fail(fmt.Errorf("authentication: %w", err))
		}
		connect.Properties.AuthMethod = []byte(auth.Method())
		connect.Properties.AuthData = data
	}
	b, err := connect.Append(nil, c.opts.Version)
	if err != nil {
		return fail(err)
	}
	if _, err := nc.Write(b); err != nil {
		return fail(err)
	}
	c.countDirect(true, packet.TypeConnect, len(b))
	rb := newReadBuffer(nc)
	var ack packet.Connack
	for done := false; !done; {
		h, body, err := readPacket(rb, c.opts.Version, c.opts.MaximumPacketSize)
		if err != nil {
			return fail(err)
		}
		c.countDirect(false, h.Type, len(body)+headerSize(len(body)))
		switch {
		case h.Type == packet.TypeConnack:
			if err := ack.Unmarshal(c.opts.Version, h.Flags, body); err != nil {
				return fail(err)
			}
			done = true
		case h.Type == packet.TypeAuth && auth != nil:
			reply, err := c.answerAuth(ctx, h, body)
			if err != nil {
				return fail(err)
			}
			if _, err := nc.Write(reply); err != nil {
				return fail(err)
			}
			c.countDirect(true, packet.TypeAuth, len(reply))
		default:
			return fail(fmt.Errorf("%w: server sent %s before CONNACK", packet.ProtocolError, h.Type))
		}
	}
	if ack.ReasonCode != packet.Success {
		return fail(&ConnectError{Version: c.opts.Version, Code: ack.ReasonCode,
			ReasonString: string(ack.Properties.ReasonString), ServerReference: string(ack.Properties.ServerReference)})
	}
	if auth != nil {
		if m := ack.Properties.AuthMethod; string(m) != auth.Method() {
			return fail(fmt.Errorf("%w: CONNACK authentication method %q, want %q", packet.ProtocolError, m, auth.Method()))
		}
		if err := auth.Finish(ctx, ack.Properties.AuthData); err != nil {
			return fail(fmt.Errorf("authentication: %w", err))
		}
	}
	if !stop() {
		return fail(fmt.Errorf("connect: %w", ctx.Err()))
	}
	_ = nc.SetDeadline(time.Time{})
	info := c.connackInfo(&ack)
	cn := newConn(c, nc, rb)
	cn.keepAlive = info.KeepAlive
	cn.pingTimeout = c.opts.PingTimeout
	if cn.pingTimeout <= 0 {
		cn.pingTimeout = max(cn.keepAlive/2, 50*time.Millisecond)
	}
	cn.serverMaxPacket = info.MaximumPacketSize
	return cn, info, nil
}

// readPacket reads one whole packet into a new buffer; the handshake's
// few packets do not need the reader loop's buffer reuse.
func readPacket(rb *readBuffer, v Version, maxSize uint32) (packet.Header, []byte, error) {
	var hdr [5]byte
	h, err := readHeader(rb, hdr[:], v, maxSize)
	if err != nil {
		return h, nil, err
	}
	body := make([]byte, h.Remaining)
	return h, body, rb.readFull(body)
}

func (c *Client) connectPacket(clientID string, first bool) *packet.Connect {
	o := &c.opts
	p := &packet.Connect{
		Version:  o.Version,
		ClientID: []byte(clientID),
	}
	// Under v5 Clean Start applies to the first connect only, so reconnects
	// resume the session; 3.1.1's Clean Session is a property of every connection.
	p.CleanStart = o.CleanStart && (first || o.Version == V311)
	if o.KeepAlive > 0 {
		p.KeepAlive = uint16(min(o.KeepAlive/time.Second, 65535))
		if p.KeepAlive == 0 {
			p.KeepAlive = 1
		}
	}
	if o.Username != "" {
		p.Username = []byte(o.Username)
	}
	if o.Password != nil && (o.Username != "" || o.Version == V5) {
		p.Password = o.Password
	}
	if o.Version == V5 {
		pr := &p.Properties
		pr.SessionExpiry = uint32(min(o.SessionExpiry/time.Second, 0xFFFFFFFF))
		if o.ReceiveMaximum != 65535 {
			pr.ReceiveMaximum = o.ReceiveMaximum
		}
		pr.MaximumPacketSize = o.MaximumPacketSize
		pr.TopicAliasMaximum = o.TopicAliasMaximum
		if o.RequestResponseInfo {
			pr.RequestResponseInfo = 1
		}
		if o.DisableProblemInfo {
			pr.Set(packet.PropRequestProblemInfo)
		}
		pr.User = packetUserProperties(o.UserProperties)
	}
	if w := o.Will; w != nil {
		p.WillFlag = true
		p.Will = packet.Will{QoS: byte(w.QoS), Retain: w.Retain, Topic: []byte(w.Topic), Payload: w.Payload}
		if p.Will.Payload == nil {
			p.Will.Payload = []byte{}
		}
		if o.Version == V5 {
			// A will is a message like any other; its properties map the same way.
			setMessageProperties(&p.Will.Properties, &Message{
				PayloadUTF8: w.PayloadUTF8, Expiry: w.Expiry, ContentType: w.ContentType,
				ResponseTopic: w.ResponseTopic, CorrelationData: w.CorrelationData, UserProperties: w.UserProperties,
			}, nil)
			p.Will.Properties.WillDelay = uint32(w.Delay / time.Second)
		}
	}
	return p
}

func packetUserProperties(in []UserProperty) []packet.UserProperty {
	if len(in) == 0 {
		return nil
	}
	out := make([]packet.UserProperty, len(in))
	for i, u := range in {
		out[i] = packet.UserProperty{Key: []byte(u.Key), Value: []byte(u.Value)}
	}
	return out
}

// connackInfo applies the v5 defaults for what CONNACK left out. (3.2.2.3)
func (c *Client) connackInfo(ack *packet.Connack) *Connack {
	p := &ack.Properties
	info := &Connack{
		SessionPresent:     ack.SessionPresent,
		KeepAlive:          c.opts.KeepAlive,
		ReceiveMaximum:     65535,
		MaximumQoS:         ExactlyOnce,
		RetainAvailable:    true,
		WildcardAvailable:  true,
		SharedSubAvailable: true,
		SubIDAvailable:     true,
	}
	if info.KeepAlive < 0 {
		info.KeepAlive = 0
	}
	if c.opts.Version != V5 {
		return info
	}
	if p.Has(packet.PropServerKeepAlive) {
		info.KeepAlive = time.Duration(p.ServerKeepAlive) * time.Second
	}
	if p.Has(packet.PropReceiveMaximum) {
		info.ReceiveMaximum = p.ReceiveMaximum
	}
	info.MaximumPacketSize = p.MaximumPacketSize
	if p.Has(packet.PropMaximumQoS) {
		info.MaximumQoS = QoS(p.MaximumQoS)
	}
	if p.Has(packet.PropRetainAvailable) {
		info.RetainAvailable = p.RetainAvailable == 1
	}
	if p.Has(packet.PropWildcardSubAvailable) {
		info.WildcardAvailable = p.WildcardSubAvailable == 1
	}
	if p.Has(packet.PropSharedSubAvailable) {
		info.SharedSubAvailable = p.SharedSubAvailable == 1
	}
	if p.Has(packet.PropSubIDAvailable) {
		info.SubIDAvailable = p.SubIDAvailable == 1
	}
	info.TopicAliasMaximum = p.TopicAliasMaximum
	info.SessionExpiry = time.Duration(p.SessionExpiry) * time.Second
	info.AssignedClientID = string(p.AssignedClientID)
	info.ResponseInformation = string(p.ResponseInfo)
	info.ServerReference = string(p.ServerReference)
	info.ReasonString = string(p.ReasonString)
	info.AuthenticationMethod = string(p.AuthMethod)
	info.UserProperties = userPropertiesFrom(p.User)
	return info
}

// install makes cn the session's connection and resumes the session on it:
// with the server's session, unacknowledged PUBLISH (DUP set) and PUBREL
// packets go out again in their original order [MQTT-4.4.0-1]; without
// it, the subscriptions are renewed first and then the publishes callers
// still wait for go out as new. It fails, closing cn, if Disconnect came
// first, even if Connect has started the client again since.
func (c *Client) install(cn *conn, ack *Connack, run context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.ctx != run {
		cn.nc.Close()
		return ErrClosed
	}
	c.gen++
	cn.gen = c.gen
	cn.ctx = c.ctx
	c.connack = ack
	if ack.AssignedClientID != "" {
		c.clientID = ack.AssignedClientID
	}
	c.quota = c.capQuota(int(ack.ReceiveMaximum))
	if c.opts.Version == V5 {
		cn.outAliases = newOutboundAliases(min(c.opts.OutboundTopicAliases, ack.TopicAliasMaximum))
	}
	if !ack.SessionPresent {
		// The server has no session: its QoS 1 and 2 messages will not
		// be resent, so what we remembered of them is void, and an Ack
		// still to come has nothing to answer.
		clear(c.inboundQoS2)
		clear(c.held)
		var serr error
		err := c.store.Inbound(func(id uint16) bool {
			serr = c.store.DeleteInbound(id)
			return serr == nil
		})
		if err = errors.Join(err, serr); err != nil {
			c.log.Error(err, "clearing inbound QoS 2 state from the session store")
		}
	}
	if !ack.SessionPresent {
		for _, rec := range c.subs {
			c.resubscribeLocked(cn, rec)
		}
	}
	var completed []uint16
	err := c.store.Outbound(func(id uint16, encoded []byte) bool {
		isPublish := encoded[0]>>4 == byte(packet.TypePublish)
		switch {
		case ack.SessionPresent, isPublish:
			cn.queueResend(encoded, ack.SessionPresent && isPublish)
		default:
			// A PUBREL whose server-side state is gone: the server took
			// the message at PUBREC, so the flow is complete.
			completed = append(completed, id)
		}
		if isPublish {
			if p := c.pending[id]; p != nil {
				p.pubrec = false
			}
		}
		return true
	})
	if err != nil {
		c.log.Error(err, "reading the session store")
	}
	for _, id := range completed {
		c.completeLocked(id, nil)
	}
	c.conn = cn
	cn.start()
	return nil
}

// afterConnect tells the application. It runs on the goroutine that connected.
func (c *Client) afterConnect(cn *conn) {
	c.mu.Lock()
	ack := c.connack
	c.mu.Unlock()
	if c.opts.OnConnect != nil {
		c.opts.OnConnect(c, ack)
	}
}

// connectionEnded starts the supervisor for a connection that has ended.
// It runs under the connection's closeOnce, before Disconnect can wait for
// the supervisor.
func (c *Client) connectionEnded(cn *conn) {
	c.supervisors.Add(1)
	go c.supervise(cn)
}

// supervise takes over when a connection has ended: it ends the flows that
// cannot outlive the connection, tells the application and reconnects,
// then ends until the next loss. Nothing runs it while the connection is
// up.
func (c *Client) supervise(cn *conn) {
	defer c.supervisors.Done()
	cn.wg.Wait()
	lost := fmt.Errorf("%w: %w", ErrConnectionLost, cn.err)
	c.mu.Lock()
	if c.conn == cn {
		c.conn = nil
	}
	run := cn.ctx
	if c.closed || run.Err() != nil {
		// Disconnect, which may have been followed by a new start
		// whose connections are not ours to replace.
		c.mu.Unlock()
		return
	}
	c.failRequestsLocked(cn.gen, lost)
	manual := c.opts.DisableAutoReconnect
	if manual {
		// Nothing will reconnect unless the application calls Connect,
		// so nobody is left waiting for it; and it may call Connect from
		// OnConnectionLost.
		c.started = false
		c.releasePublishersLocked(lost)
	}
	c.mu.Unlock()
	c.stats.connectionsLost.Add(1)
	c.log.Info("connection lost", "error", cn.err.Error())
	c.noteRedirect(cn) // before the callback, which may call Connect
	if c.opts.OnConnectionLost != nil {
		c.opts.OnConnectionLost(c, cn.err)
	}
	if manual {
		return
	}
	// A connection that stayed up resets the backoff; one that drops
	// straight away keeps growing it.
	attempt := 0
	if time.Since(cn.since) < max(c.opts.KeepAlive, time.Second) {
		c.mu.Lock()
		attempt = c.lastAttempt
		c.mu.Unlock()
	}
	for {
		delay := c.opts.Backoff.Delay(attempt)
		if c.opts.OnReconnectWait != nil {
			c.opts.OnReconnectWait(attempt+1, delay)
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-run.Done():
			t.Stop()
			return
		}
		attempt++
		c.mu.Lock()
		c.lastAttempt = attempt
		c.mu.Unlock()
		next, err := c.connect(run, run, false)
		if err == nil {
			c.stats.reconnects.Add(1)
			c.afterConnect(next)
			return
		}
		if run.Err() != nil {
			return
		}
		c.log.Info("reconnect failed", "attempt", attempt, "error", err.Error())
	}
}

// Disconnect sends DISCONNECT, closes the connection and stops the client.
// Calls waiting for acknowledgements return ErrClosed; QoS 1 and 2
// publishes among them stay in the session, as after a lost connection,
// and go out again if Connect starts the client again (or another process
// resumes the session from the same Store). Messages queued for the
// handlers and not yet handed to one are not delivered: QoS 1 and 2 ones
// were not acknowledged, so the server sends them again if the session
// resumes. The session lives on at the server for its expiry interval.
//
// Disconnect waits for a handler or connection callback that is running,
// until ctx ends, and then returns ctx's error; the handler's goroutine
// ends when the handler returns. Called from a handler or callback itself,
// it does not wait for that goroutine, which could only end after
// Disconnect returned.
func (c *Client) Disconnect(ctx context.Context) error {
	return c.DisconnectWith(ctx, DisconnectOptions{})
}

// DisconnectOptions are what a v5 DISCONNECT may say besides "normal
// disconnection". Under 3.1.1 only the zero value can be sent.
type DisconnectOptions struct {
	// ReasonCode is the reason sent (default 0x00, Normal disconnection).
	// packet.DisconnectWithWillMessage (0x04) has the server publish the
	// Will as if the connection had failed; error codes (0x80 and above)
	// tell the server why the client gives up.
	ReasonCode ReasonCode
	// SessionExpiry, when set, replaces the session expiry interval given
	// at connect: new(time.Duration(0)) ends the session at the server with
	// this connection. A non-zero value is a protocol error after a
	// connect that asked for none (Options.SessionExpiry 0), and
	// DisconnectWith refuses it [MQTT-3.14.2-2] (3.14.2.2.2).
	SessionExpiry *time.Duration
	// ReasonString and UserProperties are for the server's logs and
	// diagnostics. They are left out if the packet would exceed the
	// server's Maximum Packet Size [MQTT-3.14.2-3], [MQTT-3.14.2-4].
	ReasonString   string
	UserProperties []UserProperty
}

// DisconnectWith is Disconnect sending what o says in the DISCONNECT
// packet (v5). It refuses, without disconnecting, a reason code DISCONNECT
// does not have, a session expiry the connect does not allow, and any
// option under 3.1.1.
func (c *Client) DisconnectWith(ctx context.Context, o DisconnectOptions) error {
	d, err := c.disconnectPacket(o)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed, c.closing = true, true
	c.started = false
	cn, cancel := c.conn, c.cancel
	c.mu.Unlock()
	cancel()
	if cn != nil {
		err = cn.shutdown(ctx, d)
		// The socket is closed now, so the reader and writer end at
		// once; a reader waiting for room in the queue ends with the
		// lifetime context, cancelled above.
		cn.wg.Wait()
	}
	// Before waiting for the handlers, since one may be waiting for an
	// acknowledgement that will never come.
	c.mu.Lock()
	for id, p := range c.pending {
		if p.kind != packet.TypePublish {
			c.completeLocked(id, ErrClosed)
		}
	}
	c.releasePublishersLocked(ErrClosed)
	c.mu.Unlock()
	for _, item := range c.queue.close() {
		c.undeliver(item)
	}
	c.mu.Lock()
	c.closing = false
	c.mu.Unlock()
	onDispatcher, onSupervisor := ownGoroutine()
	done := make(chan struct{})
	go func() {
		// Ends when the goroutines do, even after ctx has ended.
		if !onDispatcher {
			c.dispatchers.Wait()
		}
		if !onSupervisor {
			c.supervisors.Wait()
		}
		close(done)
	}()
	select {
	case <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// disconnectPacket makes the DISCONNECT o asks for, or says why it cannot.
func (c *Client) disconnectPacket(o DisconnectOptions) (*packet.Disconnect, error) {
	d := &packet.Disconnect{ReasonCode: o.ReasonCode}
	if c.opts.Version != V5 {
		if o.ReasonCode != packet.NormalDisconnection || o.SessionExpiry != nil || o.ReasonString != "" || len(o.UserProperties) > 0 {
			return nil, fmt.Errorf("mqtt: DISCONNECT with a reason code or properties: %w", packet.ErrPropertiesV311)
		}
		return d, nil
	}
	if !o.ReasonCode.ValidFor(packet.TypeDisconnect) {
		return nil, fmt.Errorf("mqtt: 0x%02X is not a DISCONNECT reason code: %w", byte(o.ReasonCode), packet.ErrReasonCode)
	}
	pr := &d.Properties
	if e := o.SessionExpiry; e != nil {
		if *e < 0 {
			return nil, fmt.Errorf("mqtt: negative session expiry %v in DISCONNECT", *e)
		}
		if *e >= time.Second && c.opts.SessionExpiry < time.Second {
			return nil, fmt.Errorf("mqtt: session expiry %v in DISCONNECT after a connect that asked for none: %w", *e, packet.ProtocolError)
		}
		pr.SessionExpiry = uint32(min(*e/time.Second, 0xFFFFFFFF))
		pr.Set(packet.PropSessionExpiry)
	}
	if o.ReasonString != "" {
		pr.ReasonString = []byte(o.ReasonString)
	}
	pr.User = packetUserProperties(o.UserProperties)
	return d, nil
}

// The functions that run user code on the client's own goroutines: the
// dispatcher's handlers, and the supervisor's OnConnect and
// OnConnectionLost.
var (
	dispatchFunc  = funcName((*Client).dispatch)
	superviseFunc = funcName((*Client).supervise)
)

func funcName(f any) string { return runtime.FuncForPC(reflect.ValueOf(f).Pointer()).Name() }

// ownGoroutine reports whether the caller runs on a dispatcher or a
// supervisor, found by their functions on its stack: Go has no goroutine
// identity to compare, and a Disconnect called from a handler must not
// wait for the goroutine it runs on. Any client's dispatcher or supervisor
// counts, so a handler of one client disconnecting another does not wait
// for the other's handlers either. Disconnect alone pays for the walk.
func ownGoroutine() (dispatcher, supervisor bool) {
	pcs := make([]uintptr, 64)
	n := runtime.Callers(2, pcs)
	for n == len(pcs) { // deeper than the buffer: the outermost frames matter
		pcs = make([]uintptr, 2*len(pcs))
		n = runtime.Callers(2, pcs)
	}
	frames := runtime.CallersFrames(pcs[:n])
	for more := true; more; {
		var f runtime.Frame
		f, more = frames.Next()
		switch f.Function {
		case dispatchFunc:
			dispatcher = true
		case superviseFunc:
			supervisor = true
		}
	}
	return dispatcher, supervisor
}

// ClientID is the client identifier in use, which a v5 server may have assigned.
func (c *Client) ClientID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.clientID
}

// IsConnected reports whether a connection is up.
func (c *Client) IsConnected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn != nil
}

// ServerInfo returns what the server said in the latest CONNACK.
func (c *Client) ServerInfo() *Connack {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connack
}
