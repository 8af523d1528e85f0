package packet_test

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/heraldiot/herald/mqtt/packet"
)

// userPair is one user property on the wire: identifier, key, value.
func userPair(k, v string) []byte {
	return wire(0x26, 0x00, len(k), k, 0x00, len(v), v)
}

// TestUnmarshalDiscardUserProperties decodes each packet twice, as is and
// with DiscardUserProperties: a packet that decodes must decode to the same
// value but for an empty User (still marked present), and a malformed one
// must fail with the same error both ways, since discarding skips storage,
// not checks.
func TestUnmarshalDiscardUserProperties(t *testing.T) {
	twoPairs := append(userPair("k", "v"), userPair("x", "y")...)
	tests := map[string]struct {
		pkt     packet.Packet
		v       packet.Version
		flags   byte
		body    []byte
		want    error // nil: decodes
		hasUser bool  // the decoded packet had user properties
	}{
		"PUBLISH with user properties and a content type": {
			pkt: &packet.Publish{}, v: packet.V5, flags: 0x02,
			body:    wire(0x00, 0x01, "a", 0x00, 0x07, 18, 0x03, 0x00, 0x01, "j", twoPairs, "payload"),
			hasUser: true,
		},
		"PUBLISH without properties": {
			pkt: &packet.Publish{}, v: packet.V5,
			body: wire(0x00, 0x01, "a", 0, "payload"),
		},
		"PUBLISH under 3.1.1": {
			pkt: &packet.Publish{}, v: packet.V311,
			body: wire(0x00, 0x01, "a", "payload"),
		},
		"PUBLISH with a user property key that is not UTF-8": {
			pkt: &packet.Publish{}, v: packet.V5,
			body: wire(0x00, 0x01, "a", 7, 0x26, 0x00, 0x01, 0xC0, 0x00, 0x01, "v"),
			want: packet.ErrInvalidUTF8,
		},
		"PUBLISH with a user property value holding U+0000": {
			pkt: &packet.Publish{}, v: packet.V5,
			body: wire(0x00, 0x01, "a", 7, 0x26, 0x00, 0x01, "k", 0x00, 0x01, 0x00),
			want: packet.ErrInvalidUTF8,
		},
		"PUBLISH with a user property missing its value": {
			pkt: &packet.Publish{}, v: packet.V5,
			body: wire(0x00, 0x01, "a", 4, 0x26, 0x00, 0x01, "k", "payload"),
			want: packet.ErrShortBuffer,
		},
		"PUBLISH with a user property value past the property length": {
			pkt: &packet.Publish{}, v: packet.V5,
			body: wire(0x00, 0x01, "a", 6, 0x26, 0x00, 0x01, "k", 0x00, 0x05, "vvvvv"),
			want: packet.ErrShortBuffer,
		},
		"PUBLISH with a user property after a duplicate topic alias": {
			pkt: &packet.Publish{}, v: packet.V5,
			body: wire(0x00, 0x01, "a", 13, 0x23, 0x00, 0x01, 0x23, 0x00, 0x01, userPair("k", "v")),
			want: packet.ErrPropertyDuplicate,
		},
		"PUBACK with a reason code and user properties": {
			pkt: &packet.Ack{PacketType: packet.TypePuback}, v: packet.V5,
			body:    wire(0x00, 0x07, 0x10, 14, twoPairs),
			hasUser: true,
		},
		"SUBACK with user properties": {
			pkt: &packet.Suback{}, v: packet.V5,
			body:    wire(0x00, 0x07, 7, userPair("k", "v"), 0x01),
			hasUser: true,
		},
		"UNSUBACK with a truncated user property": {
			pkt: &packet.Unsuback{}, v: packet.V5,
			body: wire(0x00, 0x07, 5, 0x26, 0x00, 0x01, "k", 0x00, 0x00),
			want: packet.ErrShortBuffer,
		},
		"DISCONNECT with user properties": {
			pkt: &packet.Disconnect{}, v: packet.V5,
			body:    wire(0x80, 7, userPair("k", "v")),
			hasUser: true,
		},
		"AUTH with user properties": {
			pkt: &packet.Auth{}, v: packet.V5,
			body:    wire(0x18, 7, userPair("k", "v")),
			hasUser: true,
		},
		"CONNACK with user properties": {
			pkt: &packet.Connack{}, v: packet.V5,
			body:    wire(0x00, 0x00, 7, userPair("k", "v")),
			hasUser: true,
		},
		"CONNECT with user properties in the will": {
			pkt: &packet.Connect{}, v: packet.V5,
			body: wire(protocolName, 5, 0x04, 0x00, 0x3C, 0, 0x00, 0x01, "c",
				7, userPair("k", "v"), 0x00, 0x01, "w", 0x00, 0x01, "x"),
			hasUser: true,
		},
		"SUBSCRIBE with user properties": {
			pkt: &packet.Subscribe{}, v: packet.V5,
			body:    wire(0x00, 0x07, 7, userPair("k", "v"), 0x00, 0x01, "f", 0x01),
			hasUser: true,
		},
		"UNSUBSCRIBE with user properties": {
			pkt: &packet.Unsubscribe{}, v: packet.V5,
			body:    wire(0x00, 0x07, 7, userPair("k", "v"), 0x00, 0x01, "f"),
			hasUser: true,
		},
		"PINGRESP, which has no properties": {
			pkt: &packet.Pingresp{}, v: packet.V5,
		},
	}
	discard := packet.UnmarshalOptions{DiscardUserProperties: true}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			kept, err := packet.New(tc.pkt.Type())
			if err != nil {
				t.Fatal(err)
			}
			if a, ok := kept.(*packet.Ack); ok {
				a.PacketType = tc.pkt.Type()
			}
			errKept := kept.Unmarshal(tc.v, tc.flags, tc.body)
			errDiscarded := discard.Unmarshal(tc.pkt, tc.v, tc.flags, tc.body)
			if !errors.Is(errKept, tc.want) || !errors.Is(errDiscarded, tc.want) {
				t.Fatalf("errors %v (kept) and %v (discarded), want %v both ways", errKept, errDiscarded, tc.want)
			}
			if tc.want != nil {
				return
			}
			for _, pr := range properties(tc.pkt) {
				if len(pr.User) != 0 {
					t.Errorf("discarded decode kept %d user properties", len(pr.User))
				}
			}
			marked := false
			for _, pr := range properties(tc.pkt) {
				marked = marked || pr.Has(packet.PropUser)
			}
			if marked != tc.hasUser {
				t.Errorf("user properties marked present = %v, want %v", marked, tc.hasUser)
			}
			// Apart from User, both decodes agree.
			for _, pr := range properties(kept) {
				pr.User = nil
			}
			if !reflect.DeepEqual(kept, tc.pkt) {
				t.Errorf("discarded decode\n%+v\ndiffers from the full one without its user properties\n%+v", tc.pkt, kept)
			}
		})
	}
}

// properties returns the property sets of a decoded packet: its
// Properties field, then for CONNECT the will's; none for packets without.
func properties(p packet.Packet) []*packet.Properties {
	var sets []*packet.Properties
	if f := reflect.ValueOf(p).Elem().FieldByName("Properties"); f.IsValid() {
		sets = append(sets, f.Addr().Interface().(*packet.Properties))
	}
	if c, ok := p.(*packet.Connect); ok {
		sets = append(sets, &c.Will.Properties)
	}
	return sets
}

// TestDiscardUserPropertiesAllocatesNothing decodes a PUBLISH packed with
// empty user properties, the shape that costs most memory per wire byte,
// into a reused target: discarding must neither allocate nor leave the
// target holding capacity for them.
func TestDiscardUserPropertiesAllocatesNothing(t *testing.T) {
	const pairs = 10000
	empty := wire(0x26, 0x00, 0x00, 0x00, 0x00)
	props := packet.AppendVarInt(nil, uint32(pairs*len(empty)))
	body := wire(0x00, 0x01, "a", props, bytes.Repeat(empty, pairs), "payload")
	discard := packet.UnmarshalOptions{DiscardUserProperties: true}
	var p packet.Publish
	allocs := testing.AllocsPerRun(10, func() {
		if err := discard.Unmarshal(&p, packet.V5, 0, body); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 || cap(p.Properties.User) != 0 {
		t.Fatalf("%v allocations, user property capacity %d; want none", allocs, cap(p.Properties.User))
	}
	if string(p.Payload) != "payload" || !p.Properties.Has(packet.PropUser) {
		t.Fatalf("decoded payload %q, user properties marked %v", p.Payload, p.Properties.Has(packet.PropUser))
	}
	// Without the option the same packet materialises every pair.
	if err := p.Unmarshal(packet.V5, 0, body); err != nil || len(p.Properties.User) != pairs {
		t.Fatalf("full decode: %d user properties, %v; want %d", len(p.Properties.User), err, pairs)
	}
}

// TestUnmarshalAcceptUnlistedAckSuccess: with the option, an ack keeps a
// success reason code its table does not list, and nothing else changes:
// unlisted failure codes stay malformed, and without the option the
// unlisted success code is malformed as before.
func TestUnmarshalAcceptUnlistedAckSuccess(t *testing.T) {
	tests := map[string]struct {
		typ      packet.Type
		body     []byte
		lenient  bool
		want     error // nil: decodes
		wantCode packet.ReasonCode
	}{
		"PUBACK 0x01 (mochi-mqtt 2.7.9)": {typ: packet.TypePuback, body: wire(0x00, 0x07, 0x01), lenient: true, wantCode: 0x01},
		"PUBACK 0x01 without the option": {typ: packet.TypePuback, body: wire(0x00, 0x07, 0x01), want: packet.ErrReasonCode},
		"PUBREC 0x7F":                    {typ: packet.TypePubrec, body: wire(0x00, 0x07, 0x7F), lenient: true, wantCode: 0x7F},
		"PUBCOMP 0x10":                   {typ: packet.TypePubcomp, body: wire(0x00, 0x07, 0x10), lenient: true, wantCode: 0x10},
		"PUBACK 0x10, listed":            {typ: packet.TypePuback, body: wire(0x00, 0x07, 0x10), lenient: true, wantCode: packet.NoMatchingSubscribers},
		"PUBACK 0x81, unlisted failure":  {typ: packet.TypePuback, body: wire(0x00, 0x07, 0x81), lenient: true, want: packet.ErrReasonCode},
		"PUBREL 0x80, unlisted failure":  {typ: packet.TypePubrel, body: wire(0x00, 0x07, 0x80), lenient: true, want: packet.ErrReasonCode},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			a := &packet.Ack{PacketType: tt.typ}
			flags := byte(0)
			if tt.typ == packet.TypePubrel {
				flags = 0x02
			}
			err := packet.UnmarshalOptions{AcceptUnlistedAckSuccess: tt.lenient}.Unmarshal(a, packet.V5, flags, tt.body)
			if !errors.Is(err, tt.want) {
				t.Fatalf("error = %v, want %v", err, tt.want)
			}
			if err == nil && (a.ReasonCode != tt.wantCode || a.PacketID != 7) {
				t.Fatalf("decoded id %d code 0x%02X, want id 7 code 0x%02X", a.PacketID, byte(a.ReasonCode), byte(tt.wantCode))
			}
		})
	}
}
