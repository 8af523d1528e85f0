package mqtt

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
)

// dial opens a network connection to one server URL.
func dial(ctx context.Context, o *Options, server string) (net.Conn, error) {
	u, err := url.Parse(server)
	if err != nil {
		return nil, fmt.Errorf("server %q: %w", server, err)
	}
	var useTLS bool
	defaultPort := "1883"
	switch u.Scheme {
	case "tcp", "mqtt":
	case "tls", "ssl", "mqtts":
		useTLS, defaultPort = true, "8883"
	default:
		return nil, fmt.Errorf("server %q: unsupported scheme %q (want tcp, mqtt, tls, ssl or mqtts)", server, u.Scheme)
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
	conn, err := o.Dialer(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if !useTLS {
		return conn, nil
	}
	cfg := &tls.Config{}
	if o.TLSConfig != nil {
		cfg = o.TLSConfig.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("TLS handshake with %s: %w", addr, err)
	}
	return tc, nil
}
