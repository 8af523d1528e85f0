package mqtt

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
)

// dial opens a network connection to one server URL: TCP, TLS, WebSocket
// or WebSocket over TLS, each directly or through an HTTP proxy.
func dial(ctx context.Context, o *Options, server string) (net.Conn, error) {
	u, err := url.Parse(server)
	if err != nil {
		return nil, fmt.Errorf("server %q: %w", server, err)
	}
	var secure, overWebSocket bool
	defaultPort := "1883"
	switch u.Scheme {
	case "tcp", "mqtt":
	case "tls", "ssl", "mqtts":
		secure, defaultPort = true, "8883"
	case "ws":
		overWebSocket, defaultPort = true, "80"
	case "wss":
		secure, overWebSocket, defaultPort = true, true, "443"
	default:
		return nil, fmt.Errorf("server %q: unsupported scheme %q (want tcp, mqtt, tls, ssl, mqtts, ws or wss)", server, u.Scheme)
	}
	host := u.Hostname()
	if host == "" {
		return nil, fmt.Errorf("server %q: no host", server)
	}
	port := u.Port()
	if port == "" {
		port = defaultPort
	}
	addr := net.JoinHostPort(host, port)
	conn, err := dialNetwork(ctx, o, addr, secure)
	if err != nil {
		return nil, err
	}
	if secure {
		var alpn []string
		if overWebSocket {
			// The WebSocket handshake is HTTP/1.1 (RFC 6455); a server
			// offered h2 might pick it and then not understand Upgrade.
			alpn = []string{"http/1.1"}
		}
		if conn, err = handshakeTLS(ctx, conn, o.TLSConfig, host, alpn); err != nil {
			return nil, fmt.Errorf("TLS handshake with %s: %w", addr, err)
		}
	}
	if overWebSocket {
		return dialWebSocket(ctx, conn, u, addr)
	}
	return conn, nil
}

// handshakeTLS runs a TLS client handshake over conn, closing conn if it
// fails. ServerName defaults to host, so certificates are verified against
// the server URL unless the config says otherwise; alpn, when set,
// replaces the config's NextProtos.
func handshakeTLS(ctx context.Context, conn net.Conn, base *tls.Config, host string, alpn []string) (net.Conn, error) {
	cfg := &tls.Config{}
	if base != nil {
		cfg = base.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	if alpn != nil {
		cfg.NextProtos = alpn
	}
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	return tc, nil
}
