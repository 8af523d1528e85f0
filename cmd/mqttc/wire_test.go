package main

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/heraldiot/herald/mqtt"
	"github.com/heraldiot/herald/mqtt/packet"
)

// TestPacketStreamChunks feeds packets in every split and expects each
// whole packet once, in order.
func TestPacketStreamChunks(t *testing.T) {
	var stream []byte
	var want []string
	for i, topic := range []string{"a", "bb", "ccc"} {
		p := &packet.Publish{QoS: 1, PacketID: uint16(i + 1), Topic: []byte(topic), Payload: bytes.Repeat([]byte("x"), 200*i)}
		var err error
		if stream, err = p.Append(stream, mqtt.V5); err != nil {
			t.Fatal(err)
		}
		want = append(want, topic)
	}
	stream = append(stream, 0xC0, 0) // PINGREQ
	want = append(want, "PINGREQ")
	for chunk := 1; chunk <= len(stream); chunk += 37 {
		s := packetStream{version: mqtt.V5}
		var got []string
		for off := 0; off < len(stream); off += chunk {
			s.feed(stream[off:min(off+chunk, len(stream))], func(h packet.Header, body []byte) {
				if h.Type != packet.TypePublish {
					got = append(got, h.Type.String())
					return
				}
				var p packet.Publish
				if err := p.Unmarshal(mqtt.V5, h.Flags, body); err != nil {
					t.Fatal(err)
				}
				got = append(got, string(p.Topic))
			})
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("chunks of %d: got %q, want %q", chunk, got, want)
		}
	}
}

// TestWireTapDelivery checks the tap's mirror of the client's delivery:
// packet ids come out in order, and a resent QoS 2 message is not
// delivered twice until its PUBREL.
func TestWireTapDelivery(t *testing.T) {
	var debug bytes.Buffer
	tap := newWireTap(mqtt.V311, &debug)
	receive := func(p packet.Packet) {
		b, err := p.Append(nil, mqtt.V311)
		if err != nil {
			t.Fatal(err)
		}
		h, n, err := packet.DecodeHeader(b, mqtt.V311, 0)
		if err != nil {
			t.Fatal(err)
		}
		tap.received(h, b[n:])
	}
	receive(&packet.Connack{})
	receive(&packet.Publish{QoS: 2, PacketID: 5, Topic: []byte("t"), Payload: []byte("x")})
	receive(&packet.Publish{QoS: 2, PacketID: 5, Dup: true, Topic: []byte("t"), Payload: []byte("x")})
	receive(&packet.Publish{QoS: 1, PacketID: 6, Topic: []byte("u")})
	receive(&packet.Ack{PacketType: packet.TypePubrel, PacketID: 5})
	receive(&packet.Publish{QoS: 2, PacketID: 5, Topic: []byte("t")})
	var mids []uint16
	for _, topic := range []string{"t", "u", "t"} {
		mids = append(mids, tap.next(topic).mid)
	}
	if !reflect.DeepEqual(mids, []uint16{5, 6, 5}) || len(tap.delivered) != 0 {
		t.Errorf("mids %v, left %d", mids, len(tap.delivered))
	}
	wantDebug := "Client (null) received CONNACK (0)\n" +
		"Client (null) received PUBLISH (d0, q2, r0, m5, 't', ... (1 bytes))\n" +
		"Client (null) received PUBLISH (d1, q2, r0, m5, 't', ... (1 bytes))\n" +
		"Client (null) received PUBLISH (d0, q1, r0, m6, 'u', ... (0 bytes))\n" +
		"Client (null) received PUBREL (Mid: 5)\n" +
		"Client (null) received PUBLISH (d0, q2, r0, m5, 't', ... (0 bytes))\n"
	if debug.String() != wantDebug {
		t.Errorf("debug lines:\n%s\nwant:\n%s", debug.String(), wantDebug)
	}
}
