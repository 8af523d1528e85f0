package packet

import (
	"errors"
	"fmt"
)

// Error is a malformed or forbidden packet. Reason is the MQTT 5.0 reason
// code to send in DISCONNECT (or CONNACK) when closing the connection over it.
type Error struct {
	Reason ReasonCode
	msg    string
}

func (e *Error) Error() string { return "mqtt packet: " + e.msg }

func malformed(msg string) *Error { return &Error{Reason: MalformedPacket, msg: msg} }
func protocol(msg string) *Error  { return &Error{Reason: ProtocolError, msg: msg} }

// The errors decoding and encoding return, one per problem. Decode errors
// may be wrapped with detail; test them with errors.Is.
var (
	// ErrShortBuffer means the input ends before the packet does. A stream
	// reader that sees it needs more bytes; anywhere else it is malformed.
	ErrShortBuffer = malformed("packet truncated")
	// ErrVarIntTooLong means a variable byte integer continued past 4 bytes.
	ErrVarIntTooLong = malformed("variable byte integer longer than 4 bytes")
	// ErrVarIntNotMinimal means a variable byte integer used more bytes than needed. [MQTT-1.5.5-1]
	ErrVarIntNotMinimal = malformed("variable byte integer not minimally encoded")
	// ErrPacketTooLarge means the remaining length exceeds the negotiated Maximum Packet Size.
	ErrPacketTooLarge = &Error{Reason: PacketTooLarge, msg: "packet exceeds the maximum packet size"}
	// ErrReservedType means packet type 0 (reserved) or AUTH under 3.1.1.
	ErrReservedType = malformed("reserved or unknown packet type")
	// ErrFlags means the fixed header's flag bits are not the ones the type requires.
	ErrFlags = malformed("invalid fixed header flags")
	// ErrTrailingBytes means the body is longer than its fields.
	ErrTrailingBytes = malformed("unexpected bytes after the packet's fields")
	// ErrInvalidUTF8 means a string is not well-formed UTF-8 or contains U+0000. [MQTT-1.5.4-1], [MQTT-1.5.4-2]
	ErrInvalidUTF8 = malformed("string is not valid UTF-8 or contains U+0000")
	// ErrStringTooLong means a string or binary field exceeds 65,535 bytes.
	ErrStringTooLong = malformed("string or binary data longer than 65535 bytes")
	// ErrProtocolName means CONNECT did not name the protocol "MQTT". [MQTT-3.1.2-1]
	ErrProtocolName = &Error{Reason: UnsupportedProtocolVersion, msg: "protocol name is not MQTT"}
	// ErrProtocolVersion means CONNECT asked for a protocol level other than 4 or 5. [MQTT-3.1.2-2]
	ErrProtocolVersion = &Error{Reason: UnsupportedProtocolVersion, msg: "unsupported protocol level"}
	// ErrConnectReserved means CONNECT's reserved flag bit is set. [MQTT-3.1.2-3]
	ErrConnectReserved = malformed("CONNECT reserved flag is set")
	// ErrWillFlags means will QoS/retain are set without a will, or will QoS is 3. [MQTT-3.1.2-11], [MQTT-3.1.2-14]
	ErrWillFlags = malformed("invalid will flags")
	// ErrPasswordWithoutUsername means a 3.1.1 CONNECT has a password but no user name. [MQTT-3.1.2-22]
	ErrPasswordWithoutUsername = malformed("password flag set without user name flag")
	// ErrConnackFlags means CONNACK's reserved acknowledge flags are set. [MQTT-3.2.2-1]
	ErrConnackFlags = malformed("CONNACK reserved flags are set")
	// ErrQoS means a QoS of 3.
	ErrQoS = malformed("QoS 3 is not a valid QoS")
	// ErrDupQoS0 means DUP is set on a QoS 0 PUBLISH. [MQTT-3.3.1-2]
	ErrDupQoS0 = malformed("DUP flag set on a QoS 0 message")
	// ErrPacketIDZero means a packet that needs a packet identifier carries 0. [MQTT-2.2.1-3]
	ErrPacketIDZero = malformed("packet identifier is 0")
	// ErrTopicName means a topic name is empty (without an alias) or holds a wildcard. [MQTT-3.3.2-2]
	ErrTopicName = &Error{Reason: TopicNameInvalid, msg: "invalid topic name"}
	// ErrTopicFilter means a topic filter is empty or places a wildcard wrongly. [MQTT-4.7.1-1], [MQTT-4.7.1-2]
	ErrTopicFilter = &Error{Reason: TopicFilterInvalid, msg: "invalid topic filter"}
	// ErrSharedSubscription means a $share/ filter without a valid share name or filter. [MQTT-4.8.2-1], [MQTT-4.8.2-2]
	ErrSharedSubscription = &Error{Reason: TopicFilterInvalid, msg: "invalid shared subscription"}
	// ErrNoLocalShared means No Local was asked for on a shared subscription. [MQTT-3.8.3-4]
	ErrNoLocalShared = protocol("No Local set on a shared subscription")
	// ErrSubscriptionOptions means reserved subscription option bits are set
	// [MQTT-3.8.3-5], or, in 3.1.1, any bit but the QoS or a QoS of 3 [MQTT-3-8.3-4].
	ErrSubscriptionOptions = malformed("invalid subscription options")
	// ErrSubscriptionOptionValue means a 5.0 subscription asks for Maximum QoS 3
	// or Retain Handling 3, each "a Protocol Error" in 3.8.3.1.
	ErrSubscriptionOptionValue = protocol("subscription maximum QoS or retain handling of 3")
	// ErrNoFilters means SUBSCRIBE or UNSUBSCRIBE carries no topic filter. [MQTT-3.8.3-2], [MQTT-3.10.3-2]
	ErrNoFilters = protocol("no topic filters")
	// ErrReasonCode means a reason or return code that the packet type does not allow.
	ErrReasonCode = malformed("reason code not allowed in this packet")
	// ErrPropertyNotAllowed means a property identifier not valid for the packet. (2.2.2.2)
	ErrPropertyNotAllowed = malformed("property not allowed in this packet")
	// ErrPropertyDuplicate means a property that may appear once appears twice. (2.2.2.2)
	ErrPropertyDuplicate = protocol("property included more than once")
	// ErrPropertyValue means a property value outside its range, such as Receive Maximum 0.
	ErrPropertyValue = protocol("property value out of range")
	// ErrPropertiesV311 means properties were given for a 3.1.1 packet.
	ErrPropertiesV311 = malformed("properties are not part of MQTT 3.1.1")
	// ErrAuthV311 means an AUTH packet under 3.1.1.
	ErrAuthV311 = malformed("AUTH packet is not part of MQTT 3.1.1")
	// ErrTooLarge means an encoded packet would exceed 268,435,455 bytes.
	ErrTooLarge = malformed("packet larger than the 268435455-byte protocol limit")
)

// ReasonOf returns the reason code to send when closing a connection over
// err: the code carried by an *Error or a ReasonCode in its chain, else
// Unspecified error.
func ReasonOf(err error) ReasonCode {
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Reason
	}
	var rc ReasonCode
	if errors.As(err, &rc) {
		return rc
	}
	return UnspecifiedError
}

func errorf(base *Error, format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{base}, args...)...)
}
