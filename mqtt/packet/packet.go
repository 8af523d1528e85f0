package packet

import "fmt"

// Packet is one MQTT control packet.
type Packet interface {
	// Type is the packet's control packet type.
	Type() Type
	// Append encodes the packet for protocol version v and appends it to dst.
	Append(dst []byte, v Version) ([]byte, error)
	// Unmarshal decodes a packet body (after the fixed header) into the
	// packet, reusing its slices. flags are the fixed header's low bits.
	Unmarshal(v Version, flags byte, body []byte) error
}

// New returns an empty packet of type t, ready for Unmarshal.
func New(t Type) (Packet, error) {
	switch t {
	case TypeConnect:
		return &Connect{}, nil
	case TypeConnack:
		return &Connack{}, nil
	case TypePublish:
		return &Publish{}, nil
	case TypePuback, TypePubrec, TypePubrel, TypePubcomp:
		return &Ack{PacketType: t}, nil
	case TypeSubscribe:
		return &Subscribe{}, nil
	case TypeSuback:
		return &Suback{}, nil
	case TypeUnsubscribe:
		return &Unsubscribe{}, nil
	case TypeUnsuback:
		return &Unsuback{}, nil
	case TypePingreq:
		return &Pingreq{}, nil
	case TypePingresp:
		return &Pingresp{}, nil
	case TypeDisconnect:
		return &Disconnect{}, nil
	case TypeAuth:
		return &Auth{}, nil
	}
	return nil, ErrReservedType
}

// Decode reads one whole packet from the start of b: the fixed header, then
// the body, which the returned packet aliases. It returns the packet and the
// number of bytes it took. maxSize limits the packet's size (0: no limit
// beyond the protocol's). Decoding a CONNECT ignores v: CONNECT names its
// own version.
func Decode(b []byte, v Version, maxSize uint32) (Packet, int, error) {
	h, n, err := DecodeHeader(b, v, maxSize)
	if err != nil {
		return nil, 0, err
	}
	if len(b)-n < h.Remaining {
		return nil, 0, ErrShortBuffer
	}
	p, err := New(h.Type)
	if err != nil {
		return nil, 0, err
	}
	if err := p.Unmarshal(v, h.Flags, b[n:n+h.Remaining:n+h.Remaining]); err != nil {
		return nil, 0, fmt.Errorf("%s: %w", h.Type, err)
	}
	return p, n + h.Remaining, nil
}

// UnmarshalOptions adjust decoding. The zero value decodes exactly as
// Packet.Unmarshal does.
type UnmarshalOptions struct {
	// DiscardUserProperties checks every user property as strictly as
	// decoding always does (bounds, UTF-8, which packets may carry them)
	// but keeps none: Properties.User stays empty, and Has(PropUser) still
	// reports that the packet had some. For a reader that never looks at
	// them it is also a defence: an empty pair is 5 bytes on the wire but
	// a 48-byte UserProperty in memory, so a packet full of them would
	// otherwise cost about 10 times its size, and a reused decode target
	// would keep that capacity.
	DiscardUserProperties bool
	// AcceptUnlistedAckSuccess has a PUBACK, PUBREC, PUBREL or PUBCOMP
	// keep a reason code below 0x80 that the specification does not list
	// for its type, instead of failing as malformed. The sender broke
	// [MQTT-3.4.2-1] (and its PUBREC, PUBREL, PUBCOMP twins), but every
	// code below 0x80 means success (2.4), so a receiver loses nothing by
	// reading it so; mochi-mqtt 2.7.9 acknowledges QoS 1 with PUBACK 0x01.
	// Unlisted failure codes (0x80 and above) are still malformed.
	AcceptUnlistedAckSuccess bool
}

// readerUnmarshaler is implemented by the packets that have properties:
// Unmarshal with a reader that carries the options.
type readerUnmarshaler interface {
	unmarshal(v Version, flags byte, r reader) error
}

// Unmarshal decodes a packet body into p, like p.Unmarshal, under o.
func (o UnmarshalOptions) Unmarshal(p Packet, v Version, flags byte, body []byte) error {
	if u, ok := p.(readerUnmarshaler); ok {
		return u.unmarshal(v, flags, reader{b: body, discardUser: o.DiscardUserProperties, unlistedSuccess: o.AcceptUnlistedAckSuccess})
	}
	return p.Unmarshal(v, flags, body)
}

// Pingreq is a PINGREQ: the client's keepalive probe. (3.12)
type Pingreq struct{}

// Type returns TypePingreq.
func (*Pingreq) Type() Type { return TypePingreq }

// Append encodes the packet.
func (*Pingreq) Append(dst []byte, _ Version) ([]byte, error) { return append(dst, 0xC0, 0), nil }

// Unmarshal checks that the body is empty.
func (*Pingreq) Unmarshal(_ Version, _ byte, body []byte) error { return emptyBody(body) }

// Pingresp is a PINGRESP: the server's answer to PINGREQ. (3.13)
type Pingresp struct{}

// Type returns TypePingresp.
func (*Pingresp) Type() Type { return TypePingresp }

// Append encodes the packet.
func (*Pingresp) Append(dst []byte, _ Version) ([]byte, error) { return append(dst, 0xD0, 0), nil }

// Unmarshal checks that the body is empty.
func (*Pingresp) Unmarshal(_ Version, _ byte, body []byte) error { return emptyBody(body) }

func emptyBody(body []byte) error {
	if len(body) != 0 {
		return ErrTrailingBytes
	}
	return nil
}
