package mqtt

import (
	"errors"
	"fmt"

	"github.com/heraldiot/herald/mqtt/packet"
)

var (
	// ErrClosed is returned by calls on a client after Close.
	ErrClosed = errors.New("mqtt: client closed")
	// ErrNotConnected is returned by a QoS 0 publish while no connection is up;
	// QoS 1 and 2 publishes wait for the next connection instead.
	ErrNotConnected = errors.New("mqtt: not connected")
	// ErrConnectionLost is returned by calls that were waiting on a
	// connection when it ended: a SUBSCRIBE or UNSUBSCRIBE, which MQTT
	// does not carry over to the next connection, so the caller decides
	// whether to send it again; and, with Options.DisableAutoReconnect, a
	// QoS 1 or 2 publish, whose message stays in the session (see
	// Client.Publish). The error wraps why the connection ended.
	ErrConnectionLost = errors.New("mqtt: connection lost")
	// ErrClientIDRequired means Connect was asked for an MQTT 3.1.1
	// session without a client identifier and without CleanStart, which a
	// server must refuse [MQTT-3.1.3-7]: a session needs a name to be
	// found again.
	ErrClientIDRequired = errors.New("mqtt: MQTT 3.1.1 needs a client ID unless CleanStart is set")
	// ErrKeepAliveTimeout means the server did not answer a PINGREQ in time.
	ErrKeepAliveTimeout = errors.New("mqtt: keepalive timeout: no PINGRESP from the server")
	// ErrPacketTooLarge means a packet exceeds the server's Maximum Packet Size.
	ErrPacketTooLarge = errors.New("mqtt: packet exceeds the server's maximum packet size")
	// ErrWriteBufferFull means the connection was closed because more than
	// Options.MaxWriteBuffer bytes waited to be written: the server sends
	// but is not reading what we send.
	ErrWriteBufferFull = errors.New("mqtt: write buffer full: the server is not reading")
	// ErrQoSNotSupported means the server's Maximum QoS is below the one asked for.
	ErrQoSNotSupported = errors.New("mqtt: QoS above the server's maximum QoS")
	// ErrRetainNotSupported means the server does not support retained messages.
	ErrRetainNotSupported = errors.New("mqtt: server does not support retained messages")
	// ErrFeatureNotSupported means the server announced it lacks a feature
	// the request needs (wildcard, shared subscriptions, subscription identifiers).
	ErrFeatureNotSupported = errors.New("mqtt: feature not supported by the server")
	// ErrTopicAliasInvalid means a Message.TopicAlias the server or the
	// client's own automatic aliases leave no room for (see
	// Message.TopicAlias), or one asked for under MQTT 3.1.1.
	ErrTopicAliasInvalid = errors.New("mqtt: topic alias not available to the caller")
	// ErrAuthNeedsV5 means enhanced authentication was asked for without
	// an Authenticator or under MQTT 3.1.1, which has no AUTH packet.
	ErrAuthNeedsV5 = errors.New("mqtt: enhanced authentication needs MQTT 5.0 and an Authenticator")
)

// ConnectError is a server's refusal of CONNECT.
type ConnectError struct {
	Version Version
	// Code is the v5 reason code, or the 3.1.1 return code.
	Code ReasonCode
	// ReasonString is the server's explanation (v5), if any.
	ReasonString string
	// ServerReference names another server to use (v5), with Code Use
	// Another Server or Server Moved; see Options.MaxRedirects.
	ServerReference string
}

func (e *ConnectError) Error() string {
	name := e.Code.String()
	if e.Version == V311 {
		name = packet.V311ConnackString(e.Code)
	}
	msg := fmt.Sprintf("mqtt: connection refused: %s (0x%02X)", name, byte(e.Code))
	if e.ReasonString != "" {
		msg += ": " + e.ReasonString
	}
	return msg
}

// BadCredentials reports whether the server refused the user name or
// password, or did not authorize the client, in either protocol version.
func (e *ConnectError) BadCredentials() bool {
	if e.Version == V311 {
		return e.Code == packet.V311BadUserNameOrPassword || e.Code == packet.V311NotAuthorized
	}
	return e.Code == packet.BadUserNameOrPassword || e.Code == packet.NotAuthorized
}

// DisconnectError is a DISCONNECT sent by the server (v5), as
// Options.OnConnectionLost receives it; errors.As finds it there.
type DisconnectError struct {
	// Code is why the server closed the connection, e.g. 0x8E Session
	// taken over, 0x8B Server shutting down, 0x9C Use another server.
	Code ReasonCode
	// ReasonString is the server's explanation, if any.
	ReasonString string
	// ServerReference names another server to use, with Code Use Another
	// Server or Server Moved; see Options.MaxRedirects.
	ServerReference string
	// UserProperties are the DISCONNECT's user properties, in order.
	UserProperties []UserProperty
}

func (e *DisconnectError) Error() string {
	msg := fmt.Sprintf("mqtt: disconnected by server: %s (0x%02X)", e.Code, byte(e.Code))
	if e.ReasonString != "" {
		msg += ": " + e.ReasonString
	}
	return msg
}

// PublishError is a server's refusal of a QoS 1 or 2 PUBLISH (v5 PUBACK or
// PUBREC with a failure reason code).
type PublishError struct {
	Topic        string
	Code         ReasonCode
	ReasonString string
}

func (e *PublishError) Error() string {
	msg := fmt.Sprintf("mqtt: publish to %q refused: %s (0x%02X)", e.Topic, e.Code, byte(e.Code))
	if e.ReasonString != "" {
		msg += ": " + e.ReasonString
	}
	return msg
}

// Unwrap exposes the reason code, so errors.Is(err, packet.NotAuthorized) works.
func (e *PublishError) Unwrap() error { return e.Code }

// SubscribeError reports filters a server refused in SUBACK or UNSUBACK.
type SubscribeError struct {
	// Filters and Codes are the refused filters and their reason codes.
	Filters      []string
	Codes        []ReasonCode
	ReasonString string
}

func (e *SubscribeError) Error() string {
	msg := "mqtt: server refused"
	for i, f := range e.Filters {
		msg += fmt.Sprintf(" %q (%s)", f, e.Codes[i])
	}
	if e.ReasonString != "" {
		msg += ": " + e.ReasonString
	}
	return msg
}
