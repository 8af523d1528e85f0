package packet

// Subscription is one topic filter of a SUBSCRIBE with its options. (3.8.3.1)
type Subscription struct {
	Filter            []byte
	QoS               byte // maximum QoS
	NoLocal           bool // v5
	RetainAsPublished bool // v5
	RetainHandling    byte // v5: 0 send retained, 1 only for new subscriptions, 2 never
}

// Options returns the subscription options byte as SUBSCRIBE carries it:
// maximum QoS, No Local, Retain As Published and Retain Handling.
func (s *Subscription) Options() byte {
	o := s.QoS | s.RetainHandling<<4
	if s.NoLocal {
		o |= 0x04
	}
	if s.RetainAsPublished {
		o |= 0x08
	}
	return o
}

// Subscribe is a SUBSCRIBE packet. (3.8)
type Subscribe struct {
	PacketID      uint16
	Properties    Properties // v5: subscription identifier, user properties
	Subscriptions []Subscription
}

// Type returns TypeSubscribe.
func (*Subscribe) Type() Type { return TypeSubscribe }

// Unmarshal decodes a SUBSCRIBE body.
func (p *Subscribe) Unmarshal(v Version, flags byte, body []byte) error {
	return p.unmarshal(v, flags, reader{b: body})
}

func (p *Subscribe) unmarshal(v Version, _ byte, r reader) error {
	if p.PacketID = r.uint16(); r.err == nil && p.PacketID == 0 {
		return ErrPacketIDZero
	}
	p.Properties.Reset()
	if v == V5 {
		p.Properties.decode(&r, inSubscribe)
	}
	p.Subscriptions = p.Subscriptions[:0]
	for r.err == nil && r.remaining() > 0 {
		s := Subscription{Filter: r.string()}
		o := r.byte()
		if r.err != nil {
			break
		}
		if err := ValidTopicFilter(s.Filter); err != nil {
			return err
		}
		s.QoS = o & 0x03
		if v == V5 {
			s.NoLocal, s.RetainAsPublished, s.RetainHandling = o&0x04 != 0, o&0x08 != 0, o>>4&0x03
			if o&0xC0 != 0 {
				return ErrSubscriptionOptions // [MQTT-3.8.3-5]
			}
			if s.RetainHandling == 3 || s.QoS == 3 {
				return ErrSubscriptionOptionValue // 3.8.3.1
			}
			if _, _, shared := SplitShared(s.Filter); shared && s.NoLocal {
				return ErrNoLocalShared
			}
		} else if o&0xFC != 0 || s.QoS == 3 {
			return ErrSubscriptionOptions // [MQTT-3-8.3-4]
		}
		p.Subscriptions = append(p.Subscriptions, s)
	}
	if r.err == nil && len(p.Subscriptions) == 0 {
		return ErrNoFilters
	}
	return r.done()
}

// Append encodes the SUBSCRIBE.
func (p *Subscribe) Append(dst []byte, v Version) ([]byte, error) {
	if p.PacketID == 0 {
		return dst, ErrPacketIDZero
	}
	if len(p.Subscriptions) == 0 {
		return dst, ErrNoFilters
	}
	size := 2
	for i := range p.Subscriptions {
		s := &p.Subscriptions[i]
		if err := ValidTopicFilter(s.Filter); err != nil {
			return dst, err
		}
		if s.QoS > 2 || s.RetainHandling > 2 {
			return dst, ErrSubscriptionOptionValue
		}
		if v != V5 && (s.NoLocal || s.RetainAsPublished || s.RetainHandling != 0) {
			return dst, ErrPropertiesV311
		}
		if _, _, shared := SplitShared(s.Filter); shared && s.NoLocal {
			return dst, ErrNoLocalShared
		}
		size += 3 + len(s.Filter)
	}
	propSize, n, err := propertiesSize(&p.Properties, v, inSubscribe)
	if err != nil {
		return dst, err
	}
	size += n
	if dst, err = appendHeader(dst, TypeSubscribe, fixedFlags(TypeSubscribe), size); err != nil {
		return dst, err
	}
	dst = appendUint16(dst, p.PacketID)
	if v == V5 {
		dst = p.Properties.appendTo(dst, propSize)
	}
	for i := range p.Subscriptions {
		dst = appendBinary(dst, p.Subscriptions[i].Filter)
		dst = append(dst, p.Subscriptions[i].Options())
	}
	return dst, nil
}

// Suback is a SUBACK packet: one reason code per requested filter. (3.9)
type Suback struct {
	PacketID    uint16
	Properties  Properties // v5 only
	ReasonCodes []ReasonCode
}

// Type returns TypeSuback.
func (*Suback) Type() Type { return TypeSuback }

// Unmarshal decodes a SUBACK body.
func (p *Suback) Unmarshal(v Version, flags byte, body []byte) error {
	return p.unmarshal(v, flags, reader{b: body})
}

func (p *Suback) unmarshal(v Version, _ byte, r reader) error {
	return unmarshalCodes(&r, v, TypeSuback, &p.PacketID, &p.Properties, &p.ReasonCodes)
}

// Append encodes the SUBACK.
func (p *Suback) Append(dst []byte, v Version) ([]byte, error) {
	return appendCodes(dst, v, TypeSuback, p.PacketID, &p.Properties, p.ReasonCodes)
}

// Unsubscribe is an UNSUBSCRIBE packet. (3.10)
type Unsubscribe struct {
	PacketID   uint16
	Properties Properties // v5: user properties
	Filters    [][]byte
}

// Type returns TypeUnsubscribe.
func (*Unsubscribe) Type() Type { return TypeUnsubscribe }

// Unmarshal decodes an UNSUBSCRIBE body.
func (p *Unsubscribe) Unmarshal(v Version, flags byte, body []byte) error {
	return p.unmarshal(v, flags, reader{b: body})
}

func (p *Unsubscribe) unmarshal(v Version, _ byte, r reader) error {
	if p.PacketID = r.uint16(); r.err == nil && p.PacketID == 0 {
		return ErrPacketIDZero
	}
	p.Properties.Reset()
	if v == V5 {
		p.Properties.decode(&r, inUnsubscribe)
	}
	p.Filters = p.Filters[:0]
	for r.err == nil && r.remaining() > 0 {
		f := r.string()
		if r.err != nil {
			break
		}
		if err := ValidTopicFilter(f); err != nil {
			return err
		}
		p.Filters = append(p.Filters, f)
	}
	if r.err == nil && len(p.Filters) == 0 {
		return ErrNoFilters
	}
	return r.done()
}

// Append encodes the UNSUBSCRIBE.
func (p *Unsubscribe) Append(dst []byte, v Version) ([]byte, error) {
	if p.PacketID == 0 {
		return dst, ErrPacketIDZero
	}
	if len(p.Filters) == 0 {
		return dst, ErrNoFilters
	}
	size := 2
	for _, f := range p.Filters {
		if err := ValidTopicFilter(f); err != nil {
			return dst, err
		}
		size += 2 + len(f)
	}
	propSize, n, err := propertiesSize(&p.Properties, v, inUnsubscribe)
	if err != nil {
		return dst, err
	}
	size += n
	if dst, err = appendHeader(dst, TypeUnsubscribe, fixedFlags(TypeUnsubscribe), size); err != nil {
		return dst, err
	}
	dst = appendUint16(dst, p.PacketID)
	if v == V5 {
		dst = p.Properties.appendTo(dst, propSize)
	}
	for _, f := range p.Filters {
		dst = appendBinary(dst, f)
	}
	return dst, nil
}

// Unsuback is an UNSUBACK packet. In 3.1.1 it carries no reason codes. (3.11)
type Unsuback struct {
	PacketID    uint16
	Properties  Properties // v5 only
	ReasonCodes []ReasonCode
}

// Type returns TypeUnsuback.
func (*Unsuback) Type() Type { return TypeUnsuback }

// Unmarshal decodes an UNSUBACK body.
func (p *Unsuback) Unmarshal(v Version, flags byte, body []byte) error {
	return p.unmarshal(v, flags, reader{b: body})
}

func (p *Unsuback) unmarshal(v Version, _ byte, r reader) error {
	return unmarshalCodes(&r, v, TypeUnsuback, &p.PacketID, &p.Properties, &p.ReasonCodes)
}

// Append encodes the UNSUBACK.
func (p *Unsuback) Append(dst []byte, v Version) ([]byte, error) {
	return appendCodes(dst, v, TypeUnsuback, p.PacketID, &p.Properties, p.ReasonCodes)
}

// unmarshalCodes decodes SUBACK and UNSUBACK, which differ only in which
// codes they allow and in 3.1.1 UNSUBACK having none.
func unmarshalCodes(r *reader, v Version, t Type, id *uint16, props *Properties, codes *[]ReasonCode) error {
	if *id = r.uint16(); r.err == nil && *id == 0 {
		return ErrPacketIDZero
	}
	props.Reset()
	*codes = (*codes)[:0]
	if v == V5 {
		props.decode(r, scopeOf(t))
	} else if t == TypeUnsuback {
		return r.done()
	}
	for r.err == nil && r.remaining() > 0 {
		c := ReasonCode(r.byte())
		if !codeAllowed(v, t, c) {
			return errorf(ErrReasonCode, "%s 0x%02X", t, byte(c))
		}
		*codes = append(*codes, c)
	}
	if r.err == nil && len(*codes) == 0 {
		return errorf(ErrReasonCode, "%s without reason codes", t)
	}
	return r.done()
}

// codeAllowed reports whether c may appear in a SUBACK or UNSUBACK of
// version v. 3.1.1 SUBACK allows 0x00–0x02 and 0x80. [MQTT-3.9.3-2]
func codeAllowed(v Version, t Type, c ReasonCode) bool {
	if v != V5 {
		return t == TypeSuback && (c <= GrantedQoS2 || c == V311SubscribeFailure)
	}
	return c.ValidFor(t)
}

func appendCodes(dst []byte, v Version, t Type, id uint16, props *Properties, codes []ReasonCode) ([]byte, error) {
	if id == 0 {
		return dst, ErrPacketIDZero
	}
	size := 2
	propSize, n, err := propertiesSize(props, v, scopeOf(t))
	if err != nil {
		return dst, err
	}
	size += n
	if v == V5 || t == TypeSuback {
		if len(codes) == 0 {
			return dst, errorf(ErrReasonCode, "%s without reason codes", t)
		}
		for _, c := range codes {
			if !codeAllowed(v, t, c) {
				return dst, errorf(ErrReasonCode, "%s 0x%02X", t, byte(c))
			}
		}
		size += len(codes)
	} else if len(codes) > 0 {
		// A 3.1.1 UNSUBACK has no payload (3.11.3): dropping the codes
		// silently would lose what the caller meant to say.
		return dst, ErrPropertiesV311
	}
	if dst, err = appendHeader(dst, t, 0, size); err != nil {
		return dst, err
	}
	dst = appendUint16(dst, id)
	if v == V5 {
		dst = props.appendTo(dst, propSize)
	} else if t == TypeUnsuback {
		return dst, nil
	}
	for _, c := range codes {
		dst = append(dst, byte(c))
	}
	return dst, nil
}
