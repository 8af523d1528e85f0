package mqtt

// MQTT over WebSocket (MQTT 5.0 section 6; 3.1.1 section 6 says the same).
//
// The WebSocket layer is github.com/coder/websocket. The standard library
// has no WebSocket client, and golang.org/x/net/websocket describes itself
// as lacking features, pointing to gorilla/websocket and coder/websocket.
// coder/websocket is the maintained successor of nhooyr.io/websocket (Coder
// took it over in 2024), depends on nothing outside the standard library,
// passes the Autobahn conformance suite, takes a context for every blocking
// call, and its NetConn turns a WebSocket into the net.Conn, deadlines
// included, that the client already drives for TCP and TLS.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// wsSubprotocol is the WebSocket subprotocol name MQTT registers.
const wsSubprotocol = "mqtt"

// ErrWebSocketSubprotocol means a WebSocket server completed the handshake
// without selecting the "mqtt" subprotocol, so it may not speak MQTT at all.
var ErrWebSocketSubprotocol = errors.New(`mqtt: WebSocket server did not agree to subprotocol "mqtt"`)

// dialWebSocket runs the WebSocket opening handshake for u over conn, an
// established TCP or TLS connection to addr (possibly through a proxy
// tunnel), and returns the WebSocket as a byte stream. It closes conn if
// the handshake fails.
func dialWebSocket(ctx context.Context, conn net.Conn, u *url.URL, addr string) (net.Conn, error) {
	// The connection is dialled before the HTTP request, not by the
	// Transport, for three reasons: the Transport forwards a plain-HTTP
	// request through a proxy as an absolute-URI GET, while RFC 6455
	// section 4.1 asks for CONNECT, as for every other transport here; it
	// would bypass Options.Dialer and our TLS settings; and it keeps dialling
	// in the background after the request is cancelled, which would leave
	// a goroutine behind a connect timeout.
	var used atomic.Bool
	handOver := func(context.Context, string, string) (net.Conn, error) {
		if used.Swap(true) {
			return nil, errors.New("mqtt: WebSocket handshake wanted a second connection")
		}
		return conn, nil
	}
	tr := &http.Transport{DialContext: handOver, DialTLSContext: handOver, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{
		Transport: tr,
		// A redirect would need a connection to another place, which
		// handOver cannot give; the 3xx then fails the handshake visibly.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	ws, _, err := websocket.Dial(ctx, u.String(), &websocket.DialOptions{
		HTTPClient: client,
		// [MQTT-6.0.0-3] The client MUST include "mqtt" in the list of
		// WebSocket Sub Protocols it offers.
		Subprotocols: []string{wsSubprotocol},
	})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("WebSocket handshake with %s: %w", addr, err)
	}
	// [MQTT-6.0.0-4] The server MUST select "mqtt". The library rejects a
	// different choice but accepts none at all, so check here.
	if ws.Subprotocol() != wsSubprotocol {
		_ = ws.CloseNow()
		return nil, fmt.Errorf("WebSocket handshake with %s: %w", addr, ErrWebSocketSubprotocol)
	}
	// [MQTT-6.0.0-1] MQTT travels in binary messages; NetConn closes the
	// connection if any other kind arrives. [MQTT-6.0.0-2] Messages need not
	// align with packets: NetConn is a plain byte stream. Its context bounds
	// the whole connection, so it must not be ctx, which ends with connect.
	nc := websocket.NetConn(context.Background(), ws, websocket.MessageBinary)
	return &wsConn{Conn: nc, ws: ws, raw: conn}, nil
}

// wsConn is a WebSocket as a net.Conn: reads and writes go through
// websocket.NetConn; Close, the addresses and deadline errors are its own.
type wsConn struct {
	net.Conn
	ws  *websocket.Conn
	raw net.Conn // the TCP or TLS connection under the WebSocket

	// The deadlines as Unix nanoseconds (0: none), to tell a deadline
	// from other failures.
	readDeadline, writeDeadline atomic.Int64
}

// Read reports a read its deadline ended as the i/o timeout a TCP
// connection gives. NetConn enforces a deadline by cancelling the read,
// which closes the WebSocket and surfaces as "context canceled": a connect
// timeout would otherwise look like someone had cancelled it.
func (c *wsConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil && expired(&c.readDeadline) {
		err = &net.OpError{Op: "read", Net: "websocket", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.ErrDeadlineExceeded}
	}
	return n, err
}

// Write reports a write its deadline ended as an i/o timeout, as Read does.
func (c *wsConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if err != nil && expired(&c.writeDeadline) {
		err = &net.OpError{Op: "write", Net: "websocket", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.ErrDeadlineExceeded}
	}
	return n, err
}

func (c *wsConn) SetDeadline(t time.Time) error {
	_ = c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

func (c *wsConn) SetReadDeadline(t time.Time) error {
	c.readDeadline.Store(unixNano(t))
	return c.Conn.SetReadDeadline(t)
}

func (c *wsConn) SetWriteDeadline(t time.Time) error {
	c.writeDeadline.Store(unixNano(t))
	return c.Conn.SetWriteDeadline(t)
}

// unixNano is t in Unix nanoseconds, 0 for the zero time (no deadline).
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// expired reports whether the deadline in d has passed.
func expired(d *atomic.Int64) bool {
	n := d.Load()
	return n != 0 && time.Now().UnixNano() >= n
}

// Close drops the connection at once. NetConn's Close runs the WebSocket
// closing handshake, up to 5s to send a Close frame and 5s more for the
// answer. A read under way cuts that short, but once the reader has stopped,
// say after a malformed packet, the client would stall for a peer that may
// never answer. The MQTT DISCONNECT already says an end is deliberate, so
// the Close frame adds nothing the broker needs.
func (c *wsConn) Close() error {
	err := c.ws.CloseNow()
	// Stops NetConn's deadline timers; the socket is already closed.
	_ = c.Conn.Close()
	return err
}

// LocalAddr and RemoteAddr are those of the connection underneath, where
// NetConn reports placeholders for a dialled WebSocket. Through a proxy,
// the remote address is the proxy's.
func (c *wsConn) LocalAddr() net.Addr  { return c.raw.LocalAddr() }
func (c *wsConn) RemoteAddr() net.Addr { return c.raw.RemoteAddr() }
