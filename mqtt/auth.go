package mqtt

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/heraldiot/herald/mqtt/packet"
)

// Authenticator carries out MQTT 5.0 enhanced authentication (spec 4.12):
// a challenge/response exchange of AUTH packets under an authentication
// method such as SCRAM-SHA-256. One exchange happens at every connect and
// at every re-authentication (Client.Reauthenticate); the client calls
// Start, then Continue for each challenge, then Finish, never concurrently.
type Authenticator interface {
	// Method is the Authentication Method, e.g. "SCRAM-SHA-256".
	Method() string
	// Start begins an exchange and returns the Authentication Data for
	// CONNECT (or for the AUTH packet that starts a re-authentication).
	Start(ctx context.Context) ([]byte, error)
	// Continue answers a server challenge: the data of an AUTH packet
	// with reason Continue Authentication. It returns the data for the
	// client's AUTH reply; an error ends the exchange and the connection.
	Continue(ctx context.Context, challenge []byte) ([]byte, error)
	// Finish is called with the Authentication Data of the CONNACK or
	// AUTH packet that reports success. An error means the server failed
	// to prove itself (e.g. a wrong SCRAM server signature): the client
	// closes the connection.
	Finish(ctx context.Context, data []byte) error
}

// authStep is one AUTH packet from the server within an exchange.
type authStep struct {
	code ReasonCode
	data []byte
}

func authPacket(code ReasonCode, method string, data []byte) *packet.Auth {
	a := &packet.Auth{ReasonCode: code}
	a.Properties.AuthMethod = []byte(method)
	a.Properties.AuthData = data
	return a
}

// decodeAuth decodes an AUTH packet from the server and checks it uses
// our authentication method.
func decodeAuth(auth Authenticator, h packet.Header, body []byte) (*packet.Auth, error) {
	var a packet.Auth
	// Its user properties are never surfaced: checked, not kept.
	if err := (packet.UnmarshalOptions{DiscardUserProperties: true}).Unmarshal(&a, V5, h.Flags, body); err != nil {
		return nil, fmt.Errorf("AUTH: %w", err)
	}
	if m := a.Properties.AuthMethod; string(m) != auth.Method() {
		return nil, fmt.Errorf("%w: AUTH method %q, want %q", packet.ProtocolError, m, auth.Method()) // [MQTT-4.12.0-5]
	}
	return &a, nil
}

// answerAuth answers a server challenge that arrives before CONNACK.
func (c *Client) answerAuth(ctx context.Context, h packet.Header, body []byte) ([]byte, error) {
	auth := c.opts.Authenticator
	a, err := decodeAuth(auth, h, body)
	if err != nil {
		return nil, err
	}
	if a.ReasonCode != packet.ContinueAuthentication {
		return nil, fmt.Errorf("%w: AUTH %s before CONNACK", packet.ProtocolError, a.ReasonCode)
	}
	data, err := auth.Continue(ctx, a.Properties.AuthData)
	if err != nil {
		return nil, fmt.Errorf("authentication: %w", err)
	}
	return authPacket(packet.ContinueAuthentication, auth.Method(), data).Append(nil, V5)
}

// Reauthenticate runs the Authenticator's exchange again on the current
// connection (MQTT 5.0 section 4.12.1) and returns when the server has
// confirmed it. Publishing and receiving go on meanwhile. A server that
// refuses closes the connection (the error is its *DisconnectError), and
// the client reconnects, authenticating afresh. An exchange cannot be
// left half done: if ctx ends first, the connection is closed.
func (c *Client) Reauthenticate(ctx context.Context) error {
	if c.opts.Authenticator == nil || c.opts.Version != V5 {
		return ErrAuthNeedsV5
	}
	c.mu.Lock()
	cn := c.conn
	c.mu.Unlock()
	if cn == nil {
		return ErrNotConnected
	}
	if !cn.authActive.CompareAndSwap(false, true) {
		return errors.New("mqtt: an authentication exchange is already under way")
	}
	return c.authExchange(ctx, cn)
}

// handleAuth routes an AUTH packet received after CONNACK. The reader
// never runs the authenticator itself: a slow one must not hold up acks.
func (c *Client) handleAuth(cn *conn, h packet.Header, b []byte) error {
	auth := c.opts.Authenticator
	if auth == nil {
		// Enhanced authentication was not offered in CONNECT, so the
		// server must not use it. [MQTT-4.12.0-6]
		return fmt.Errorf("%w: AUTH without an authentication method", packet.ProtocolError)
	}
	a, err := decodeAuth(auth, h, b)
	if err != nil {
		return err
	}
	if a.ReasonCode != packet.ContinueAuthentication && a.ReasonCode != packet.Success {
		// Re-authenticate (0x19) is the client's to send.
		return fmt.Errorf("%w: server sent AUTH %s", packet.ProtocolError, a.ReasonCode)
	}
	if cn.authActive.Load() {
		select {
		case cn.authSteps <- authStep{code: a.ReasonCode, data: bytes.Clone(a.Properties.AuthData)}:
			return nil
		default:
			return fmt.Errorf("%w: AUTH before the client answered the last one", packet.ProtocolError)
		}
	}
	if a.ReasonCode != packet.ContinueAuthentication || !cn.authActive.CompareAndSwap(false, true) {
		return fmt.Errorf("%w: AUTH %s outside an authentication exchange", packet.ProtocolError, a.ReasonCode)
	}
	// MQTT 5.0 gives only the client a way to start re-authentication;
	// a challenge from the server outside an exchange is taken as the
	// server asking for one, so the client starts it.
	cn.wg.Add(1)
	go func() {
		defer cn.wg.Done()
		if err := c.authExchange(cn.ctx, cn); err != nil {
			c.log.Info("re-authentication requested by the server failed", "error", err.Error())
		}
	}()
	return nil
}

// authExchange runs one re-authentication on cn, which the caller marked
// active: AUTH Re-authenticate with the authenticator's first data, then
// challenges answered until the server reports success.
func (c *Client) authExchange(ctx context.Context, cn *conn) error {
	defer cn.authActive.Store(false)
	c.beginAwait()
	defer c.endAwait()
	auth := c.opts.Authenticator
	method := auth.Method()
	data, err := auth.Start(ctx)
	if err != nil {
		return fmt.Errorf("authentication: %w", err)
	}
	if err := cn.writePacket(authPacket(packet.ReAuthenticate, method, data)); err != nil {
		return err
	}
	for {
		var step authStep
		select {
		case step = <-cn.authSteps:
		case <-cn.done:
			return fmt.Errorf("re-authentication: %w", cn.err)
		case <-ctx.Done():
			cn.closeWithReason(fmt.Errorf("re-authentication abandoned: %w", ctx.Err()))
			return ctx.Err()
		}
		if step.code == packet.Success {
			if err := auth.Finish(ctx, step.data); err != nil {
				err = fmt.Errorf("authentication: %w", err)
				cn.closeWithReason(err)
				return err
			}
			return nil
		}
		reply, err := auth.Continue(ctx, step.data)
		if err != nil {
			err = fmt.Errorf("authentication: %w", err)
			cn.closeWithReason(err)
			return err
		}
		if err := cn.writePacket(authPacket(packet.ContinueAuthentication, method, reply)); err != nil {
			return err
		}
	}
}
