package mqtt_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"reflect"
	"testing"
	"time"

	"github.com/heraldiot/herald/mqtt"
	"github.com/heraldiot/herald/mqtt/packet"
)

// The tests in this file use a scripted server for what a real broker will
// not do on purpose: malformed bytes, protocol violations, a DISCONNECT
// with a chosen reason.

// peer is the server side of one scripted connection.
type peer struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
	v  packet.Version
}

// startPeer listens on loopback and runs script on the first connection,
// after answering its CONNECT with a CONNACK.
func startPeer(t *testing.T, v packet.Version, script func(p *peer)) string {
	t.Helper()
	return listenPeers(t, v, func(p *peer, n int) {
		if n > 0 {
			return
		}
		if _, ok := p.read().(*packet.Connect); !ok {
			t.Error("peer: first packet is not CONNECT")
			return
		}
		p.write(&packet.Connack{})
		script(p)
	})
}

// listenPeers listens on loopback and runs script on each connection in
// turn (n counts them from 0) until the test ends. The script does the
// CONNECT/CONNACK exchange itself.
func listenPeers(t *testing.T, v packet.Version, script func(p *peer, n int)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	go func() {
		defer close(done)
		for n := 0; ; n++ {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
			script(&peer{t: t, nc: nc, br: bufio.NewReader(nc), v: v}, n)
			nc.Close()
		}
	}()
	return "tcp://" + ln.Addr().String()
}

// connect reads the client's CONNECT and returns it, or nil.
func (p *peer) connect() *packet.Connect {
	c, ok := p.read().(*packet.Connect)
	if !ok {
		p.t.Error("peer: first packet is not CONNECT")
		return nil
	}
	return c
}

// read returns the next packet from the client, or nil when the connection ends.
func (p *peer) read() packet.Packet {
	var hdr []byte
	for {
		b, err := p.br.ReadByte()
		if err != nil {
			return nil
		}
		hdr = append(hdr, b)
		if len(hdr) > 1 && b&0x80 == 0 {
			break
		}
	}
	h, _, err := packet.DecodeHeader(hdr, p.v, 0)
	if err != nil {
		p.t.Errorf("peer: %v", err)
		return nil
	}
	body := make([]byte, h.Remaining)
	if _, err := io.ReadFull(p.br, body); err != nil {
		return nil
	}
	pk, err := packet.New(h.Type)
	if err == nil {
		err = pk.Unmarshal(p.v, h.Flags, body)
	}
	if err != nil {
		p.t.Errorf("peer: client sent a bad %s: %v", h.Type, err)
		return nil
	}
	return pk
}

func (p *peer) write(pk packet.Packet) {
	b, err := pk.Append(nil, p.v)
	if err != nil {
		p.t.Errorf("peer: encode %T: %v", pk, err)
		return
	}
	p.writeRaw(b)
}

func (p *peer) writeRaw(b []byte) {
	if _, err := p.nc.Write(b); err != nil {
		p.t.Errorf("peer: write: %v", err)
	}
}

// expectDisconnect reads until the client's DISCONNECT and returns its reason.
func (p *peer) expectDisconnect() packet.ReasonCode {
	for {
		switch pk := p.read().(type) {
		case nil:
			p.t.Error("peer: connection ended without DISCONNECT")
			return 0
		case *packet.Disconnect:
			return pk.ReasonCode
		}
	}
}

// connectToPeer connects a client without reconnecting and reports the
// error that ended its connection.
func connectToPeer(t *testing.T, url string, opts mqtt.Options) (*mqtt.Client, <-chan error) {
	t.Helper()
	lost := make(chan error, 1)
	opts.Servers = []string{url}
	opts.DisableAutoReconnect = true
	opts.OnConnectionLost = func(_ *mqtt.Client, err error) { lost <- err }
	c, err := mqtt.Dial(testContext(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Disconnect(testContext(t)) })
	return c, lost
}

func awaitLost(t *testing.T, lost <-chan error) error {
	t.Helper()
	select {
	case err := <-lost:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("connection not lost")
		return nil
	}
}

// TestServerDisconnectReasonSurfaced: what a server's DISCONNECT says
// reaches OnConnectionLost as a *DisconnectError: reason code, reason
// string, server reference and user properties. (mosquitto sends no
// properties in its DISCONNECT packets.)
func TestServerDisconnectReasonSurfaced(t *testing.T) {
	url := startPeer(t, packet.V5, func(p *peer) {
		d := &packet.Disconnect{ReasonCode: packet.UseAnotherServer}
		d.Properties.ReasonString = []byte("maintenance window")
		d.Properties.ServerReference = []byte("broker-b.example:1883")
		d.Properties.User = []packet.UserProperty{
			{Key: []byte("until"), Value: []byte("2025-06-01T04:00:00Z")},
			{Key: []byte("ticket"), Value: []byte("OPS-7")},
		}
		p.write(d)
	})
	_, lost := connectToPeer(t, url, mqtt.Options{ClientID: "x"})
	err := awaitLost(t, lost)
	var de *mqtt.DisconnectError
	if !errors.As(err, &de) {
		t.Fatalf("lost with %v, want a DisconnectError", err)
	}
	want := mqtt.DisconnectError{Code: packet.UseAnotherServer, ReasonString: "maintenance window",
		ServerReference: "broker-b.example:1883",
		UserProperties:  []mqtt.UserProperty{{Key: "until", Value: "2025-06-01T04:00:00Z"}, {Key: "ticket", Value: "OPS-7"}}}
	if !reflect.DeepEqual(*de, want) {
		t.Fatalf("lost with %+v, want %+v", *de, want)
	}
}

func TestMalformedPacketClosesWithReason(t *testing.T) {
	tests := []struct {
		name string
		raw  []byte
		want packet.ReasonCode
	}{
		{"QoS 3 PUBLISH", []byte{0x36, 0x05, 0x00, 0x01, 'a', 0x00, 0x01}, packet.MalformedPacket},
		{"5-byte remaining length", []byte{0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F}, packet.MalformedPacket},
		// Only a PUBLISH over our maximum is skipped (TestOversizedPublishSkipped).
		{"SUBACK over our maximum packet size", []byte{0x90, 0xFF, 0xFF, 0x7F}, packet.PacketTooLarge},
		{"oversized PUBLISH whose topic leaves no room for its packet identifier",
			[]byte{0x32, 0x81, 0x80, 0x04, 0xFF, 0xFF}, packet.MalformedPacket},
		{"oversized PUBLISH with packet identifier 0", []byte{0x32, 0xF0, 0xA2, 0x04, 0x00, 0x01, 'a', 0x00, 0x00}, packet.MalformedPacket},
		{"oversized QoS 0 PUBLISH with DUP", []byte{0x38, 0xF0, 0xA2, 0x04}, packet.MalformedPacket},
		{"wildcard in topic", []byte{0x30, 0x05, 0x00, 0x02, 'a', '#', 0x00}, packet.TopicNameInvalid},
		{"topic alias we never allowed", []byte{0x30, 0x06, 0x00, 0x00, 0x03, 0x23, 0x00, 0x01}, packet.TopicAliasInvalid},
		{"CONNECT from a server", []byte{0x10, 0x00}, packet.ProtocolError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := make(chan packet.ReasonCode, 1)
			url := startPeer(t, packet.V5, func(p *peer) {
				p.writeRaw(tt.raw)
				got <- p.expectDisconnect()
			})
			_, lost := connectToPeer(t, url, mqtt.Options{ClientID: "x", MaximumPacketSize: 1 << 16})
			if err := awaitLost(t, lost); packet.ReasonOf(err) != tt.want {
				t.Errorf("lost with %v (reason %s), want %s", err, packet.ReasonOf(err), tt.want)
			}
			if code := <-got; code != tt.want {
				t.Errorf("client sent DISCONNECT %s, want %s", code, tt.want)
			}
		})
	}
}

func TestPubrelForUnknownPacketID(t *testing.T) {
	got := make(chan *packet.Ack, 1)
	url := startPeer(t, packet.V5, func(p *peer) {
		p.write(&packet.Ack{PacketType: packet.TypePubrel, PacketID: 77})
		for {
			switch pk := p.read().(type) {
			case nil:
				return
			case *packet.Ack:
				got <- pk
				return
			}
		}
	})
	connectToPeer(t, url, mqtt.Options{ClientID: "x"})
	select {
	case a := <-got:
		if a.PacketType != packet.TypePubcomp || a.PacketID != 77 || a.ReasonCode != packet.PacketIdentifierNotFound {
			t.Fatalf("client answered %s id %d %s, want PUBCOMP 77 packet identifier not found", a.PacketType, a.PacketID, a.ReasonCode)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no answer to PUBREL")
	}
}

func TestReceiveMaximumEnforced(t *testing.T) {
	got := make(chan packet.ReasonCode, 1)
	url := startPeer(t, packet.V5, func(p *peer) {
		// Three QoS 1 messages without waiting for acknowledgements, to a
		// client that allows two.
		for id := uint16(1); id <= 3; id++ {
			p.write(&packet.Publish{QoS: 1, PacketID: id, Topic: []byte("t"), Payload: []byte("x")})
		}
		got <- p.expectDisconnect()
	})
	release := make(chan struct{})
	_, lost := connectToPeer(t, url, mqtt.Options{ClientID: "x", ReceiveMaximum: 2, StrictReceiveMaximum: true,
		// The handler holds the first message, so nothing is acknowledged.
		DefaultHandler: func(*mqtt.Message) { <-release }})
	// Registered after connectToPeer's cleanup, so it runs first: Disconnect
	// waits for the handler to return.
	t.Cleanup(func() { close(release) })
	if err := awaitLost(t, lost); !errors.Is(err, packet.ReceiveMaximumExceeded) {
		t.Errorf("lost with %v, want receive maximum exceeded", err)
	}
	if code := <-got; code != packet.ReceiveMaximumExceeded {
		t.Errorf("client sent DISCONNECT %s, want receive maximum exceeded", code)
	}
}

// TestQoS2InboundExactlyOnce replays a QoS 2 PUBLISH the way a server does
// when it missed our PUBREC: the handler must see it once.
func TestQoS2InboundExactlyOnce(t *testing.T) {
	comps := make(chan uint16, 1)
	url := startPeer(t, packet.V5, func(p *peer) {
		pub := &packet.Publish{QoS: 2, PacketID: 9, Topic: []byte("t"), Payload: []byte("once")}
		p.write(pub)
		pub.Dup = true
		recs := 0
		for recs < 2 {
			a, ok := p.read().(*packet.Ack)
			if !ok {
				return
			}
			if a.PacketType == packet.TypePubrec {
				recs++
				if recs == 1 {
					p.write(pub) // as if our PUBREC had been lost
				}
			}
		}
		p.write(&packet.Ack{PacketType: packet.TypePubrel, PacketID: 9})
		if a, ok := p.read().(*packet.Ack); ok && a.PacketType == packet.TypePubcomp {
			comps <- a.PacketID
		}
		// A new message reusing the identifier is new again.
		p.write(&packet.Publish{QoS: 2, PacketID: 9, Topic: []byte("t"), Payload: []byte("next")})
		p.read()
	})
	got := newCollector()
	connectToPeer(t, url, mqtt.Options{ClientID: "x", DefaultHandler: got.handle})
	if m := got.next(t); string(m.Payload) != "once" {
		t.Fatalf("first delivery %q", m.Payload)
	}
	select {
	case id := <-comps:
		if id != 9 {
			t.Fatalf("PUBCOMP for %d", id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no PUBCOMP")
	}
	if m := got.next(t); string(m.Payload) != "next" {
		t.Fatalf("second delivery %q: the duplicate was delivered", m.Payload)
	}
}

// TestHostileBytesNeverPanic feeds the client complete but invalid packets
// after CONNACK; each must end the connection with an error, not a panic.
// (An incomplete packet just waits for more bytes, as it should; keepalive
// ends that wait.)
func TestHostileBytesNeverPanic(t *testing.T) {
	streams := [][]byte{
		{0x00, 0x00},                   // reserved type
		{0xF0, 0x00, 0xFF},             // AUTH nobody asked for
		{0x30, 0x80, 0x00},             // non-minimal remaining length
		{0x90, 0x03, 0x00, 0x00, 0x00}, // SUBACK for packet id 0
		{0xB0, 0x02, 0x00, 0x00},       // UNSUBACK for packet id 0
		{0x62, 0x02, 0x00, 0x00},       // PUBREL for packet id 0
		{0xD0, 0x01, 0x00},             // PINGRESP with a body
		{0x20, 0x02, 0x00, 0x00},       // a second CONNACK
		{0x32, 0x03, 0x00, 0x01, 'a'},  // QoS 1 PUBLISH cut before its id
	}
	for _, raw := range streams {
		url := startPeer(t, packet.V5, func(p *peer) {
			p.writeRaw(raw)
			p.expectDisconnect()
		})
		_, lost := connectToPeer(t, url, mqtt.Options{ClientID: "x"})
		if err := awaitLost(t, lost); err == nil {
			t.Errorf("% x: connection ended without an error", raw)
		}
	}
}

// TestPubackUnlistedSuccessCode: mochi-mqtt 2.7.9 answers a QoS 1 PUBLISH
// with PUBACK reason 0x01, which the PUBACK table does not list. Every
// code below 0x80 is success (2.4), so the publish succeeds, the code is
// counted, and the connection stays: closing it would resend the message
// on the next connection, to be answered the same way, for good.
func TestPubackUnlistedSuccessCode(t *testing.T) {
	published := make(chan int, 1)
	url := startPeer(t, packet.V5, func(p *peer) {
		n := 0
		defer func() { published <- n }()
		for {
			switch pk := p.read().(type) {
			case nil, *packet.Disconnect:
				return
			case *packet.Publish:
				n++
				code := byte(0x01)
				if n > 1 {
					code = 0x00
				}
				p.writeRaw([]byte{0x40, 3, byte(pk.PacketID >> 8), byte(pk.PacketID), code})
			}
		}
	})
	c, lost := connectToPeer(t, url, mqtt.Options{ClientID: "x"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, topic := range []string{"first", "second"} {
		if err := c.Publish(ctx, &mqtt.Message{Topic: topic, QoS: mqtt.AtLeastOnce}); err != nil {
			t.Fatalf("publish %s: %v", topic, err)
		}
	}
	if st := c.Stats(); st.UnlistedAckReasons != 1 || st.ConnectionsLost != 0 {
		t.Fatalf("stats: %d unlisted reason codes, %d connections lost; want 1 and 0", st.UnlistedAckReasons, st.ConnectionsLost)
	}
	if err := c.Disconnect(ctx); err != nil {
		t.Fatal(err)
	}
	if n := <-published; n != 2 {
		t.Fatalf("the server got %d PUBLISH packets, want 2", n)
	}
	select {
	case err := <-lost:
		t.Fatalf("connection lost: %v", err)
	default:
	}
}
