package mqtt

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/go-logr/logr"
)

// Options configure a Client. Servers is the only required field.
type Options struct {
	// Servers are broker URLs, tried in order on every (re)connect:
	// tcp:// or mqtt:// (default port 1883), tls://, ssl:// or mqtts://
	// (default port 8883), and MQTT over WebSocket, ws:// (port 80) and
	// wss:// (port 443) with the path the server serves it on.
	Servers []string
	// Version is the protocol version (default V5).
	Version Version
	// ClientID identifies the session. Empty asks a v5 server to assign one;
	// under 3.1.1 an empty one needs CleanStart, or Connect fails with
	// ErrClientIDRequired [MQTT-3.1.3-7].
	ClientID string
	// CleanStart discards any session the server holds at the first connect.
	// Reconnects always ask to resume. Under 3.1.1 this is Clean Session and
	// holds for every connect: the server keeps nothing between connections.
	CleanStart bool
	// SessionExpiry is how long a v5 server keeps the session after the
	// connection ends (0: it ends with the connection).
	SessionExpiry time.Duration
	// KeepAlive is the keepalive interval (default 30s; negative disables it).
	KeepAlive time.Duration
	// PingTimeout is how long to wait for PINGRESP (default KeepAlive/2), so
	// a dead link is detected within 1.5×KeepAlive. It may be longer than
	// KeepAlive, for links with long round trips: pings keep going out every
	// KeepAlive while an earlier one waits for its answer.
	PingTimeout time.Duration
	// ConnectTimeout bounds dialing plus the CONNECT/CONNACK exchange (default 10s).
	ConnectTimeout time.Duration

	// Username and Password authenticate the client; Password is sent only
	// with a Username under 3.1.1.
	Username string
	Password []byte

	// TLSConfig is used for tls/ssl/mqtts URLs; ServerName defaults to the
	// URL's host. Certificates are verified unless the config says otherwise.
	TLSConfig *tls.Config
	// Dialer opens the network connection (default net.Dialer).
	Dialer func(ctx context.Context, network, addr string) (net.Conn, error)
	// Proxy names the HTTP proxy to reach a server through, or nil for none
	// (default http.ProxyFromEnvironment; http.ProxyURL(nil) turns proxies
	// off). Its request's URL is http://host:port for tcp, mqtt and ws
	// servers and https://host:port for tls, ssl, mqtts and wss ones, so the
	// environment's HTTP_PROXY applies to the first, HTTPS_PROXY to the
	// second and NO_PROXY to both (the environment never proxies loopback).
	// Every transport goes through an http:// proxy as an HTTP CONNECT
	// tunnel, authenticated with the proxy URL's user and password.
	Proxy func(*http.Request) (*url.URL, error)

	// Will is published by the server if the connection ends abnormally.
	Will *Will

	// ReceiveMaximum is how many inbound QoS 1 and 2 messages the server may
	// have unacknowledged at once (v5; default HandlerQueue/4, at most
	// HandlerQueue).
	ReceiveMaximum uint16
	// StrictReceiveMaximum closes the connection with Receive Maximum
	// exceeded (0x93) as soon as the server sends one message more than
	// ReceiveMaximum, as the specification asks. By default the client
	// tolerates overshoot, counting it in Stats, and meets it with
	// back-pressure (beyond HandlerQueue the reader waits for the
	// handlers, unless a caller waits for an acknowledgement), because
	// mosquitto 2.0 overshoots under load, by hundreds of messages at times
	// (eclipse-mosquitto/mosquitto#2301), and a client that drops its
	// connection over that is worse than one that absorbs it: it would
	// lose its place and meet the same overshoot again after reconnecting.
	StrictReceiveMaximum bool
	// MaximumPacketSize is the largest packet we accept (default 1 MiB, at
	// most 268,435,455). Under v5 the server is told and must not send more
	// [MQTT-3.1.2-25]; a 3.1.1 server cannot know it. A larger PUBLISH is
	// read past without being buffered, acknowledged if its QoS asks for
	// it, not delivered, and counted in Stats.DroppedOversized: closing the
	// connection instead would make one oversized retained message fail
	// every reconnect the same way. Any other larger packet closes the
	// connection with Packet Too Large.
	MaximumPacketSize uint32
	// MaxWriteBuffer is how many bytes of packets a connection may queue
	// behind the write in progress (default 16 MiB). A server that keeps
	// sending while it has stopped reading makes the acknowledgements,
	// pings and publishes we owe it pile up, and the write deadline, a
	// keepalive away, comes too late: a flood of PUBRELs once took a
	// client to 819 MiB of heap. A packet that would queue more closes the
	// connection with ErrWriteBufferFull (counted in Stats.WriteBufferFull).
	// QoS 0 publishers wait for the socket well before, at the smaller of
	// 4 MiB and half this bound, so a slow but reading server never
	// reaches it; QoS 1 and 2 publishes are bounded by the server's Receive
	// Maximum, which times the largest message should stay below it. What
	// a reconnect resends from the session does not count, and a packet
	// larger than the bound still goes out when nothing else is queued.
	MaxWriteBuffer int
	// DiscardUserProperties has received messages arrive without their v5
	// user properties. They are still checked as the specification asks,
	// but never stored: an empty user property is 5 bytes on the wire and
	// 48 in memory, so a client that does not read them need not pay for a
	// server's. (User properties of acknowledgements and DISCONNECT, which
	// the client never surfaces, are always discarded this way.)
	DiscardUserProperties bool
	// RequestResponseInfo asks a v5 server for Response Information.
	RequestResponseInfo bool
	// DisableProblemInfo asks a v5 server not to send reason strings and
	// user properties with failures.
	DisableProblemInfo bool
	// UserProperties are sent in CONNECT (v5).
	UserProperties []UserProperty

	// TopicAliasMaximum is how many topic aliases the server may use in
	// the messages it sends us (v5; default 0: none). Each costs one topic
	// string per connection.
	TopicAliasMaximum uint16
	// OutboundTopicAliases turns on topic aliases for what we publish
	// (v5): up to this many topics, bounded by the server's Topic Alias
	// Maximum, are replaced by a two-byte alias after their first publish
	// on a connection; when all are taken the least recently used one is
	// reassigned. Worth it for long topics published often.
	OutboundTopicAliases uint16

	// Authenticator carries out MQTT 5.0 enhanced authentication at every
	// connect and at Client.Reauthenticate (v5 only).
	Authenticator Authenticator

	// MaxInflight caps the QoS 1 and 2 publishes in flight at once below
	// the server's Receive Maximum (0: the server's Receive Maximum is the
	// only cap). Publishes beyond it wait for a slot, as they wait for the
	// server's: for a server that grants more than a device or its link
	// should carry (a 3.1.1 server announces no limit at all).
	MaxInflight int

	// ManualAck turns off acknowledging received QoS 1 and 2 messages when
	// their handler returns: every message a handler receives is
	// acknowledged when the application calls Message.Ack. For one
	// subscription instead, see SubscribeRequest.ManualAck. Acknowledgements
	// go out in the order the messages arrived, whatever the order of the
	// Ack calls (docs/mqtt.md, "Manual acknowledgement").
	ManualAck bool

	// MaxRedirects is how many server redirects (v5 Server Reference with
	// Use Another Server or Server Moved, in CONNACK or DISCONNECT) one
	// connect may follow; 0 does not follow them.
	MaxRedirects int

	// DisableAutoReconnect turns off reconnecting after a lost connection.
	// The application reconnects by calling Connect again, which resumes
	// the session. While no connection is up, publishes at every QoS fail
	// with ErrNotConnected, and those in flight when it was lost return
	// ErrConnectionLost, their messages kept in the session for the next
	// Connect (see Client.Publish).
	DisableAutoReconnect bool
	// Backoff is the reconnect delay policy.
	Backoff Backoff
	// OnReconnectWait is called by the supervisor before each automatic
	// reconnect attempt with the attempt's number, counted from 1 since the
	// last connection that stayed up, and the wait the backoff chose for
	// it, e.g. to log "reconnecting in 2.3s". The wait starts when it
	// returns.
	OnReconnectWait func(attempt int, wait time.Duration)

	// OnConnect is called after every successful connect, once the
	// session's resends are queued: from the goroutine that called
	// Connect, and after a reconnect from the client's supervisor
	// goroutine.
	OnConnect func(*Client, *Connack)
	// OnConnectionLost is called from the supervisor goroutine when an
	// established connection ends for any reason but Disconnect. With
	// DisableAutoReconnect it may call Connect. The automatic reconnect
	// starts after it returns.
	OnConnectionLost func(*Client, error)

	// DefaultHandler receives messages that match no subscription's handler.
	DefaultHandler Handler
	// HandlerQueue is the bound of the queue between the connection's
	// reader and the handlers (default 256). When it is full the reader
	// waits for room, unless a caller waits for an acknowledgement, which
	// the reader must then read on to deliver: meanwhile QoS 0 messages
	// that find the queue full are dropped and QoS 1 and 2 ones queued
	// beyond the bound (docs/mqtt.md, "Handlers and back-pressure").
	HandlerQueue int
	// DropQoS0WhenFull drops QoS 0 messages whenever the handler queue is
	// full, instead of waiting for room.
	DropQoS0WhenFull bool

	// Store keeps in-flight session state (default a MemoryStore).
	Store Store
	// Logger receives connection events (default: discard).
	Logger logr.Logger
}

// Will is a Last Will and Testament.
type Will struct {
	Topic   string
	Payload []byte
	QoS     QoS
	Retain  bool
	// Delay is the v5 will delay interval: the server waits this long after
	// the connection ends (and cancels the will if the session resumes).
	Delay time.Duration
	// The v5 message properties of the will.
	PayloadUTF8     bool
	Expiry          time.Duration
	ContentType     string
	ResponseTopic   string
	CorrelationData []byte
	UserProperties  []UserProperty
}

func (o *Options) setDefaults() {
	if o.Version == 0 {
		o.Version = V5
	}
	if o.KeepAlive == 0 {
		o.KeepAlive = 30 * time.Second
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = 10 * time.Second
	}
	if o.HandlerQueue <= 0 {
		o.HandlerQueue = 256
	}
	if o.ReceiveMaximum == 0 {
		o.ReceiveMaximum = uint16(min(max(o.HandlerQueue/4, 1), 65535))
	}
	if int(o.ReceiveMaximum) > o.HandlerQueue {
		o.ReceiveMaximum = uint16(min(o.HandlerQueue, 65535))
	}
	if o.MaximumPacketSize == 0 {
		o.MaximumPacketSize = 1 << 20
	}
	if o.MaxWriteBuffer <= 0 {
		o.MaxWriteBuffer = 16 << 20
	}
	if o.Store == nil {
		o.Store = NewMemoryStore()
	}
	if o.Logger.GetSink() == nil {
		o.Logger = logr.Discard()
	}
	if o.Proxy == nil {
		o.Proxy = http.ProxyFromEnvironment
	}
}

// dialTCP opens a TCP connection with Options.Dialer, or a zero net.Dialer
// made for the call: a default kept in every client would cost each one
// its memory for as long as it lives.
func (o *Options) dialTCP(ctx context.Context, addr string) (net.Conn, error) {
	if o.Dialer != nil {
		return o.Dialer(ctx, "tcp", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}
