package packet

import "math/bits"

// PropID identifies an MQTT 5.0 property. (2.2.2.2)
type PropID byte

// Property identifiers.
const (
	PropPayloadFormat        PropID = 0x01
	PropMessageExpiry        PropID = 0x02
	PropContentType          PropID = 0x03
	PropResponseTopic        PropID = 0x08
	PropCorrelationData      PropID = 0x09
	PropSubscriptionID       PropID = 0x0B
	PropSessionExpiry        PropID = 0x11
	PropAssignedClientID     PropID = 0x12
	PropServerKeepAlive      PropID = 0x13
	PropAuthMethod           PropID = 0x15
	PropAuthData             PropID = 0x16
	PropRequestProblemInfo   PropID = 0x17
	PropWillDelay            PropID = 0x18
	PropRequestResponseInfo  PropID = 0x19
	PropResponseInfo         PropID = 0x1A
	PropServerReference      PropID = 0x1C
	PropReasonString         PropID = 0x1F
	PropReceiveMaximum       PropID = 0x21
	PropTopicAliasMaximum    PropID = 0x22
	PropTopicAlias           PropID = 0x23
	PropMaximumQoS           PropID = 0x24
	PropRetainAvailable      PropID = 0x25
	PropUser                 PropID = 0x26
	PropMaximumPacketSize    PropID = 0x27
	PropWildcardSubAvailable PropID = 0x28
	PropSubIDAvailable       PropID = 0x29
	PropSharedSubAvailable   PropID = 0x2A
	maxPropID                       = 0x2A
)

// propKind is a property's data type.
type propKind byte

const (
	kindByte propKind = iota + 1
	kindUint16
	kindUint32
	kindVarInt
	kindString
	kindBinary
	kindPair
)

// scope is a set of places a property may appear: packet types, plus the
// will properties inside CONNECT.
type scope uint32

const scopeWill scope = 1 << 16

func scopeOf(t Type) scope { return 1 << t }

const (
	inConnect     = scope(1 << TypeConnect)
	inConnack     = scope(1 << TypeConnack)
	inPublish     = scope(1 << TypePublish)
	inPubAcks     = scope(1<<TypePuback | 1<<TypePubrec | 1<<TypePubrel | 1<<TypePubcomp)
	inSubscribe   = scope(1 << TypeSubscribe)
	inSuback      = scope(1 << TypeSuback)
	inUnsubscribe = scope(1 << TypeUnsubscribe)
	inUnsuback    = scope(1 << TypeUnsuback)
	inDisconnect  = scope(1 << TypeDisconnect)
	inAuth        = scope(1 << TypeAuth)
)

type propSpec struct {
	kind  propKind
	where scope
}

// propSpecs is the table of 2.2.2.2: each property's type and the packets
// that may carry it.
var propSpecs = [maxPropID + 1]propSpec{
	PropPayloadFormat:        {kindByte, inPublish | scopeWill},
	PropMessageExpiry:        {kindUint32, inPublish | scopeWill},
	PropContentType:          {kindString, inPublish | scopeWill},
	PropResponseTopic:        {kindString, inPublish | scopeWill},
	PropCorrelationData:      {kindBinary, inPublish | scopeWill},
	PropSubscriptionID:       {kindVarInt, inPublish | inSubscribe},
	PropSessionExpiry:        {kindUint32, inConnect | inConnack | inDisconnect},
	PropAssignedClientID:     {kindString, inConnack},
	PropServerKeepAlive:      {kindUint16, inConnack},
	PropAuthMethod:           {kindString, inConnect | inConnack | inAuth},
	PropAuthData:             {kindBinary, inConnect | inConnack | inAuth},
	PropRequestProblemInfo:   {kindByte, inConnect},
	PropWillDelay:            {kindUint32, scopeWill},
	PropRequestResponseInfo:  {kindByte, inConnect},
	PropResponseInfo:         {kindString, inConnack},
	PropServerReference:      {kindString, inConnack | inDisconnect},
	PropReasonString:         {kindString, inConnack | inPubAcks | inSuback | inUnsuback | inDisconnect | inAuth},
	PropReceiveMaximum:       {kindUint16, inConnect | inConnack},
	PropTopicAliasMaximum:    {kindUint16, inConnect | inConnack},
	PropTopicAlias:           {kindUint16, inPublish},
	PropMaximumQoS:           {kindByte, inConnack},
	PropRetainAvailable:      {kindByte, inConnack},
	PropUser:                 {kindPair, inConnect | inConnack | inPublish | scopeWill | inPubAcks | inSubscribe | inSuback | inUnsubscribe | inUnsuback | inDisconnect | inAuth},
	PropMaximumPacketSize:    {kindUint32, inConnect | inConnack},
	PropWildcardSubAvailable: {kindByte, inConnack},
	PropSubIDAvailable:       {kindByte, inConnack},
	PropSharedSubAvailable:   {kindByte, inConnack},
}

// UserProperty is one MQTT 5.0 user property, a UTF-8 name/value pair.
type UserProperty struct {
	Key, Value []byte
}

// Properties holds the MQTT 5.0 properties of a packet or a will. A
// numeric property is sent when it is non-zero or marked with Set (for
// values whose zero differs from the default, such as Maximum QoS 0); a
// []byte property is sent when non-nil, so an empty non-nil slice sends an
// empty string. Decoding marks every property it reads.
type Properties struct {
	present uint64 // bit i: property i was decoded or Set

	PayloadFormat        byte
	MessageExpiry        uint32
	ContentType          []byte
	ResponseTopic        []byte
	CorrelationData      []byte
	SubscriptionIDs      []uint32 // one in SUBSCRIBE; any number in PUBLISH
	SessionExpiry        uint32
	AssignedClientID     []byte
	ServerKeepAlive      uint16
	AuthMethod           []byte
	AuthData             []byte
	RequestProblemInfo   byte
	WillDelay            uint32
	RequestResponseInfo  byte
	ResponseInfo         []byte
	ServerReference      []byte
	ReasonString         []byte
	ReceiveMaximum       uint16
	TopicAliasMaximum    uint16
	TopicAlias           uint16
	MaximumQoS           byte
	RetainAvailable      byte
	MaximumPacketSize    uint32
	WildcardSubAvailable byte
	SubIDAvailable       byte
	SharedSubAvailable   byte
	User                 []UserProperty
}

// Has reports whether property id was decoded or Set.
func (p *Properties) Has(id PropID) bool { return p.present&(1<<id) != 0 }

// Set marks property id as present so that it is sent even when zero.
func (p *Properties) Set(id PropID) { p.present |= 1 << id }

// Reset clears p, keeping the capacity of its slices for reuse.
func (p *Properties) Reset() {
	*p = Properties{User: p.User[:0], SubscriptionIDs: p.SubscriptionIDs[:0]}
}

// numeric returns a numeric property's value.
func (p *Properties) numeric(id PropID) uint32 {
	switch id {
	case PropPayloadFormat:
		return uint32(p.PayloadFormat)
	case PropMessageExpiry:
		return p.MessageExpiry
	case PropSessionExpiry:
		return p.SessionExpiry
	case PropServerKeepAlive:
		return uint32(p.ServerKeepAlive)
	case PropRequestProblemInfo:
		return uint32(p.RequestProblemInfo)
	case PropWillDelay:
		return p.WillDelay
	case PropRequestResponseInfo:
		return uint32(p.RequestResponseInfo)
	case PropReceiveMaximum:
		return uint32(p.ReceiveMaximum)
	case PropTopicAliasMaximum:
		return uint32(p.TopicAliasMaximum)
	case PropTopicAlias:
		return uint32(p.TopicAlias)
	case PropMaximumQoS:
		return uint32(p.MaximumQoS)
	case PropRetainAvailable:
		return uint32(p.RetainAvailable)
	case PropMaximumPacketSize:
		return p.MaximumPacketSize
	case PropWildcardSubAvailable:
		return uint32(p.WildcardSubAvailable)
	case PropSubIDAvailable:
		return uint32(p.SubIDAvailable)
	case PropSharedSubAvailable:
		return uint32(p.SharedSubAvailable)
	}
	return 0
}

func (p *Properties) setNumeric(id PropID, v uint32) {
	switch id {
	case PropPayloadFormat:
		p.PayloadFormat = byte(v)
	case PropMessageExpiry:
		p.MessageExpiry = v
	case PropSessionExpiry:
		p.SessionExpiry = v
	case PropServerKeepAlive:
		p.ServerKeepAlive = uint16(v)
	case PropRequestProblemInfo:
		p.RequestProblemInfo = byte(v)
	case PropWillDelay:
		p.WillDelay = v
	case PropRequestResponseInfo:
		p.RequestResponseInfo = byte(v)
	case PropReceiveMaximum:
		p.ReceiveMaximum = uint16(v)
	case PropTopicAliasMaximum:
		p.TopicAliasMaximum = uint16(v)
	case PropTopicAlias:
		p.TopicAlias = uint16(v)
	case PropMaximumQoS:
		p.MaximumQoS = byte(v)
	case PropRetainAvailable:
		p.RetainAvailable = byte(v)
	case PropMaximumPacketSize:
		p.MaximumPacketSize = v
	case PropWildcardSubAvailable:
		p.WildcardSubAvailable = byte(v)
	case PropSubIDAvailable:
		p.SubIDAvailable = byte(v)
	case PropSharedSubAvailable:
		p.SharedSubAvailable = byte(v)
	}
}

// bytesField returns the address of a string or binary property's field.
func (p *Properties) bytesField(id PropID) *[]byte {
	switch id {
	case PropContentType:
		return &p.ContentType
	case PropResponseTopic:
		return &p.ResponseTopic
	case PropCorrelationData:
		return &p.CorrelationData
	case PropAssignedClientID:
		return &p.AssignedClientID
	case PropAuthMethod:
		return &p.AuthMethod
	case PropAuthData:
		return &p.AuthData
	case PropResponseInfo:
		return &p.ResponseInfo
	case PropServerReference:
		return &p.ServerReference
	case PropReasonString:
		return &p.ReasonString
	}
	return nil
}

// checkValue enforces the ranges the specification puts on property values.
func checkValue(id PropID, v uint32) error {
	switch id {
	case PropPayloadFormat, PropRequestProblemInfo, PropRequestResponseInfo, PropMaximumQoS,
		PropRetainAvailable, PropWildcardSubAvailable, PropSubIDAvailable, PropSharedSubAvailable:
		if v > 1 {
			return errorf(ErrPropertyValue, "property 0x%02X = %d, want 0 or 1", byte(id), v)
		}
	case PropReceiveMaximum, PropMaximumPacketSize, PropTopicAlias:
		if v == 0 {
			return errorf(ErrPropertyValue, "property 0x%02X is 0", byte(id))
		}
	case PropSubscriptionID:
		if v == 0 {
			return errorf(ErrPropertyValue, "subscription identifier is 0")
		}
	}
	return nil
}

// decode reads a property length and the properties after it, allowing only
// those valid in where. p must be Reset by the caller. With r.discardUser,
// user properties are checked like the others and marked present, but
// p.User stays empty.
func (p *Properties) decode(r *reader, where scope) {
	n := r.varInt()
	if r.err != nil {
		return
	}
	if int(n) > r.remaining() {
		r.fail(ErrShortBuffer)
		return
	}
	end := r.off + int(n)
	sub := reader{b: r.b[:end], off: r.off, discardUser: r.discardUser}
	for sub.err == nil && sub.off < end {
		// The identifier is a variable byte integer (2.2.2.2): range-check
		// it before narrowing, or 257 would pass as 0x01.
		raw := sub.varInt()
		if sub.err != nil {
			break
		}
		if raw > maxPropID || propSpecs[raw].kind == 0 || propSpecs[raw].where&where == 0 {
			sub.fail(errorf(ErrPropertyNotAllowed, "identifier 0x%02X", raw))
			break
		}
		id := PropID(raw)
		repeatable := id == PropUser || (id == PropSubscriptionID && where == inPublish)
		if p.Has(id) && !repeatable {
			sub.fail(errorf(ErrPropertyDuplicate, "identifier 0x%02X", byte(id)))
			break
		}
		p.Set(id)
		switch propSpecs[id].kind {
		case kindByte:
			p.setNumeric(id, uint32(sub.byte()))
		case kindUint16:
			p.setNumeric(id, uint32(sub.uint16()))
		case kindUint32:
			p.setNumeric(id, sub.uint32())
		case kindVarInt:
			v := sub.varInt()
			if sub.err == nil {
				p.SubscriptionIDs = append(p.SubscriptionIDs, v)
			}
		case kindString:
			*p.bytesField(id) = sub.string()
		case kindBinary:
			*p.bytesField(id) = sub.binary()
		case kindPair:
			// Both strings are read and checked even when discarded, so a
			// malformed pair fails the packet either way.
			k := sub.string()
			v := sub.string()
			if sub.err == nil && !sub.discardUser {
				p.User = append(p.User, UserProperty{Key: k, Value: v})
			}
		}
		if sub.err != nil {
			break
		}
		switch propSpecs[id].kind {
		case kindByte, kindUint16, kindUint32:
			sub.fail(checkValue(id, p.numeric(id)))
		case kindVarInt:
			sub.fail(checkValue(id, p.SubscriptionIDs[len(p.SubscriptionIDs)-1]))
		}
	}
	if sub.err != nil {
		r.fail(sub.err)
		return
	}
	r.off = end
}

// numericProps is the set of properties whose value is an integer of one,
// two or four bytes, as bits indexed by identifier. Such a property is sent
// when marked or non-zero; the others (strings, binary data, subscription
// identifiers, user properties) when they hold something, marked or not.
const numericProps uint64 = 1<<PropPayloadFormat | 1<<PropMessageExpiry | 1<<PropSessionExpiry |
	1<<PropServerKeepAlive | 1<<PropRequestProblemInfo | 1<<PropWillDelay | 1<<PropRequestResponseInfo |
	1<<PropReceiveMaximum | 1<<PropTopicAliasMaximum | 1<<PropTopicAlias | 1<<PropMaximumQoS |
	1<<PropRetainAvailable | 1<<PropMaximumPacketSize | 1<<PropWildcardSubAvailable | 1<<PropSubIDAvailable |
	1<<PropSharedSubAvailable

// sending returns the set of properties that encoding p sends, as bits
// indexed by identifier. Encoding visits only these, so a packet without
// properties, the common case, costs one pass over the fields rather than
// a walk through every identifier.
func (p *Properties) sending() uint64 {
	m := p.present & numericProps
	if p.PayloadFormat != 0 {
		m |= 1 << PropPayloadFormat
	}
	if p.MessageExpiry != 0 {
		m |= 1 << PropMessageExpiry
	}
	if p.ContentType != nil {
		m |= 1 << PropContentType
	}
	if p.ResponseTopic != nil {
		m |= 1 << PropResponseTopic
	}
	if p.CorrelationData != nil {
		m |= 1 << PropCorrelationData
	}
	if len(p.SubscriptionIDs) > 0 {
		m |= 1 << PropSubscriptionID
	}
	if p.SessionExpiry != 0 {
		m |= 1 << PropSessionExpiry
	}
	if p.AssignedClientID != nil {
		m |= 1 << PropAssignedClientID
	}
	if p.ServerKeepAlive != 0 {
		m |= 1 << PropServerKeepAlive
	}
	if p.AuthMethod != nil {
		m |= 1 << PropAuthMethod
	}
	if p.AuthData != nil {
		m |= 1 << PropAuthData
	}
	if p.RequestProblemInfo != 0 {
		m |= 1 << PropRequestProblemInfo
	}
	if p.WillDelay != 0 {
		m |= 1 << PropWillDelay
	}
	if p.RequestResponseInfo != 0 {
		m |= 1 << PropRequestResponseInfo
	}
	if p.ResponseInfo != nil {
		m |= 1 << PropResponseInfo
	}
	if p.ServerReference != nil {
		m |= 1 << PropServerReference
	}
	if p.ReasonString != nil {
		m |= 1 << PropReasonString
	}
	if p.ReceiveMaximum != 0 {
		m |= 1 << PropReceiveMaximum
	}
	if p.TopicAliasMaximum != 0 {
		m |= 1 << PropTopicAliasMaximum
	}
	if p.TopicAlias != 0 {
		m |= 1 << PropTopicAlias
	}
	if p.MaximumQoS != 0 {
		m |= 1 << PropMaximumQoS
	}
	if p.RetainAvailable != 0 {
		m |= 1 << PropRetainAvailable
	}
	if len(p.User) > 0 {
		m |= 1 << PropUser
	}
	if p.MaximumPacketSize != 0 {
		m |= 1 << PropMaximumPacketSize
	}
	if p.WildcardSubAvailable != 0 {
		m |= 1 << PropWildcardSubAvailable
	}
	if p.SubIDAvailable != 0 {
		m |= 1 << PropSubIDAvailable
	}
	if p.SharedSubAvailable != 0 {
		m |= 1 << PropSharedSubAvailable
	}
	return m
}

// nextProp removes the lowest identifier from the set *m and returns it:
// walking a set this way visits identifiers in ascending order.
func nextProp(m *uint64) PropID {
	id := PropID(bits.TrailingZeros64(*m))
	*m &= *m - 1
	return id
}

// size returns the encoded length of the properties, without the length
// prefix, after checking that each is allowed in where and within limits.
func (p *Properties) size(where scope) (int, error) {
	n := 0
	for m := p.sending(); m != 0; {
		id := nextProp(&m)
		spec := propSpecs[id]
		if spec.where&where == 0 {
			return 0, errorf(ErrPropertyNotAllowed, "identifier 0x%02X", byte(id))
		}
		switch spec.kind {
		case kindByte:
			n += 2
		case kindUint16:
			n += 3
		case kindUint32:
			n += 5
		case kindVarInt:
			if where == inSubscribe && len(p.SubscriptionIDs) > 1 {
				return 0, errorf(ErrPropertyDuplicate, "SUBSCRIBE carries one subscription identifier")
			}
			for _, v := range p.SubscriptionIDs {
				if v == 0 || v > MaxVarInt {
					return 0, errorf(ErrPropertyValue, "subscription identifier %d", v)
				}
				n += 1 + VarIntSize(v)
			}
		case kindString, kindBinary:
			v := *p.bytesField(id)
			if err := checkString(v, spec.kind == kindString); err != nil {
				return 0, err
			}
			n += 3 + len(v)
		case kindPair:
			for _, u := range p.User {
				if err := checkString(u.Key, true); err != nil {
					return 0, err
				}
				if err := checkString(u.Value, true); err != nil {
					return 0, err
				}
				n += 5 + len(u.Key) + len(u.Value)
			}
		}
		if spec.kind == kindByte || spec.kind == kindUint16 || spec.kind == kindUint32 {
			if err := checkValue(id, p.numeric(id)); err != nil {
				return 0, err
			}
		}
	}
	if n > MaxVarInt {
		return 0, ErrTooLarge
	}
	return n, nil
}

// appendTo writes the properties; n is what size returned.
func (p *Properties) appendTo(dst []byte, n int) []byte {
	dst = AppendVarInt(dst, uint32(n))
	if n == 0 {
		return dst
	}
	for m := p.sending(); m != 0; {
		id := nextProp(&m)
		switch propSpecs[id].kind {
		case kindByte:
			dst = append(dst, byte(id), byte(p.numeric(id)))
		case kindUint16:
			dst = appendUint16(append(dst, byte(id)), uint16(p.numeric(id)))
		case kindUint32:
			dst = appendUint32(append(dst, byte(id)), p.numeric(id))
		case kindVarInt:
			for _, v := range p.SubscriptionIDs {
				dst = AppendVarInt(append(dst, byte(id)), v)
			}
		case kindString, kindBinary:
			dst = appendBinary(append(dst, byte(id)), *p.bytesField(id))
		case kindPair:
			for _, u := range p.User {
				dst = appendBinary(append(dst, byte(id)), u.Key)
				dst = appendBinary(dst, u.Value)
			}
		}
	}
	return dst
}
