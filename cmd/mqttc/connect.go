package main

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/heraldiot/herald/mqtt"
)

// disconnectTimeout bounds the final DISCONNECT and the waits before it.
const disconnectTimeout = 5 * time.Second

// session is a connected client and the tap on its connections.
type session struct {
	client *mqtt.Client
	tap    *wireTap
}

// dial connects as c describes. handler receives every message (nil for
// the publisher). A refusal or network failure comes back as an exitError
// with mosquitto's message and exit code.
func dial(ctx context.Context, e *env, c *connection, debug bool, handler mqtt.Handler) (*session, error) {
	var debugOut io.Writer
	if debug {
		debugOut = e.stdout
	}
	tap := newWireTap(c.version, debugOut)
	opts := c.opts
	opts.DefaultHandler = handler
	// We dial, and do TLS, ourselves: the tap must sit on the plaintext
	// MQTT stream, so the client is given a tcp:// server and this dialer.
	opts.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		nc, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if c.tls != nil {
			tc := tls.Client(nc, c.tls)
			if err := tc.HandshakeContext(ctx); err != nil {
				nc.Close()
				return nil, &tlsError{err: err}
			}
			nc = tc
		}
		return newTapConn(nc, c.version, tap), nil
	}
	client := mqtt.New(opts)
	if err := client.Connect(ctx); err != nil {
		return nil, connectFailure(err, c.version, e.tool == "pub")
	}
	return &session{client: client, tap: tap}, nil
}

// close sends DISCONNECT and stops the client.
func (s *session) close() {
	ctx, cancel := context.WithTimeout(context.Background(), disconnectTimeout)
	defer cancel()
	_ = s.client.Disconnect(ctx)
}

// tlsError is a failed TLS handshake.
type tlsError struct{ err error }

func (e *tlsError) Error() string { return "TLS handshake: " + e.err.Error() }
func (e *tlsError) Unwrap() error { return e.err }

// connectFailure words a failed first connection as mosquitto_pub (pub) or
// mosquitto_sub does, with the same exit code: a refusal exits with its
// CONNACK code, a failure in the TLS or MQTT handshake with libmosquitto's
// error number, and a failure to reach the broker with 1.
func connectFailure(err error, v mqtt.Version, pub bool) error {
	var (
		refused *mqtt.ConnectError
		tlsErr  *tlsError
		dnsErr  *net.DNSError
		opErr   *net.OpError
	)
	switch {
	case errors.As(err, &refused):
		code := byte(refused.Code)
		lines := []string{"Connection error: " + connackText(v, code)}
		if pub {
			// mosquitto_pub adds libmosquitto's error for the failed loop.
			if v == mqtt.V311 && code >= 1 && code <= 5 {
				lines = append(lines, "Error: The connection was refused.")
			} else {
				lines = append(lines, "Error: A network protocol error occurred when communicating with the broker.")
			}
		}
		return &exitError{code: int(code), lines: lines}
	case errors.As(err, &tlsErr):
		// Go's reason first, where mosquitto prints OpenSSL's.
		// mosquitto 2.0.11 says this, or, when its non-blocking handshake
		// fails at once, "Unable to connect (A TLS error occurred.)." and
		// exits with 1: timing decides. This is the usual outcome.
		return &exitError{code: mosqErrTLS, lines: []string{"TLS Error: " + tlsErr.err.Error(), "Error: A TLS error occurred."}}
	case errors.Is(err, syscall.ECONNREFUSED):
		return exitErrorf(exitFailure, "Error: Connection refused")
	case errors.As(err, &dnsErr):
		return exitErrorf(exitFailure, "Unable to connect (Lookup error.).")
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.As(err, &opErr) && opErr.Op == "remote error":
		// The broker hung up during the MQTT handshake, or sent a TLS
		// alert then, as it does under TLS 1.3 for a missing client
		// certificate. mosquitto's wording varies with which of the two
		// reaches it first; this is the usual one.
		return exitErrorf(mosqErrConnLost, "Error: The connection was lost.")
	}
	return exitErrorf(exitFailure, "Error: %v", err)
}
