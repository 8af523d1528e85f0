package packet_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/heraldiot/herald/mqtt/packet"
)

// protocolName is CONNECT's length-prefixed protocol name. (3.1.2.1)
const protocolName = "\x00\x04MQTT"

// TestDecodeErrors gives each problem decoding can meet a minimal packet
// that has it and nothing else wrong, and checks the error and the reason
// code a server would close the connection with. ErrStringTooLong,
// ErrTooLarge and ErrPropertiesV311 are encode-only: a two-byte length
// cannot exceed 65,535 and decoding never meets a value to refuse.
func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name    string
		v       packet.Version
		raw     []byte
		maxSize uint32
		want    error
		reason  packet.ReasonCode
	}{
		// Fixed header (2.1, 1.5.5)
		{
			name: "remaining length of 5 bytes",
			v:    packet.V311,
			raw:  wire(0x30, 0x80, 0x80, 0x80, 0x80, 0x01), // a fifth length byte: at most 4 are allowed (1.5.5)
			want: packet.ErrVarIntTooLong, reason: packet.MalformedPacket,
		},
		{
			name: "remaining length not minimal",
			v:    packet.V311,
			raw:  wire(0xC0, 0x80, 0x00), // 0 in two bytes [MQTT-1.5.5-1]
			want: packet.ErrVarIntNotMinimal, reason: packet.MalformedPacket,
		},
		{
			name: "property length not minimal",
			v:    packet.V5,
			raw:  wire(0x30, 5, 0x00, 0x01, "a", 0x80, 0x00), // property length 0 in two bytes
			want: packet.ErrVarIntNotMinimal, reason: packet.MalformedPacket,
		},
		{
			// Only the fixed header is supplied: the limit must be applied
			// before the body is needed, so nothing is buffered for it.
			name:    "remaining length above maximum packet size",
			v:       packet.V5,
			raw:     wire(0x30, 0xFF, 0xFF, 0xFF, 0x7F), // PUBLISH claiming 268,435,455 bytes
			maxSize: 1024,
			want:    packet.ErrPacketTooLarge, reason: packet.PacketTooLarge,
		},
		{
			name:    "packet one byte above maximum packet size",
			v:       packet.V5,
			raw:     wire(0x30, 4, 0x00, 0x01, "a", 0x00), // 6 bytes in all
			maxSize: 5,
			want:    packet.ErrPacketTooLarge, reason: packet.PacketTooLarge,
		},
		{
			name: "reserved type 0",
			v:    packet.V5,
			raw:  wire(0x00, 0x00),
			want: packet.ErrReservedType, reason: packet.MalformedPacket,
		},
		{
			name: "AUTH under 3.1.1",
			v:    packet.V311,
			raw:  wire(0xF0, 0x00), // type 15 is reserved in 3.1.1 (2.2.1)
			want: packet.ErrReservedType, reason: packet.MalformedPacket,
		},
		{
			name: "PUBREL without its flags",
			v:    packet.V311,
			raw:  wire(0x60, 2, 0x00, 0x01), // flags must be 0010 [MQTT-3.6.1-1]
			want: packet.ErrFlags, reason: packet.MalformedPacket,
		},
		{
			name: "SUBSCRIBE without its flags",
			v:    packet.V311,
			raw:  wire(0x80, 6, 0x00, 0x01, 0x00, 0x01, "a", 0x00), // flags must be 0010 [MQTT-3.8.1-1]
			want: packet.ErrFlags, reason: packet.MalformedPacket,
		},
		{
			name: "PINGREQ with flags",
			v:    packet.V5,
			raw:  wire(0xC1, 0x00), // reserved flags must be 0 [MQTT-2.1.3-1]
			want: packet.ErrFlags, reason: packet.MalformedPacket,
		},

		// PUBLISH (3.3)
		{
			name: "PUBLISH QoS 3",
			v:    packet.V311,
			raw:  wire(0x36, 5, 0x00, 0x01, "a", 0x00, 0x01), // both QoS bits set [MQTT-3.3.1-4]
			want: packet.ErrQoS, reason: packet.MalformedPacket,
		},
		{
			name: "PUBLISH DUP on QoS 0",
			v:    packet.V311,
			raw:  wire(0x38, 3, 0x00, 0x01, "a"), // [MQTT-3.3.1-2]
			want: packet.ErrDupQoS0, reason: packet.MalformedPacket,
		},
		{
			name: "PUBLISH packet identifier 0",
			v:    packet.V311,
			raw:  wire(0x32, 5, 0x00, 0x01, "a", 0x00, 0x00), // QoS 1 needs a non-zero identifier [MQTT-2.2.1-3]
			want: packet.ErrPacketIDZero, reason: packet.MalformedPacket,
		},
		{
			name: "PUBLISH topic not UTF-8",
			v:    packet.V311,
			raw:  wire(0x30, 4, 0x00, 0x02, 0xC3, 0x28), // 0xC3 starts a 2-byte sequence 0x28 cannot continue [MQTT-1.5.4-1]
			want: packet.ErrInvalidUTF8, reason: packet.MalformedPacket,
		},
		{
			name: "PUBLISH topic with a UTF-16 surrogate",
			v:    packet.V5,
			raw:  wire(0x30, 6, 0x00, 0x03, 0xED, 0xA0, 0x80, 0x00), // U+D800 encoded [MQTT-1.5.4-1]
			want: packet.ErrInvalidUTF8, reason: packet.MalformedPacket,
		},
		{
			name: "PUBLISH topic with U+0000",
			v:    packet.V311,
			raw:  wire(0x30, 4, 0x00, 0x02, "a", 0x00), // [MQTT-1.5.4-2]
			want: packet.ErrInvalidUTF8, reason: packet.MalformedPacket,
		},
		{
			name: "PUBLISH topic with +",
			v:    packet.V311,
			raw:  wire(0x30, 5, 0x00, 0x03, "a/+"), // no wildcards in a topic name [MQTT-3.3.2-2]
			want: packet.ErrTopicName, reason: packet.TopicNameInvalid,
		},
		{
			name: "PUBLISH topic with #",
			v:    packet.V5,
			raw:  wire(0x30, 4, 0x00, 0x01, "#", 0x00), // [MQTT-3.3.2-2]
			want: packet.ErrTopicName, reason: packet.TopicNameInvalid,
		},
		{
			name: "PUBLISH empty topic under 3.1.1",
			v:    packet.V311,
			raw:  wire(0x30, 2, 0x00, 0x00), // a topic name is at least one character [MQTT-4.7.3-1]
			want: packet.ErrTopicName, reason: packet.TopicNameInvalid,
		},
		{
			name: "PUBLISH empty topic without a topic alias",
			v:    packet.V5,
			raw:  wire(0x30, 3, 0x00, 0x00, 0x00), // only a topic alias may stand in for the name (3.3.2.1)
			want: packet.ErrTopicName, reason: packet.TopicNameInvalid,
		},
		{
			name: "PUBLISH topic longer than the packet",
			v:    packet.V311,
			raw:  wire(0x30, 3, 0x00, 0x05, "a"),
			want: packet.ErrShortBuffer, reason: packet.MalformedPacket,
		},
		{
			name: "PUBLISH body shorter than the remaining length",
			v:    packet.V311,
			raw:  wire(0x30, 5, 0x00, 0x01, "a"),
			want: packet.ErrShortBuffer, reason: packet.MalformedPacket,
		},

		// Properties (2.2.2)
		{
			name: "Topic Alias in CONNECT",
			v:    packet.V5,
			raw: wire(0x10, 16, protocolName, 0x05, 0x02, 0x00, 0x3C,
				3, 0x23, 0x00, 0x01, // topic alias: a PUBLISH property only (2.2.2.2)
				0x00, 0x00),
			want: packet.ErrPropertyNotAllowed, reason: packet.MalformedPacket,
		},
		{
			name: "Session Expiry in will properties",
			v:    packet.V5,
			raw: wire(0x10, 24, protocolName, 0x05, 0x06, 0x00, 0x3C, // flags: will, clean start
				0x00,       // property length 0
				0x00, 0x00, // client identifier
				5, 0x11, 0x00, 0x00, 0x00, 0x01, // will properties: session expiry is not one (3.1.3.2)
				0x00, 0x01, "w", // will topic
				0x00, 0x00), // will payload
			want: packet.ErrPropertyNotAllowed, reason: packet.MalformedPacket,
		},
		{
			name: "unknown property identifier",
			v:    packet.V5,
			raw:  wire(0x30, 6, 0x00, 0x01, "a", 2, 0x04, 0x00), // 0x04 is not assigned
			want: packet.ErrPropertyNotAllowed, reason: packet.MalformedPacket,
		},
		{
			// The identifier is a variable byte integer (2.2.2.2): 257 is
			// not a property, whatever its low byte says.
			name: "property identifier 257",
			v:    packet.V5,
			raw:  wire(0x30, 7, 0x00, 0x01, "a", 3, 0x81, 0x02, 0x01),
			want: packet.ErrPropertyNotAllowed, reason: packet.MalformedPacket,
		},
		{
			name: "property length beyond the packet",
			v:    packet.V5,
			raw:  wire(0x30, 5, 0x00, 0x01, "a", 5, 0x01),
			want: packet.ErrShortBuffer, reason: packet.MalformedPacket,
		},
		{
			name: "property value cut short",
			v:    packet.V5,
			raw:  wire(0x30, 7, 0x00, 0x01, "a", 3, 0x02, 0x00, 0x00), // message expiry needs 4 bytes
			want: packet.ErrShortBuffer, reason: packet.MalformedPacket,
		},
		{
			name: "duplicate Message Expiry Interval",
			v:    packet.V5,
			raw: wire(0x30, 14, 0x00, 0x01, "a", 10,
				0x02, 0x00, 0x00, 0x00, 0x01,
				0x02, 0x00, 0x00, 0x00, 0x02), // "Protocol Error to include ... more than once" (3.3.2.3.3)
			want: packet.ErrPropertyDuplicate, reason: packet.ProtocolError,
		},
		{
			name: "two Subscription Identifiers in SUBSCRIBE",
			v:    packet.V5,
			raw:  wire(0x82, 11, 0x00, 0x01, 4, 0x0B, 0x01, 0x0B, 0x02, 0x00, 0x01, "a", 0x00), // (3.8.2.1.2)
			want: packet.ErrPropertyDuplicate, reason: packet.ProtocolError,
		},
		{
			name: "Receive Maximum 0",
			v:    packet.V5,
			raw: wire(0x10, 16, protocolName, 0x05, 0x02, 0x00, 0x3C,
				3, 0x21, 0x00, 0x00, // "Protocol Error to include ... a value of 0" (3.1.2.11.3)
				0x00, 0x00),
			want: packet.ErrPropertyValue, reason: packet.ProtocolError,
		},
		{
			name: "Topic Alias 0",
			v:    packet.V5,
			raw:  wire(0x30, 7, 0x00, 0x01, "a", 3, 0x23, 0x00, 0x00), // "A Topic Alias of 0 is not permitted" (3.3.2.3.4)
			want: packet.ErrPropertyValue, reason: packet.ProtocolError,
		},
		{
			name: "Subscription Identifier 0",
			v:    packet.V5,
			raw:  wire(0x82, 9, 0x00, 0x01, 2, 0x0B, 0x00, 0x00, 0x01, "a", 0x00), // (3.8.2.1.2)
			want: packet.ErrPropertyValue, reason: packet.ProtocolError,
		},
		{
			name: "Maximum QoS 2 in CONNACK",
			v:    packet.V5,
			raw:  wire(0x20, 5, 0x00, 0x00, 2, 0x24, 0x02), // 0 or 1 only (3.2.2.3.4)
			want: packet.ErrPropertyValue, reason: packet.ProtocolError,
		},

		// Trailing bytes
		{
			name: "PINGREQ with a body",
			v:    packet.V311,
			raw:  wire(0xC0, 1, 0x00),
			want: packet.ErrTrailingBytes, reason: packet.MalformedPacket,
		},
		{
			name: "PUBACK v3.1.1 with a reason code",
			v:    packet.V311,
			raw:  wire(0x40, 3, 0x00, 0x01, 0x00), // 3.1.1 PUBACK is the identifier alone (3.4.1)
			want: packet.ErrTrailingBytes, reason: packet.MalformedPacket,
		},
		{
			name: "DISCONNECT v3.1.1 with a body",
			v:    packet.V311,
			raw:  wire(0xE0, 1, 0x00),
			want: packet.ErrTrailingBytes, reason: packet.MalformedPacket,
		},
		{
			name: "PUBACK v5 bytes after the properties",
			v:    packet.V5,
			raw:  wire(0x40, 5, 0x00, 0x01, 0x00, 0x00, 0xFF),
			want: packet.ErrTrailingBytes, reason: packet.MalformedPacket,
		},
		{
			name: "UNSUBACK v3.1.1 with a reason code",
			v:    packet.V311,
			raw:  wire(0xB0, 3, 0x00, 0x01, 0x00), // 3.1.1 UNSUBACK has no payload (3.11.3)
			want: packet.ErrTrailingBytes, reason: packet.MalformedPacket,
		},

		// SUBSCRIBE, UNSUBSCRIBE (3.8, 3.10)
		{
			name: "SUBSCRIBE packet identifier 0",
			v:    packet.V311,
			raw:  wire(0x82, 6, 0x00, 0x00, 0x00, 0x01, "a", 0x00), // [MQTT-2.2.1-3]
			want: packet.ErrPacketIDZero, reason: packet.MalformedPacket,
		},
		{
			name: "SUBSCRIBE without filters v3.1.1",
			v:    packet.V311,
			raw:  wire(0x82, 2, 0x00, 0x01), // [MQTT-3.8.3-3]
			want: packet.ErrNoFilters, reason: packet.ProtocolError,
		},
		{
			name: "SUBSCRIBE without filters v5",
			v:    packet.V5,
			raw:  wire(0x82, 3, 0x00, 0x01, 0x00), // [MQTT-3.8.3-2]
			want: packet.ErrNoFilters, reason: packet.ProtocolError,
		},
		{
			name: "UNSUBSCRIBE without filters",
			v:    packet.V311,
			raw:  wire(0xA2, 2, 0x00, 0x01), // [MQTT-3.10.3-2]
			want: packet.ErrNoFilters, reason: packet.ProtocolError,
		},
		{
			name: "No Local on a shared subscription",
			v:    packet.V5,
			raw:  wire(0x82, 16, 0x00, 0x01, 0x00, 0x00, 0x0A, "$share/g/a", 0x04), // [MQTT-3.8.3-4]
			want: packet.ErrNoLocalShared, reason: packet.ProtocolError,
		},
		{
			name: "retain handling 3",
			v:    packet.V5,
			raw:  wire(0x82, 7, 0x00, 0x01, 0x00, 0x00, 0x01, "a", 0x30), // "Protocol Error to send a Retain Handling value of 3" (3.8.3.1)
			want: packet.ErrSubscriptionOptionValue, reason: packet.ProtocolError,
		},
		{
			name: "subscription maximum QoS 3 v5",
			v:    packet.V5,
			raw:  wire(0x82, 7, 0x00, 0x01, 0x00, 0x00, 0x01, "a", 0x03), // "Protocol Error if the Maximum QoS field has the value 3" (3.8.3.1)
			want: packet.ErrSubscriptionOptionValue, reason: packet.ProtocolError,
		},
		{
			name: "subscription options reserved bits v5",
			v:    packet.V5,
			raw:  wire(0x82, 7, 0x00, 0x01, 0x00, 0x00, 0x01, "a", 0x40), // [MQTT-3.8.3-5]
			want: packet.ErrSubscriptionOptions, reason: packet.MalformedPacket,
		},
		{
			name: "subscription options v5 bits under 3.1.1",
			v:    packet.V311,
			raw:  wire(0x82, 6, 0x00, 0x01, 0x00, 0x01, "a", 0x04), // reserved in 3.1.1 [MQTT-3-8.3-4]
			want: packet.ErrSubscriptionOptions, reason: packet.MalformedPacket,
		},
		{
			name: "subscription QoS 3 under 3.1.1",
			v:    packet.V311,
			raw:  wire(0x82, 6, 0x00, 0x01, 0x00, 0x01, "a", 0x03), // malformed in 3.1.1 [MQTT-3-8.3-4]
			want: packet.ErrSubscriptionOptions, reason: packet.MalformedPacket,
		},
		{
			name: "SUBSCRIBE filter with # before the last level",
			v:    packet.V311,
			raw:  wire(0x82, 10, 0x00, 0x01, 0x00, 0x05, "a/#/b", 0x00), // [MQTT-4.7.1-1]
			want: packet.ErrTopicFilter, reason: packet.TopicFilterInvalid,
		},
		{
			name: "SUBSCRIBE shared subscription without a share name",
			v:    packet.V5,
			raw:  wire(0x82, 15, 0x00, 0x01, 0x00, 0x00, 0x09, "$share//a", 0x00), // [MQTT-4.8.2-1]
			want: packet.ErrSharedSubscription, reason: packet.TopicFilterInvalid,
		},
		{
			name: "SUBSCRIBE filter not UTF-8",
			v:    packet.V311,
			raw:  wire(0x82, 6, 0x00, 0x01, 0x00, 0x01, 0xFF, 0x00), // [MQTT-1.5.4-1]
			want: packet.ErrInvalidUTF8, reason: packet.MalformedPacket,
		},
		{
			name: "UNSUBSCRIBE filter with + inside a level",
			v:    packet.V311,
			raw:  wire(0xA2, 6, 0x00, 0x01, 0x00, 0x02, "a+"), // [MQTT-4.7.1-2]
			want: packet.ErrTopicFilter, reason: packet.TopicFilterInvalid,
		},

		// CONNECT (3.1)
		{
			name: "CONNECT protocol name MQTX",
			v:    packet.V311,
			raw:  wire(0x10, 12, 0x00, 0x04, "MQTX", 0x04, 0x02, 0x00, 0x3C, 0x00, 0x00), // [MQTT-3.1.2-1]
			want: packet.ErrProtocolName, reason: packet.UnsupportedProtocolVersion,
		},
		{
			name: "CONNECT protocol level 3",
			v:    packet.V311,
			raw:  wire(0x10, 12, protocolName, 0x03, 0x02, 0x00, 0x3C, 0x00, 0x00), // [MQTT-3.1.2-2]
			want: packet.ErrProtocolVersion, reason: packet.UnsupportedProtocolVersion,
		},
		{
			name: "CONNECT reserved flag",
			v:    packet.V311,
			raw:  wire(0x10, 12, protocolName, 0x04, 0x03, 0x00, 0x3C, 0x00, 0x00), // [MQTT-3.1.2-3]
			want: packet.ErrConnectReserved, reason: packet.MalformedPacket,
		},
		{
			name: "CONNECT will QoS without will",
			v:    packet.V5,
			raw:  wire(0x10, 13, protocolName, 0x05, 0x0A, 0x00, 0x3C, 0x00, 0x00, 0x00), // [MQTT-3.1.2-11]
			want: packet.ErrWillFlags, reason: packet.MalformedPacket,
		},
		{
			name: "CONNECT will retain without will",
			v:    packet.V311,
			raw:  wire(0x10, 12, protocolName, 0x04, 0x22, 0x00, 0x3C, 0x00, 0x00), // 3.1.1 [MQTT-3.1.2-15]
			want: packet.ErrWillFlags, reason: packet.MalformedPacket,
		},
		{
			name: "CONNECT will QoS 3",
			v:    packet.V311,
			raw:  wire(0x10, 12, protocolName, 0x04, 0x1E, 0x00, 0x3C, 0x00, 0x00), // [MQTT-3.1.2-14]
			want: packet.ErrWillFlags, reason: packet.MalformedPacket,
		},
		{
			name: "CONNECT v3.1.1 password without user name",
			v:    packet.V311,
			raw:  wire(0x10, 12, protocolName, 0x04, 0x42, 0x00, 0x3C, 0x00, 0x00), // [MQTT-3.1.2-22]
			want: packet.ErrPasswordWithoutUsername, reason: packet.MalformedPacket,
		},
		{
			name: "CONNECT will topic with a wildcard",
			v:    packet.V311,
			raw: wire(0x10, 17, protocolName, 0x04, 0x06, 0x00, 0x3C, // flags: will, clean session
				0x00, 0x00, // client identifier
				0x00, 0x01, "#", // will topic [MQTT-3.3.2-2]
				0x00, 0x00), // will payload
			want: packet.ErrTopicName, reason: packet.TopicNameInvalid,
		},
		{
			name: "CONNECT client identifier cut short",
			v:    packet.V311,
			raw:  wire(0x10, 12, protocolName, 0x04, 0x02, 0x00, 0x3C, 0x00, 0x05),
			want: packet.ErrShortBuffer, reason: packet.MalformedPacket,
		},

		// Acknowledgements and reason codes
		{
			name: "CONNACK reserved flags",
			v:    packet.V311,
			raw:  wire(0x20, 2, 0x02, 0x00), // bits 7–1 are reserved [MQTT-3.2.2-1]
			want: packet.ErrConnackFlags, reason: packet.MalformedPacket,
		},
		{
			name: "CONNACK session present with a refusal",
			v:    packet.V311,
			raw:  wire(0x20, 2, 0x01, 0x05), // [MQTT-3.2.2-4]
			want: packet.ErrConnackFlags, reason: packet.MalformedPacket,
		},
		{
			name: "CONNACK v3.1.1 return code 6",
			v:    packet.V311,
			raw:  wire(0x20, 2, 0x00, 0x06), // 6–255 are reserved (3.2.2.3)
			want: packet.ErrReasonCode, reason: packet.MalformedPacket,
		},
		{
			name: "CONNACK v5 reason code 0x10",
			v:    packet.V5,
			raw:  wire(0x20, 3, 0x00, 0x10, 0x00), // not in the CONNACK table (3.2.2.2)
			want: packet.ErrReasonCode, reason: packet.MalformedPacket,
		},
		{
			name: "PUBACK packet identifier 0",
			v:    packet.V5,
			raw:  wire(0x40, 2, 0x00, 0x00), // [MQTT-2.2.1-3]
			want: packet.ErrPacketIDZero, reason: packet.MalformedPacket,
		},
		{
			name: "PUBREL reason code no matching subscribers",
			v:    packet.V5,
			raw:  wire(0x62, 3, 0x00, 0x01, 0x10), // PUBREL allows 0x00 and 0x92 only (3.6.2.1)
			want: packet.ErrReasonCode, reason: packet.MalformedPacket,
		},
		{
			name: "SUBACK v3.1.1 return code 3",
			v:    packet.V311,
			raw:  wire(0x90, 3, 0x00, 0x01, 0x03), // [MQTT-3.9.3-2]
			want: packet.ErrReasonCode, reason: packet.MalformedPacket,
		},
		{
			name: "SUBACK without reason codes",
			v:    packet.V5,
			raw:  wire(0x90, 3, 0x00, 0x01, 0x00), // one code per filter, and a SUBSCRIBE has at least one
			want: packet.ErrReasonCode, reason: packet.MalformedPacket,
		},
		{
			name: "DISCONNECT reason code unsupported protocol version",
			v:    packet.V5,
			raw:  wire(0xE0, 1, 0x84), // a CONNACK code, not a DISCONNECT one (3.14.2.1)
			want: packet.ErrReasonCode, reason: packet.MalformedPacket,
		},
		{
			name: "AUTH reason code 0x01",
			v:    packet.V5,
			raw:  wire(0xF0, 1, 0x01), // AUTH allows 0x00, 0x18, 0x19 (3.15.2.1)
			want: packet.ErrReasonCode, reason: packet.MalformedPacket,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, n, err := packet.Decode(tc.raw, tc.v, tc.maxSize)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Decode(% X) error = %v, want %v", tc.raw, err, tc.want)
			}
			if got := packet.ReasonOf(err); got != tc.reason {
				t.Errorf("ReasonOf(%v) = 0x%02X, want 0x%02X", err, byte(got), byte(tc.reason))
			}
			if p != nil || n != 0 {
				t.Errorf("Decode returned packet %v and n=%d with an error", p, n)
			}
		})
	}
}

// TestUnmarshalAuthV311 covers the AUTH check of Unmarshal itself, which
// Decode never reaches because the fixed header already refuses type 15.
func TestUnmarshalAuthV311(t *testing.T) {
	err := (&packet.Auth{}).Unmarshal(packet.V311, 0, nil)
	if !errors.Is(err, packet.ErrAuthV311) {
		t.Fatalf("Unmarshal AUTH under 3.1.1: %v, want ErrAuthV311", err)
	}
}

// TestEncodeErrors checks that Append refuses what it cannot encode
// faithfully, returning an error rather than panicking or writing a packet
// the peer would reject, and that it leaves dst as it was.
func TestEncodeErrors(t *testing.T) {
	long := bytes.Repeat([]byte{'a'}, 0x10000) // one byte beyond a two-byte length
	tests := []struct {
		name string
		v    packet.Version
		pkt  packet.Packet
		want error
	}{
		{"PUBLISH QoS 3", packet.V5, &packet.Publish{QoS: 3, Topic: []byte("a"), PacketID: 1}, packet.ErrQoS},
		{"PUBLISH DUP on QoS 0", packet.V311, &packet.Publish{Dup: true, Topic: []byte("a")}, packet.ErrDupQoS0},
		{"PUBLISH QoS 1 packet identifier 0", packet.V311, &packet.Publish{QoS: 1, Topic: []byte("a")}, packet.ErrPacketIDZero},
		{"PUBLISH topic with wildcard", packet.V5, &packet.Publish{Topic: []byte("a/#")}, packet.ErrTopicName},
		{"PUBLISH empty topic v3.1.1", packet.V311, &packet.Publish{}, packet.ErrTopicName},
		{"PUBLISH empty topic v5 without alias", packet.V5, &packet.Publish{}, packet.ErrTopicName},
		{"PUBLISH topic alias under v3.1.1", packet.V311,
			&packet.Publish{Properties: packet.Properties{TopicAlias: 1}}, packet.ErrTopicName},
		{"PUBLISH topic too long", packet.V311, &packet.Publish{Topic: long}, packet.ErrStringTooLong},
		{"PUBLISH properties under v3.1.1", packet.V311,
			&packet.Publish{Topic: []byte("a"), Properties: packet.Properties{MessageExpiry: 5}}, packet.ErrPropertiesV311},
		{"PUBLISH marked zero property under v3.1.1", packet.V311,
			&packet.Publish{Topic: []byte("a"), Properties: props(packet.Properties{}, packet.PropPayloadFormat)},
			packet.ErrPropertiesV311},
		{"PUBLISH topic alias 0 marked", packet.V5,
			&packet.Publish{Topic: []byte("a"), Properties: props(packet.Properties{}, packet.PropTopicAlias)},
			packet.ErrPropertyValue},
		{"PUBLISH Session Expiry", packet.V5,
			&packet.Publish{Topic: []byte("a"), Properties: packet.Properties{SessionExpiry: 1}}, packet.ErrPropertyNotAllowed},
		{"PUBLISH content type not UTF-8", packet.V5,
			&packet.Publish{Topic: []byte("a"), Properties: packet.Properties{ContentType: []byte{0xFF}}}, packet.ErrInvalidUTF8},
		{"PUBLISH correlation data too long", packet.V5,
			&packet.Publish{Topic: []byte("a"), Properties: packet.Properties{CorrelationData: long}}, packet.ErrStringTooLong},
		{"PUBLISH subscription identifier 0", packet.V5,
			&packet.Publish{Topic: []byte("a"), Properties: packet.Properties{SubscriptionIDs: []uint32{0}}}, packet.ErrPropertyValue},
		{"PUBLISH subscription identifier above the varint range", packet.V5,
			&packet.Publish{Topic: []byte("a"), Properties: packet.Properties{SubscriptionIDs: []uint32{packet.MaxVarInt + 1}}},
			packet.ErrPropertyValue},

		{"CONNECT Topic Alias", packet.V5,
			&packet.Connect{Version: packet.V5, Properties: packet.Properties{TopicAlias: 1}}, packet.ErrPropertyNotAllowed},
		{"CONNECT Receive Maximum 0 marked", packet.V5,
			&packet.Connect{Version: packet.V5, Properties: props(packet.Properties{}, packet.PropReceiveMaximum)},
			packet.ErrPropertyValue},
		{"CONNECT protocol level 3", packet.V311, &packet.Connect{Version: 3}, packet.ErrProtocolVersion},
		{"CONNECT client identifier too long", packet.V311,
			&packet.Connect{Version: packet.V311, ClientID: long}, packet.ErrStringTooLong},
		{"CONNECT client identifier with U+0000", packet.V311,
			&packet.Connect{Version: packet.V311, ClientID: []byte("a\x00")}, packet.ErrInvalidUTF8},
		{"CONNECT user property name too long", packet.V5,
			&packet.Connect{Version: packet.V5, Properties: packet.Properties{User: []packet.UserProperty{{Key: long}}}},
			packet.ErrStringTooLong},
		{"CONNECT user property value not UTF-8", packet.V5,
			&packet.Connect{Version: packet.V5, Properties: packet.Properties{User: []packet.UserProperty{{Key: []byte("k"), Value: []byte{0xC0}}}}},
			packet.ErrInvalidUTF8},
		{"CONNECT properties under v3.1.1", packet.V311,
			&packet.Connect{Version: packet.V311, Properties: packet.Properties{SessionExpiry: 1}}, packet.ErrPropertiesV311},
		{"CONNECT will QoS 3", packet.V311,
			&packet.Connect{Version: packet.V311, WillFlag: true, Will: packet.Will{QoS: 3, Topic: []byte("w")}}, packet.ErrWillFlags},
		{"CONNECT will topic with wildcard", packet.V311,
			&packet.Connect{Version: packet.V311, WillFlag: true, Will: packet.Will{Topic: []byte("w/+")}}, packet.ErrTopicName},
		{"CONNECT will payload too long", packet.V311,
			&packet.Connect{Version: packet.V311, WillFlag: true, Will: packet.Will{Topic: []byte("w"), Payload: long}},
			packet.ErrStringTooLong},
		{"CONNECT will properties under v3.1.1", packet.V311,
			&packet.Connect{Version: packet.V311, WillFlag: true,
				Will: packet.Will{Topic: []byte("w"), Properties: packet.Properties{WillDelay: 1}}}, packet.ErrPropertiesV311},
		{"CONNECT will property not allowed", packet.V5,
			&packet.Connect{Version: packet.V5, WillFlag: true,
				Will: packet.Will{Topic: []byte("w"), Properties: packet.Properties{ReceiveMaximum: 1}}}, packet.ErrPropertyNotAllowed},
		{"CONNECT v3.1.1 password without user name", packet.V311,
			&packet.Connect{Version: packet.V311, Password: []byte("p")}, packet.ErrPasswordWithoutUsername},
		{"CONNECT user name too long", packet.V5,
			&packet.Connect{Version: packet.V5, Username: long}, packet.ErrStringTooLong},

		{"CONNACK v3.1.1 return code 6", packet.V311, &packet.Connack{ReasonCode: 6}, packet.ErrReasonCode},
		{"CONNACK v5 reason code 0x10", packet.V5, &packet.Connack{ReasonCode: packet.NoMatchingSubscribers}, packet.ErrReasonCode},
		{"CONNACK session present with a refusal", packet.V5,
			&packet.Connack{SessionPresent: true, ReasonCode: packet.NotAuthorized}, packet.ErrConnackFlags},
		{"CONNACK properties under v3.1.1", packet.V311,
			&packet.Connack{Properties: packet.Properties{ReceiveMaximum: 1}}, packet.ErrPropertiesV311},

		{"SUBSCRIBE invalid filter", packet.V311,
			&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: []byte("a/#/b")}}}, packet.ErrTopicFilter},
		{"SUBSCRIBE empty filter", packet.V5,
			&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: []byte{}}}}, packet.ErrTopicFilter},
		{"SUBSCRIBE shared without filter", packet.V5,
			&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: []byte("$share/g")}}},
			packet.ErrSharedSubscription},
		{"SUBSCRIBE without filters", packet.V5, &packet.Subscribe{PacketID: 1}, packet.ErrNoFilters},
		{"SUBSCRIBE packet identifier 0", packet.V5,
			&packet.Subscribe{Subscriptions: []packet.Subscription{{Filter: []byte("a")}}}, packet.ErrPacketIDZero},
		{"SUBSCRIBE QoS 3", packet.V5,
			&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: []byte("a"), QoS: 3}}},
			packet.ErrSubscriptionOptionValue},
		{"SUBSCRIBE retain handling 3", packet.V5,
			&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: []byte("a"), RetainHandling: 3}}},
			packet.ErrSubscriptionOptionValue},
		{"SUBSCRIBE No Local under v3.1.1", packet.V311,
			&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: []byte("a"), NoLocal: true}}},
			packet.ErrPropertiesV311},
		{"SUBSCRIBE No Local on a shared subscription", packet.V5,
			&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: []byte("$share/g/a"), NoLocal: true}}},
			packet.ErrNoLocalShared},
		{"SUBSCRIBE two subscription identifiers", packet.V5,
			&packet.Subscribe{PacketID: 1, Properties: packet.Properties{SubscriptionIDs: []uint32{1, 2}},
				Subscriptions: []packet.Subscription{{Filter: []byte("a")}}}, packet.ErrPropertyDuplicate},

		{"SUBACK reason code not for SUBACK", packet.V5,
			&packet.Suback{PacketID: 1, ReasonCodes: []packet.ReasonCode{packet.NoSubscriptionExisted}}, packet.ErrReasonCode},
		{"SUBACK v3.1.1 return code 3", packet.V311,
			&packet.Suback{PacketID: 1, ReasonCodes: []packet.ReasonCode{3}}, packet.ErrReasonCode},
		{"SUBACK without reason codes", packet.V311, &packet.Suback{PacketID: 1}, packet.ErrReasonCode},
		{"UNSUBACK reason code not for UNSUBACK", packet.V5,
			&packet.Unsuback{PacketID: 1, ReasonCodes: []packet.ReasonCode{packet.GrantedQoS1}}, packet.ErrReasonCode},
		{"UNSUBACK v3.1.1 with reason codes", packet.V311,
			&packet.Unsuback{PacketID: 1, ReasonCodes: []packet.ReasonCode{packet.Success}}, packet.ErrPropertiesV311},
		{"UNSUBSCRIBE invalid filter", packet.V311,
			&packet.Unsubscribe{PacketID: 1, Filters: [][]byte{[]byte("a+")}}, packet.ErrTopicFilter},
		{"UNSUBSCRIBE without filters", packet.V311, &packet.Unsubscribe{PacketID: 1}, packet.ErrNoFilters},

		{"PUBACK packet identifier 0", packet.V5, &packet.Ack{PacketType: packet.TypePuback}, packet.ErrPacketIDZero},
		{"Ack of type PUBLISH", packet.V5, &packet.Ack{PacketType: packet.TypePublish, PacketID: 1}, packet.ErrReservedType},
		{"PUBACK reason code under v3.1.1", packet.V311,
			&packet.Ack{PacketType: packet.TypePuback, PacketID: 1, ReasonCode: packet.UnspecifiedError}, packet.ErrPropertiesV311},
		{"PUBREL reason code not for PUBREL", packet.V5,
			&packet.Ack{PacketType: packet.TypePubrel, PacketID: 1, ReasonCode: packet.QuotaExceeded}, packet.ErrReasonCode},

		{"DISCONNECT reason code under v3.1.1", packet.V311,
			&packet.Disconnect{ReasonCode: packet.DisconnectWithWillMessage}, packet.ErrPropertiesV311},
		{"DISCONNECT reason code not for DISCONNECT", packet.V5,
			&packet.Disconnect{ReasonCode: packet.UnsupportedProtocolVersion}, packet.ErrReasonCode},
		{"DISCONNECT Topic Alias", packet.V5,
			&packet.Disconnect{Properties: packet.Properties{TopicAlias: 1}}, packet.ErrPropertyNotAllowed},
		{"AUTH under v3.1.1", packet.V311, &packet.Auth{}, packet.ErrAuthV311},
		{"AUTH reason code not for AUTH", packet.V5, &packet.Auth{ReasonCode: packet.NotAuthorized}, packet.ErrReasonCode},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := []byte("dst")
			got, err := tc.pkt.Append(dst, tc.v)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Append error = %v, want %v", err, tc.want)
			}
			if !bytes.Equal(got, []byte("dst")) {
				t.Errorf("Append wrote % X before failing, want dst unchanged", got)
			}
		})
	}
}

func TestReasonOf(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want packet.ReasonCode
	}{
		{"packet error", packet.ErrTopicFilter, packet.TopicFilterInvalid},
		{"wrapped packet error", fmt.Errorf("subscribe %q: %w", "a+", packet.ErrTopicFilter), packet.TopicFilterInvalid},
		{"reason code", packet.QuotaExceeded, packet.QuotaExceeded},
		{"wrapped reason code", fmt.Errorf("publish: %w", packet.NotAuthorized), packet.NotAuthorized},
		{"other error", errors.New("connection reset"), packet.UnspecifiedError},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := packet.ReasonOf(tc.err); got != tc.want {
				t.Errorf("ReasonOf = 0x%02X, want 0x%02X", byte(got), byte(tc.want))
			}
		})
	}
}

func TestReasonCodeError(t *testing.T) {
	var err error = packet.QuotaExceeded
	if got, want := err.Error(), "mqtt: quota exceeded (0x97)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !packet.QuotaExceeded.IsError() || packet.GrantedQoS2.IsError() {
		t.Error("IsError: 0x97 must be a failure and 0x02 not")
	}
	if got, want := packet.ReasonCode(0x03).String(), "reason code 0x03"; got != want {
		t.Errorf("String of an unassigned code = %q, want %q", got, want)
	}
}

// TestConnackV311RefusalOfV5: a 3.1.1 server answers an MQTT 5.0 CONNECT
// with a two-byte CONNACK, return code 0x01; the client reads it as the
// refusal it is (0x84), not as a malformed packet. A v5 CONNACK with
// properties and code 0x01 stays malformed.
func TestConnackV311RefusalOfV5(t *testing.T) {
	var p packet.Connack
	if err := p.Unmarshal(packet.V5, 0, []byte{0x00, 0x01}); err != nil || p.ReasonCode != packet.UnsupportedProtocolVersion {
		t.Fatalf("3.1.1 refusal read as %v, %v; want 0x84", p.ReasonCode, err)
	}
	if err := p.Unmarshal(packet.V5, 0, []byte{0x00, 0x01, 0x00}); !errors.Is(err, packet.ErrReasonCode) {
		t.Fatalf("v5 CONNACK with code 0x01: %v, want ErrReasonCode", err)
	}
}
