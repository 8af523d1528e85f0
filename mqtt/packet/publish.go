package packet

// Publish is a PUBLISH packet. (3.3)
type Publish struct {
	Dup        bool
	QoS        byte
	Retain     bool
	Topic      []byte // empty only with a v5 topic alias
	PacketID   uint16 // QoS 1 and 2 only
	Properties Properties
	Payload    []byte
}

// Type returns TypePublish.
func (*Publish) Type() Type { return TypePublish }

// Flags returns the fixed header flags that encode Dup, QoS and Retain.
func (p *Publish) Flags() byte {
	f := p.QoS << 1
	if p.Dup {
		f |= 0x08
	}
	if p.Retain {
		f |= 0x01
	}
	return f
}

// Unmarshal decodes a PUBLISH body.
func (p *Publish) Unmarshal(v Version, flags byte, body []byte) error {
	return p.unmarshal(v, flags, reader{b: body})
}

func (p *Publish) unmarshal(v Version, flags byte, r reader) error {
	p.Dup = flags&0x08 != 0
	p.QoS = flags >> 1 & 0x03
	p.Retain = flags&0x01 != 0
	if p.QoS == 3 {
		return ErrQoS
	}
	if p.Dup && p.QoS == 0 {
		return ErrDupQoS0
	}
	// The topic is checked below with the wildcard rules; here only its UTF-8.
	p.Topic = r.string()
	p.PacketID = 0
	if p.QoS > 0 {
		if p.PacketID = r.uint16(); r.err == nil && p.PacketID == 0 {
			return ErrPacketIDZero
		}
	}
	p.Properties.Reset()
	if v == V5 {
		p.Properties.decode(&r, inPublish)
	}
	p.Payload = r.rest()
	if r.err != nil {
		return r.err
	}
	if len(p.Topic) == 0 && v == V5 && p.Properties.Has(PropTopicAlias) {
		return nil
	}
	return ValidTopicName(p.Topic)
}

// Append encodes the PUBLISH.
func (p *Publish) Append(dst []byte, v Version) ([]byte, error) {
	if p.QoS > 2 {
		return dst, ErrQoS
	}
	if p.Dup && p.QoS == 0 {
		return dst, ErrDupQoS0
	}
	if p.QoS > 0 && p.PacketID == 0 {
		return dst, ErrPacketIDZero
	}
	if len(p.Topic) > 0 || v != V5 || p.Properties.TopicAlias == 0 {
		if err := ValidTopicName(p.Topic); err != nil {
			return dst, err
		}
	}
	size := 2 + len(p.Topic) + len(p.Payload)
	if p.QoS > 0 {
		size += 2
	}
	propSize, n, err := propertiesSize(&p.Properties, v, inPublish)
	if err != nil {
		return dst, err
	}
	size += n
	if dst, err = appendHeader(dst, TypePublish, p.Flags(), size); err != nil {
		return dst, err
	}
	dst = appendBinary(dst, p.Topic)
	if p.QoS > 0 {
		dst = appendUint16(dst, p.PacketID)
	}
	if v == V5 {
		dst = p.Properties.appendTo(dst, propSize)
	}
	return append(dst, p.Payload...), nil
}

// Ack is a PUBACK, PUBREC, PUBREL or PUBCOMP: the packets of the QoS 1 and 2
// flows, which share one layout. (3.4–3.7)
type Ack struct {
	PacketType Type
	PacketID   uint16
	ReasonCode ReasonCode // v5 only
	Properties Properties // v5 only
}

// Type returns the ack's packet type.
func (p *Ack) Type() Type { return p.PacketType }

// Unmarshal decodes an ack body.
func (p *Ack) Unmarshal(v Version, flags byte, body []byte) error {
	return p.unmarshal(v, flags, reader{b: body})
}

func (p *Ack) unmarshal(v Version, _ byte, r reader) error {
	p.PacketID = r.uint16()
	p.ReasonCode = Success
	p.Properties.Reset()
	if r.err == nil && p.PacketID == 0 {
		return ErrPacketIDZero
	}
	if v == V5 {
		// The reason code and properties may be omitted when they are
		// Success and empty. (3.4.2.1, 3.4.2.2.1)
		if r.remaining() > 0 {
			p.ReasonCode = ReasonCode(r.byte())
			lenient := r.unlistedSuccess && !p.ReasonCode.IsError()
			if !lenient && !p.ReasonCode.ValidFor(p.PacketType) {
				return errorf(ErrReasonCode, "%s 0x%02X", p.PacketType, byte(p.ReasonCode))
			}
		}
		if r.remaining() > 0 {
			p.Properties.decode(&r, scopeOf(p.PacketType))
		}
	}
	return r.done()
}

// Append encodes the ack in its shortest form.
func (p *Ack) Append(dst []byte, v Version) ([]byte, error) {
	if p.PacketType < TypePuback || p.PacketType > TypePubcomp {
		return dst, ErrReservedType
	}
	if p.PacketID == 0 {
		return dst, ErrPacketIDZero
	}
	flags := fixedFlags(p.PacketType)
	if v != V5 {
		if p.ReasonCode != Success || hasProperties(&p.Properties) {
			return dst, ErrPropertiesV311
		}
		return append(dst, byte(p.PacketType)<<4|flags, 2, byte(p.PacketID>>8), byte(p.PacketID)), nil
	}
	propSize, err := p.Properties.size(scopeOf(p.PacketType))
	if err != nil {
		return dst, err
	}
	if propSize == 0 && p.ReasonCode == Success {
		return append(dst, byte(p.PacketType)<<4|flags, 2, byte(p.PacketID>>8), byte(p.PacketID)), nil
	}
	if !p.ReasonCode.ValidFor(p.PacketType) {
		return dst, errorf(ErrReasonCode, "%s 0x%02X", p.PacketType, byte(p.ReasonCode))
	}
	size := 3
	if propSize > 0 {
		size += VarIntSize(uint32(propSize)) + propSize
	}
	if dst, err = appendHeader(dst, p.PacketType, flags, size); err != nil {
		return dst, err
	}
	dst = append(dst, byte(p.PacketID>>8), byte(p.PacketID), byte(p.ReasonCode))
	if propSize > 0 {
		dst = p.Properties.appendTo(dst, propSize)
	}
	return dst, nil
}
