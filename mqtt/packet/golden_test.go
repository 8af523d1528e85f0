package packet_test

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/heraldiot/herald/mqtt/packet"
)

// golden is one packet in both forms: the bytes on the wire, derived by hand
// from the MQTT 3.1.1 and 5.0 specifications, and the value that encodes to
// them and that decoding them yields.
type golden struct {
	name string
	v    packet.Version
	raw  []byte
	pkt  packet.Packet
}

// wire concatenates the fields of a hand-written packet. Each argument is
// a byte (an integer constant 0–255) or a string, whose bytes are copied
// as they are, without a length prefix: the prefix is always written out
// beside it so that every length on the wire is visible in the table.
func wire(fields ...any) []byte {
	var b []byte
	for _, f := range fields {
		switch f := f.(type) {
		case int:
			if f < 0 || f > 0xFF {
				panic(fmt.Sprintf("wire: %d is not a byte", f))
			}
			b = append(b, byte(f))
		case string:
			b = append(b, f...)
		case []byte:
			b = append(b, f...)
		default:
			panic(fmt.Sprintf("wire: unsupported field %T", f))
		}
	}
	return b
}

// props marks ids as present in p. Decoding marks every property it reads,
// so the expected value of a decoded packet lists the properties on the
// wire; for encoding, the mark is what sends a property whose value is 0.
func props(p packet.Properties, ids ...packet.PropID) packet.Properties {
	for _, id := range ids {
		p.Set(id)
	}
	return p
}

// goldenCases returns the golden table. Properties are written in
// ascending identifier order, the order the encoder uses; the
// specification allows any order, and decoding does not depend on it.
func goldenCases() []golden {
	return []golden{
		// CONNECT (3.1)
		{
			name: "CONNECT v3.1.1 minimal",
			v:    packet.V311,
			raw: wire(
				0x10, 16, // CONNECT, remaining length 16
				0x00, 0x04, "MQTT", // protocol name
				0x04,       // protocol level 4
				0x02,       // connect flags: clean session
				0x00, 0x3C, // keep alive 60 s
				0x00, 0x04, "dev1", // client identifier
			),
			pkt: &packet.Connect{Version: packet.V311, CleanStart: true, KeepAlive: 60, ClientID: []byte("dev1")},
		},
		{
			name: "CONNECT v3.1.1 will user name password",
			v:    packet.V311,
			raw: wire(
				0x10, 31, // CONNECT, remaining length 31
				0x00, 0x04, "MQTT", // protocol name
				0x04,       // protocol level 4
				0xEE,       // flags: user name, password, will retain, will QoS 1, will, clean session
				0x00, 0x0A, // keep alive 10 s
				0x00, 0x02, "c1", // client identifier
				0x00, 0x03, "lwt", // will topic
				0x00, 0x03, "bye", // will payload
				0x00, 0x01, "u", // user name
				0x00, 0x02, 0x01, 0x02, // password (binary data)
			),
			pkt: &packet.Connect{
				Version: packet.V311, CleanStart: true, KeepAlive: 10, ClientID: []byte("c1"),
				WillFlag: true,
				Will:     packet.Will{QoS: 1, Retain: true, Topic: []byte("lwt"), Payload: []byte("bye")},
				Username: []byte("u"), Password: []byte{0x01, 0x02},
			},
		},
		{
			name: "CONNECT v3.1.1 empty client identifier user name only",
			v:    packet.V311,
			raw: wire(
				0x10, 19, // CONNECT, remaining length 19
				0x00, 0x04, "MQTT", // protocol name
				0x04,       // protocol level 4
				0x82,       // flags: user name, clean session
				0x00, 0x00, // keep alive off
				0x00, 0x00, // client identifier: empty, the server assigns one [MQTT-3.1.3-6]
				0x00, 0x05, "admin", // user name
			),
			pkt: &packet.Connect{Version: packet.V311, CleanStart: true, ClientID: []byte{}, Username: []byte("admin")},
		},
		{
			name: "CONNECT v5 properties will properties credentials",
			v:    packet.V5,
			raw: wire(
				0x10, 116, // CONNECT, remaining length 116
				0x00, 0x04, "MQTT", // protocol name
				0x05,       // protocol level 5
				0xD6,       // flags: user name, password, will QoS 2, will, clean start
				0x00, 0x1E, // keep alive 30 s
				35,                           // property length
				0x11, 0x00, 0x00, 0x0E, 0x10, // session expiry interval 3600 s
				0x15, 0x00, 0x03, "tok", // authentication method
				0x16, 0x00, 0x01, 0xAA, // authentication data
				0x17, 0x00, // request problem information 0
				0x21, 0x00, 0x14, // receive maximum 20
				0x22, 0x00, 0x0A, // topic alias maximum 10
				0x26, 0x00, 0x01, "k", 0x00, 0x01, "v", // user property k=v
				0x27, 0x00, 0x01, 0x00, 0x00, // maximum packet size 65536
				0x00, 0x03, "v5c", // client identifier
				43,         // will property length
				0x01, 0x01, // payload format indicator: UTF-8
				0x02, 0x00, 0x00, 0x00, 0x78, // message expiry interval 120 s
				0x03, 0x00, 0x0A, "text/plain", // content type
				0x08, 0x00, 0x03, "r/1", // response topic
				0x09, 0x00, 0x02, 0x01, 0x02, // correlation data
				0x18, 0x00, 0x00, 0x00, 0x1E, // will delay interval 30 s
				0x26, 0x00, 0x01, "a", 0x00, 0x01, "b", // user property a=b
				0x00, 0x03, "w/t", // will topic
				0x00, 0x04, "gone", // will payload
				0x00, 0x04, "user", // user name
				0x00, 0x02, "pw", // password
			),
			pkt: &packet.Connect{
				Version: packet.V5, CleanStart: true, KeepAlive: 30,
				Properties: props(packet.Properties{
					SessionExpiry:     3600,
					AuthMethod:        []byte("tok"),
					AuthData:          []byte{0xAA},
					ReceiveMaximum:    20,
					TopicAliasMaximum: 10,
					User:              []packet.UserProperty{{Key: []byte("k"), Value: []byte("v")}},
					MaximumPacketSize: 65536,
				}, packet.PropSessionExpiry, packet.PropAuthMethod, packet.PropAuthData,
					// Request Problem Information 0 differs from its default of 1,
					// so it is sent only because it is marked. (3.1.2.11.7)
					packet.PropRequestProblemInfo,
					packet.PropReceiveMaximum, packet.PropTopicAliasMaximum, packet.PropUser,
					packet.PropMaximumPacketSize),
				ClientID: []byte("v5c"),
				WillFlag: true,
				Will: packet.Will{
					QoS: 2,
					Properties: props(packet.Properties{
						PayloadFormat:   1,
						MessageExpiry:   120,
						ContentType:     []byte("text/plain"),
						ResponseTopic:   []byte("r/1"),
						CorrelationData: []byte{0x01, 0x02},
						WillDelay:       30,
						User:            []packet.UserProperty{{Key: []byte("a"), Value: []byte("b")}},
					}, packet.PropPayloadFormat, packet.PropMessageExpiry, packet.PropContentType,
						packet.PropResponseTopic, packet.PropCorrelationData, packet.PropWillDelay, packet.PropUser),
					Topic:   []byte("w/t"),
					Payload: []byte("gone"),
				},
				Username: []byte("user"),
				Password: []byte("pw"),
			},
		},
		{
			name: "CONNECT v5 password without user name",
			v:    packet.V5,
			raw: wire(
				0x10, 17, // CONNECT, remaining length 17
				0x00, 0x04, "MQTT", // protocol name
				0x05,       // protocol level 5
				0x42,       // flags: password, clean start; 5.0 allows a password alone (3.1.2.9)
				0x00, 0x00, // keep alive off
				0x00,            // property length 0
				0x00, 0x01, "x", // client identifier
				0x00, 0x01, "p", // password
			),
			pkt: &packet.Connect{Version: packet.V5, CleanStart: true, ClientID: []byte("x"), Password: []byte("p")},
		},

		// CONNACK (3.2)
		{
			name: "CONNACK v3.1.1 session present",
			v:    packet.V311,
			raw: wire(
				0x20, 2, // CONNACK, remaining length 2
				0x01, // acknowledge flags: session present
				0x00, // return code: accepted
			),
			pkt: &packet.Connack{SessionPresent: true},
		},
		{
			name: "CONNACK v3.1.1 not authorized",
			v:    packet.V311,
			raw: wire(
				0x20, 2, // CONNACK, remaining length 2
				0x00, // acknowledge flags: 0, required with a refusal [MQTT-3.2.2-4]
				0x05, // return code: not authorized
			),
			pkt: &packet.Connack{ReasonCode: packet.V311NotAuthorized},
		},
		{
			name: "CONNACK v5 success",
			v:    packet.V5,
			raw: wire(
				0x20, 3, // CONNACK, remaining length 3
				0x00, // acknowledge flags
				0x00, // reason code: success
				0x00, // property length 0
			),
			pkt: &packet.Connack{},
		},
		{
			name: "CONNACK v5 server capabilities",
			v:    packet.V5,
			raw: wire(
				0x20, 57, // CONNACK, remaining length 57
				0x01,                       // acknowledge flags: session present
				0x00,                       // reason code: success
				54,                         // property length
				0x12, 0x00, 0x06, "auto-1", // assigned client identifier
				0x13, 0x00, 0x1E, // server keep alive 30 s
				0x1A, 0x00, 0x05, "resp/", // response information
				0x21, 0x00, 0x64, // receive maximum 100
				0x22, 0x00, 0x10, // topic alias maximum 16
				0x24, 0x01, // maximum QoS 1
				0x25, 0x00, // retain available: no
				0x26, 0x00, 0x06, "region", 0x00, 0x02, "eu", // user property region=eu
				0x27, 0x00, 0x10, 0x00, 0x00, // maximum packet size 1 MiB
				0x28, 0x01, // wildcard subscription available
				0x29, 0x00, // subscription identifiers available: no
				0x2A, 0x01, // shared subscription available
			),
			pkt: &packet.Connack{
				SessionPresent: true,
				Properties: props(packet.Properties{
					AssignedClientID:     []byte("auto-1"),
					ServerKeepAlive:      30,
					ResponseInfo:         []byte("resp/"),
					ReceiveMaximum:       100,
					TopicAliasMaximum:    16,
					MaximumQoS:           1,
					User:                 []packet.UserProperty{{Key: []byte("region"), Value: []byte("eu")}},
					MaximumPacketSize:    1 << 20,
					WildcardSubAvailable: 1,
					SharedSubAvailable:   1,
				}, packet.PropAssignedClientID, packet.PropServerKeepAlive, packet.PropResponseInfo,
					packet.PropReceiveMaximum, packet.PropTopicAliasMaximum, packet.PropMaximumQoS,
					// Retain Available 0 and Subscription Identifiers Available 0
					// differ from their absent default of 1: sent because marked.
					packet.PropRetainAvailable, packet.PropSubIDAvailable,
					packet.PropUser, packet.PropMaximumPacketSize, packet.PropWildcardSubAvailable,
					packet.PropSharedSubAvailable),
			},
		},
		{
			name: "CONNACK v5 use another server",
			v:    packet.V5,
			raw: wire(
				0x20, 21, // CONNACK, remaining length 21
				0x00,                        // acknowledge flags
				0x9C,                        // reason code: use another server
				18,                          // property length
				0x1C, 0x00, 0x07, "b2:1883", // server reference
				0x1F, 0x00, 0x05, "moved", // reason string
			),
			pkt: &packet.Connack{
				ReasonCode: packet.UseAnotherServer,
				Properties: props(packet.Properties{ServerReference: []byte("b2:1883"), ReasonString: []byte("moved")},
					packet.PropServerReference, packet.PropReasonString),
			},
		},

		// PUBLISH (3.3)
		{
			name: "PUBLISH v3.1.1 QoS 0",
			v:    packet.V311,
			raw: wire(
				0x30, 7, // PUBLISH QoS 0, remaining length 7
				0x00, 0x03, "a/b", // topic name
				"hi", // payload
			),
			pkt: &packet.Publish{Topic: []byte("a/b"), Payload: []byte("hi")},
		},
		{
			name: "PUBLISH v3.1.1 QoS 1 retain",
			v:    packet.V311,
			raw: wire(
				0x33, 7, // PUBLISH QoS 1 retain, remaining length 7
				0x00, 0x01, "t", // topic name
				0x00, 0x0A, // packet identifier 10
				0x00, 0xFF, // payload
			),
			pkt: &packet.Publish{QoS: 1, Retain: true, Topic: []byte("t"), PacketID: 10, Payload: []byte{0x00, 0xFF}},
		},
		{
			name: "PUBLISH v3.1.1 QoS 2 dup empty payload",
			v:    packet.V311,
			raw: wire(
				0x3C, 7, // PUBLISH DUP QoS 2, remaining length 7
				0x00, 0x03, "x/y", // topic name
				0x12, 0x34, // packet identifier 0x1234; the payload is empty
			),
			pkt: &packet.Publish{Dup: true, QoS: 2, Topic: []byte("x/y"), PacketID: 0x1234, Payload: []byte{}},
		},
		{
			name: "PUBLISH v3.1.1 two-byte remaining length",
			v:    packet.V311,
			raw: wire(
				0x30, 0xCD, 0x01, // PUBLISH QoS 0, remaining length 205 = 0x4D + 1×128
				0x00, 0x03, "big", // topic name
				bytes.Repeat([]byte{'z'}, 200), // payload
			),
			pkt: &packet.Publish{Topic: []byte("big"), Payload: bytes.Repeat([]byte{'z'}, 200)},
		},
		{
			name: "PUBLISH v5 QoS 0 no properties",
			v:    packet.V5,
			raw: wire(
				0x30, 5, // PUBLISH QoS 0, remaining length 5
				0x00, 0x01, "a", // topic name
				0x00, // property length 0
				"p",  // payload
			),
			pkt: &packet.Publish{Topic: []byte("a"), Payload: []byte("p")},
		},
		{
			name: "PUBLISH v5 QoS 1 properties",
			v:    packet.V5,
			raw: wire(
				0x32, 80, // PUBLISH QoS 1, remaining length 80
				0x00, 0x03, "s/1", // topic name
				0x00, 0x2A, // packet identifier 42
				70,         // property length
				0x01, 0x01, // payload format indicator: UTF-8
				0x02, 0x00, 0x00, 0x00, 0x3C, // message expiry interval 60 s
				0x03, 0x00, 0x10, "application/json", // content type
				0x08, 0x00, 0x07, "reply/1", // response topic
				0x09, 0x00, 0x02, 0xCA, 0xFE, // correlation data
				0x0B, 0x05, // subscription identifier 5
				0x0B, 0xAC, 0x02, // subscription identifier 300 = 0x2C + 2×128
				0x26, 0x00, 0x05, "trace", 0x00, 0x02, "42", // user property trace=42
				0x26, 0x00, 0x05, "trace", 0x00, 0x02, "43", // user property trace=43, same name again
				"{}", // payload
			),
			pkt: &packet.Publish{
				QoS: 1, Topic: []byte("s/1"), PacketID: 42,
				Properties: props(packet.Properties{
					PayloadFormat:   1,
					MessageExpiry:   60,
					ContentType:     []byte("application/json"),
					ResponseTopic:   []byte("reply/1"),
					CorrelationData: []byte{0xCA, 0xFE},
					SubscriptionIDs: []uint32{5, 300},
					User: []packet.UserProperty{
						{Key: []byte("trace"), Value: []byte("42")},
						{Key: []byte("trace"), Value: []byte("43")},
					},
				}, packet.PropPayloadFormat, packet.PropMessageExpiry, packet.PropContentType,
					packet.PropResponseTopic, packet.PropCorrelationData, packet.PropSubscriptionID, packet.PropUser),
				Payload: []byte("{}"),
			},
		},
		{
			name: "PUBLISH v5 topic alias empty topic",
			v:    packet.V5,
			raw: wire(
				0x31, 7, // PUBLISH QoS 0 retain, remaining length 7
				0x00, 0x00, // topic name: empty, the alias stands for it (3.3.2.3.4)
				3,                // property length
				0x23, 0x00, 0x03, // topic alias 3
				"v", // payload
			),
			pkt: &packet.Publish{
				Retain: true, Topic: []byte{},
				Properties: props(packet.Properties{TopicAlias: 3}, packet.PropTopicAlias),
				Payload:    []byte("v"),
			},
		},
		{
			name: "PUBLISH v5 QoS 2 dup retain",
			v:    packet.V5,
			raw: wire(
				0x3D, 6, // PUBLISH DUP QoS 2 retain, remaining length 6
				0x00, 0x01, "q", // topic name
				0x00, 0x01, // packet identifier 1
				0x00, // property length 0; the payload is empty
			),
			pkt: &packet.Publish{Dup: true, QoS: 2, Retain: true, Topic: []byte("q"), PacketID: 1, Payload: []byte{}},
		},

		// PUBACK, PUBREC, PUBREL, PUBCOMP (3.4–3.7)
		{
			name: "PUBACK v3.1.1",
			v:    packet.V311,
			raw:  wire(0x40, 2, 0x00, 0x07), // PUBACK, remaining length 2, packet identifier 7
			pkt:  &packet.Ack{PacketType: packet.TypePuback, PacketID: 7},
		},
		{
			name: "PUBREC v3.1.1",
			v:    packet.V311,
			raw:  wire(0x50, 2, 0x00, 0x08), // PUBREC, remaining length 2, packet identifier 8
			pkt:  &packet.Ack{PacketType: packet.TypePubrec, PacketID: 8},
		},
		{
			name: "PUBREL v3.1.1",
			v:    packet.V311,
			raw:  wire(0x62, 2, 0x00, 0x09), // PUBREL with its required flags 0010 [MQTT-3.6.1-1], packet identifier 9
			pkt:  &packet.Ack{PacketType: packet.TypePubrel, PacketID: 9},
		},
		{
			name: "PUBCOMP v3.1.1",
			v:    packet.V311,
			raw:  wire(0x70, 2, 0x00, 0x0A), // PUBCOMP, remaining length 2, packet identifier 10
			pkt:  &packet.Ack{PacketType: packet.TypePubcomp, PacketID: 10},
		},
		{
			// Reason code and properties are omitted when the code is
			// Success and there are no properties. (3.4.2.1)
			name: "PUBACK v5 short form",
			v:    packet.V5,
			raw:  wire(0x40, 2, 0x00, 0x07), // PUBACK, remaining length 2, packet identifier 7
			pkt:  &packet.Ack{PacketType: packet.TypePuback, PacketID: 7},
		},
		{
			name: "PUBREC v5 short form",
			v:    packet.V5,
			raw:  wire(0x50, 2, 0x00, 0x08), // PUBREC, remaining length 2, packet identifier 8
			pkt:  &packet.Ack{PacketType: packet.TypePubrec, PacketID: 8},
		},
		{
			name: "PUBREL v5 short form",
			v:    packet.V5,
			raw:  wire(0x62, 2, 0x00, 0x09), // PUBREL, remaining length 2, packet identifier 9
			pkt:  &packet.Ack{PacketType: packet.TypePubrel, PacketID: 9},
		},
		{
			name: "PUBCOMP v5 short form",
			v:    packet.V5,
			raw:  wire(0x70, 2, 0x00, 0x0A), // PUBCOMP, remaining length 2, packet identifier 10
			pkt:  &packet.Ack{PacketType: packet.TypePubcomp, PacketID: 10},
		},
		{
			// With a reason code but no properties the property length is
			// omitted: remaining length 3. (3.4.2.2.1)
			name: "PUBACK v5 reason code only",
			v:    packet.V5,
			raw: wire(
				0x40, 3, // PUBACK, remaining length 3
				0x00, 0x07, // packet identifier 7
				0x10, // reason code: no matching subscribers
			),
			pkt: &packet.Ack{PacketType: packet.TypePuback, PacketID: 7, ReasonCode: packet.NoMatchingSubscribers},
		},
		{
			name: "PUBREC v5 reason string",
			v:    packet.V5,
			raw: wire(
				0x50, 11, // PUBREC, remaining length 11
				0x00, 0x08, // packet identifier 8
				0x97,                     // reason code: quota exceeded
				7,                        // property length
				0x1F, 0x00, 0x04, "full", // reason string
			),
			pkt: &packet.Ack{
				PacketType: packet.TypePubrec, PacketID: 8, ReasonCode: packet.QuotaExceeded,
				Properties: props(packet.Properties{ReasonString: []byte("full")}, packet.PropReasonString),
			},
		},
		{
			name: "PUBREL v5 reason string",
			v:    packet.V5,
			raw: wire(
				0x62, 11, // PUBREL, remaining length 11
				0x00, 0x09, // packet identifier 9
				0x92,                     // reason code: packet identifier not found
				7,                        // property length
				0x1F, 0x00, 0x04, "gone", // reason string
			),
			pkt: &packet.Ack{
				PacketType: packet.TypePubrel, PacketID: 9, ReasonCode: packet.PacketIdentifierNotFound,
				Properties: props(packet.Properties{ReasonString: []byte("gone")}, packet.PropReasonString),
			},
		},
		{
			name: "PUBCOMP v5 success with properties",
			v:    packet.V5,
			raw: wire(
				0x70, 16, // PUBCOMP, remaining length 16
				0x00, 0x0A, // packet identifier 10
				0x00,                   // reason code: success, present because properties follow
				12,                     // property length
				0x1F, 0x00, 0x02, "ok", // reason string
				0x26, 0x00, 0x01, "k", 0x00, 0x01, "v", // user property k=v
			),
			pkt: &packet.Ack{
				PacketType: packet.TypePubcomp, PacketID: 10,
				Properties: props(packet.Properties{
					ReasonString: []byte("ok"),
					User:         []packet.UserProperty{{Key: []byte("k"), Value: []byte("v")}},
				}, packet.PropReasonString, packet.PropUser),
			},
		},

		// SUBSCRIBE, SUBACK (3.8, 3.9)
		{
			name: "SUBSCRIBE v3.1.1",
			v:    packet.V311,
			raw: wire(
				0x82, 18, // SUBSCRIBE with its required flags 0010 [MQTT-3.8.1-1], remaining length 18
				0x00, 0x01, // packet identifier 1
				0x00, 0x03, "a/+", 0x00, // filter, requested QoS 0
				0x00, 0x03, "b/#", 0x01, // filter, requested QoS 1
				0x00, 0x01, "c", 0x02, // filter, requested QoS 2
			),
			pkt: &packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{
				{Filter: []byte("a/+")},
				{Filter: []byte("b/#"), QoS: 1},
				{Filter: []byte("c"), QoS: 2},
			}},
		},
		{
			name: "SUBSCRIBE v5 options",
			v:    packet.V5,
			raw: wire(
				0x82, 42, // SUBSCRIBE, remaining length 42
				0x00, 0x02, // packet identifier 2
				10,               // property length
				0x0B, 0x81, 0x01, // subscription identifier 129 = 0x01 + 1×128
				0x26, 0x00, 0x01, "u", 0x00, 0x01, "1", // user property u=1
				0x00, 0x03, "a/b", // filter
				0x2D,                       // options: retain handling 2, retain as published, no local, QoS 1
				0x00, 0x0C, "$share/g/x/#", // shared subscription filter
				0x12,                // options: retain handling 1, QoS 2
				0x00, 0x05, "c/+/d", // filter
				0x00, // options: all clear
			),
			pkt: &packet.Subscribe{
				PacketID: 2,
				Properties: props(packet.Properties{
					SubscriptionIDs: []uint32{129},
					User:            []packet.UserProperty{{Key: []byte("u"), Value: []byte("1")}},
				}, packet.PropSubscriptionID, packet.PropUser),
				Subscriptions: []packet.Subscription{
					{Filter: []byte("a/b"), QoS: 1, NoLocal: true, RetainAsPublished: true, RetainHandling: 2},
					{Filter: []byte("$share/g/x/#"), QoS: 2, RetainHandling: 1},
					{Filter: []byte("c/+/d")},
				},
			},
		},
		{
			name: "SUBACK v3.1.1",
			v:    packet.V311,
			raw: wire(
				0x90, 5, // SUBACK, remaining length 5
				0x00, 0x01, // packet identifier 1
				0x00, 0x01, 0x80, // return codes: QoS 0, QoS 1, failure
			),
			pkt: &packet.Suback{PacketID: 1, ReasonCodes: []packet.ReasonCode{
				packet.GrantedQoS0, packet.GrantedQoS1, packet.V311SubscribeFailure,
			}},
		},
		{
			name: "SUBACK v5 reason string",
			v:    packet.V5,
			raw: wire(
				0x90, 16, // SUBACK, remaining length 16
				0x00, 0x02, // packet identifier 2
				10,                          // property length
				0x1F, 0x00, 0x07, "partial", // reason string
				0x01, 0x9E, 0x00, // reason codes: QoS 1, shared subscriptions not supported, QoS 0
			),
			pkt: &packet.Suback{
				PacketID:   2,
				Properties: props(packet.Properties{ReasonString: []byte("partial")}, packet.PropReasonString),
				ReasonCodes: []packet.ReasonCode{
					packet.GrantedQoS1, packet.SharedSubscriptionsNotSupported, packet.GrantedQoS0,
				},
			},
		},

		// UNSUBSCRIBE, UNSUBACK (3.10, 3.11)
		{
			name: "UNSUBSCRIBE v3.1.1",
			v:    packet.V311,
			raw: wire(
				0xA2, 15, // UNSUBSCRIBE with its required flags 0010 [MQTT-3.10.1-1], remaining length 15
				0x00, 0x03, // packet identifier 3
				0x00, 0x03, "a/+", // filter
				0x00, 0x06, "$SYS/#", // filter
			),
			pkt: &packet.Unsubscribe{PacketID: 3, Filters: [][]byte{[]byte("a/+"), []byte("$SYS/#")}},
		},
		{
			name: "UNSUBSCRIBE v5 user property",
			v:    packet.V5,
			raw: wire(
				0xA2, 15, // UNSUBSCRIBE, remaining length 15
				0x00, 0x04, // packet identifier 4
				7,                                      // property length
				0x26, 0x00, 0x01, "x", 0x00, 0x01, "y", // user property x=y
				0x00, 0x03, "a/b", // filter
			),
			pkt: &packet.Unsubscribe{
				PacketID: 4,
				Properties: props(packet.Properties{User: []packet.UserProperty{{Key: []byte("x"), Value: []byte("y")}}},
					packet.PropUser),
				Filters: [][]byte{[]byte("a/b")},
			},
		},
		{
			// 3.1.1 UNSUBACK is the packet identifier alone. (3.11.3)
			name: "UNSUBACK v3.1.1",
			v:    packet.V311,
			raw:  wire(0xB0, 2, 0x00, 0x03), // UNSUBACK, remaining length 2, packet identifier 3
			pkt:  &packet.Unsuback{PacketID: 3},
		},
		{
			name: "UNSUBACK v5 reason string",
			v:    packet.V5,
			raw: wire(
				0xB0, 10, // UNSUBACK, remaining length 10
				0x00, 0x04, // packet identifier 4
				5,                      // property length
				0x1F, 0x00, 0x02, "no", // reason string
				0x00, 0x11, // reason codes: success, no subscription existed
			),
			pkt: &packet.Unsuback{
				PacketID:    4,
				Properties:  props(packet.Properties{ReasonString: []byte("no")}, packet.PropReasonString),
				ReasonCodes: []packet.ReasonCode{packet.Success, packet.NoSubscriptionExisted},
			},
		},

		// PINGREQ, PINGRESP (3.12, 3.13)
		{name: "PINGREQ v3.1.1", v: packet.V311, raw: wire(0xC0, 0), pkt: &packet.Pingreq{}},
		{name: "PINGREQ v5", v: packet.V5, raw: wire(0xC0, 0), pkt: &packet.Pingreq{}},
		{name: "PINGRESP v3.1.1", v: packet.V311, raw: wire(0xD0, 0), pkt: &packet.Pingresp{}},
		{name: "PINGRESP v5", v: packet.V5, raw: wire(0xD0, 0), pkt: &packet.Pingresp{}},

		// DISCONNECT (3.14)
		{name: "DISCONNECT v3.1.1", v: packet.V311, raw: wire(0xE0, 0), pkt: &packet.Disconnect{}},
		{
			// Normal disconnection without properties: remaining length 0. (3.14.2.1)
			name: "DISCONNECT v5 normal",
			v:    packet.V5,
			raw:  wire(0xE0, 0),
			pkt:  &packet.Disconnect{},
		},
		{
			// "If the Remaining Length is less than 2, a value of 0 is
			// used" for the property length. (3.14.2.2.1)
			name: "DISCONNECT v5 reason code only",
			v:    packet.V5,
			raw: wire(
				0xE0, 1, // DISCONNECT, remaining length 1
				0x04, // reason code: disconnect with will message
			),
			pkt: &packet.Disconnect{ReasonCode: packet.DisconnectWithWillMessage},
		},
		{
			name: "DISCONNECT v5 properties",
			v:    packet.V5,
			raw: wire(
				0xE0, 32, // DISCONNECT, remaining length 32
				0x9C,                         // reason code: use another server
				30,                           // property length
				0x11, 0x00, 0x00, 0x1C, 0x20, // session expiry interval 7200 s
				0x1C, 0x00, 0x0A, "other:1883", // server reference
				0x1F, 0x00, 0x09, "rebalance", // reason string
			),
			pkt: &packet.Disconnect{
				ReasonCode: packet.UseAnotherServer,
				Properties: props(packet.Properties{
					SessionExpiry:   7200,
					ServerReference: []byte("other:1883"),
					ReasonString:    []byte("rebalance"),
				}, packet.PropSessionExpiry, packet.PropServerReference, packet.PropReasonString),
			},
		},

		// AUTH (3.15), MQTT 5.0 only
		{name: "AUTH v5 success", v: packet.V5, raw: wire(0xF0, 0), pkt: &packet.Auth{}},
		{
			name: "AUTH v5 continue",
			v:    packet.V5,
			raw: wire(
				0xF0, 22, // AUTH, remaining length 22
				0x18,                            // reason code: continue authentication
				20,                              // property length
				0x15, 0x00, 0x0B, "SCRAM-SHA-1", // authentication method
				0x16, 0x00, 0x03, 0x01, 0x02, 0x03, // authentication data
			),
			pkt: &packet.Auth{
				ReasonCode: packet.ContinueAuthentication,
				Properties: props(packet.Properties{AuthMethod: []byte("SCRAM-SHA-1"), AuthData: []byte{1, 2, 3}},
					packet.PropAuthMethod, packet.PropAuthData),
			},
		},
	}
}

// TestGoldenCoversAllTypes keeps the table honest: every packet type
// appears, under 3.1.1 and 5.0 where the type exists.
func TestGoldenCoversAllTypes(t *testing.T) {
	seen := map[packet.Version]map[packet.Type]bool{packet.V311: {}, packet.V5: {}}
	for _, tc := range goldenCases() {
		seen[tc.v][tc.pkt.Type()] = true
	}
	for typ := packet.TypeConnect; typ <= packet.TypeAuth; typ++ {
		if !seen[packet.V5][typ] {
			t.Errorf("no 5.0 golden case for %s", typ)
		}
		if typ != packet.TypeAuth && !seen[packet.V311][typ] {
			t.Errorf("no 3.1.1 golden case for %s", typ)
		}
	}
}

func TestGoldenEncode(t *testing.T) {
	for _, tc := range goldenCases() {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.pkt.Append(nil, tc.v)
			if err != nil {
				t.Fatalf("Append: %v", err)
			}
			if !bytes.Equal(got, tc.raw) {
				t.Fatalf("Append:\n got % X\nwant % X", got, tc.raw)
			}
			// Append appends: what dst held stays in front.
			prefix := []byte("prefix")
			got, err = tc.pkt.Append(prefix, tc.v)
			if err != nil {
				t.Fatalf("Append after a prefix: %v", err)
			}
			if !bytes.Equal(got[:len(prefix)], []byte("prefix")) || !bytes.Equal(got[len(prefix):], tc.raw) {
				t.Fatalf("Append after a prefix:\n got % X\nwant prefix + % X", got, tc.raw)
			}
		})
	}
}

func TestGoldenDecode(t *testing.T) {
	for _, tc := range goldenCases() {
		t.Run(tc.name, func(t *testing.T) {
			got, n, err := packet.Decode(tc.raw, tc.v, 0)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if n != len(tc.raw) {
				t.Errorf("Decode consumed %d bytes, want %d", n, len(tc.raw))
			}
			if !reflect.DeepEqual(got, tc.pkt) {
				t.Fatalf("Decode:\n got %+v\nwant %+v", got, tc.pkt)
			}

			// A stream buffer holds the start of the next packet too:
			// Decode takes exactly one packet.
			next := append(append([]byte(nil), tc.raw...), 0xC0, 0x00)
			if _, n, err := packet.Decode(next, tc.v, 0); err != nil || n != len(tc.raw) {
				t.Errorf("Decode with a following packet: n=%d err=%v, want n=%d", n, err, len(tc.raw))
			}

			// The size limit counts the whole packet, fixed header included.
			if _, _, err := packet.Decode(tc.raw, tc.v, uint32(len(tc.raw))); err != nil {
				t.Errorf("Decode with maxSize = packet size: %v", err)
			}
			if _, _, err := packet.Decode(tc.raw, tc.v, uint32(len(tc.raw)-1)); !errors.Is(err, packet.ErrPacketTooLarge) {
				t.Errorf("Decode with maxSize one below the packet size: %v, want ErrPacketTooLarge", err)
			}

			// Every strict prefix is a packet still arriving.
			for i := range len(tc.raw) {
				if _, _, err := packet.Decode(tc.raw[:i], tc.v, 0); !errors.Is(err, packet.ErrShortBuffer) {
					t.Fatalf("Decode of the first %d bytes: %v, want ErrShortBuffer", i, err)
				}
			}
		})
	}
}

// TestUnmarshalReuse decodes every golden packet into one value per type,
// in table order, and checks that nothing of the previous packet survives:
// the reused value must encode to exactly the new packet's bytes.
func TestUnmarshalReuse(t *testing.T) {
	reused := map[packet.Type]packet.Packet{}
	cases := goldenCases()
	// Twice round, so every value is reused after the table's last packet
	// of its type, typically the richest one.
	for range 2 {
		for _, tc := range cases {
			h, n, err := packet.DecodeHeader(tc.raw, tc.v, 0)
			if err != nil {
				t.Fatalf("%s: DecodeHeader: %v", tc.name, err)
			}
			p, ok := reused[h.Type]
			if !ok {
				if p, err = packet.New(h.Type); err != nil {
					t.Fatalf("%s: New: %v", tc.name, err)
				}
				reused[h.Type] = p
			}
			if err := p.Unmarshal(tc.v, h.Flags, tc.raw[n:]); err != nil {
				t.Fatalf("%s: Unmarshal into a reused value: %v", tc.name, err)
			}
			got, err := p.Append(nil, tc.v)
			if err != nil {
				t.Fatalf("%s: Append of a reused value: %v", tc.name, err)
			}
			if !bytes.Equal(got, tc.raw) {
				t.Fatalf("%s: reused value encodes to\n% X\nwant\n% X", tc.name, got, tc.raw)
			}
		}
	}
}

// TestDecodeAliasesInput pins down the documented aliasing: decoded []byte
// fields point into the input, so changing the input changes them.
func TestDecodeAliasesInput(t *testing.T) {
	raw := wire(0x30, 7, 0x00, 0x03, "a/b", "hi")
	p, _, err := packet.Decode(raw, packet.V311, 0)
	if err != nil {
		t.Fatal(err)
	}
	pub := p.(*packet.Publish)
	raw[len(raw)-1] = '!'
	if string(pub.Payload) != "h!" {
		t.Fatalf("payload %q after changing the input, want it to alias the input", pub.Payload)
	}
	// The aliases are capped at their own length, so appending to one
	// cannot overwrite the bytes after it.
	if cap(pub.Topic) != len(pub.Topic) {
		t.Errorf("topic capacity %d, want %d", cap(pub.Topic), len(pub.Topic))
	}
	_ = append(pub.Topic, 'X')
	if string(raw[4:]) != "a/bh!" {
		t.Errorf("appending to the topic overwrote the input: % X", raw)
	}
}

func TestPropertiesSetHasReset(t *testing.T) {
	var p packet.Properties
	if p.Has(packet.PropMaximumQoS) {
		t.Fatal("zero Properties has Maximum QoS")
	}
	p.Set(packet.PropMaximumQoS)
	if !p.Has(packet.PropMaximumQoS) || p.Has(packet.PropRetainAvailable) {
		t.Fatal("Set marked the wrong property")
	}
	p.User = append(make([]packet.UserProperty, 0, 4), packet.UserProperty{Key: []byte("k")})
	p.SubscriptionIDs = append(make([]uint32, 0, 2), 7)
	p.ReasonString = []byte("r")
	p.Reset()
	if p.Has(packet.PropMaximumQoS) || p.ReasonString != nil || len(p.User) != 0 || len(p.SubscriptionIDs) != 0 {
		t.Fatalf("Reset left %+v", p)
	}
	if cap(p.User) != 4 || cap(p.SubscriptionIDs) != 2 {
		t.Errorf("Reset dropped slice capacity: user %d, subscription ids %d", cap(p.User), cap(p.SubscriptionIDs))
	}
}
