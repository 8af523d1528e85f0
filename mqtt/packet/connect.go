package packet

// Will is the message a server publishes when the client's connection ends
// without a normal DISCONNECT. (3.1.2.5)
type Will struct {
	QoS        byte
	Retain     bool
	Properties Properties // v5 only
	Topic      []byte
	Payload    []byte
}

// Connect is a CONNECT packet. (3.1)
type Connect struct {
	Version    Version
	CleanStart bool // "Clean Session" in 3.1.1
	KeepAlive  uint16
	Properties Properties // v5 only
	ClientID   []byte
	// Will is sent when WillFlag is set.
	WillFlag bool
	Will     Will
	// Username and Password are sent when non-nil.
	Username []byte
	Password []byte
}

// Type returns TypeConnect.
func (*Connect) Type() Type { return TypeConnect }

const (
	connectFlagReserved   = 0x01
	connectFlagCleanStart = 0x02
	connectFlagWill       = 0x04
	connectFlagWillRetain = 0x20
	connectFlagPassword   = 0x40
	connectFlagUsername   = 0x80
)

// Unmarshal decodes a CONNECT body. The protocol version comes from the
// packet itself; v is ignored.
func (p *Connect) Unmarshal(v Version, flags byte, body []byte) error {
	return p.unmarshal(v, flags, reader{b: body})
}

func (p *Connect) unmarshal(_ Version, _ byte, r reader) error {
	name := r.binary()
	level := Version(r.byte())
	flags := r.byte()
	p.KeepAlive = r.uint16()
	if r.err != nil {
		return r.err
	}
	if string(name) != "MQTT" {
		return ErrProtocolName
	}
	if level != V311 && level != V5 {
		return errorf(ErrProtocolVersion, "%d", byte(level))
	}
	p.Version = level
	if flags&connectFlagReserved != 0 {
		return ErrConnectReserved
	}
	p.CleanStart = flags&connectFlagCleanStart != 0
	p.WillFlag = flags&connectFlagWill != 0
	willQoS := flags >> 3 & 0x03
	willRetain := flags&connectFlagWillRetain != 0
	if willQoS == 3 || (!p.WillFlag && (willQoS != 0 || willRetain)) {
		return ErrWillFlags
	}
	hasUser, hasPass := flags&connectFlagUsername != 0, flags&connectFlagPassword != 0
	if level == V311 && hasPass && !hasUser {
		return ErrPasswordWithoutUsername
	}
	p.Properties.Reset()
	if level == V5 {
		p.Properties.decode(&r, inConnect)
	}
	p.ClientID = r.string()
	p.Will.Properties.Reset()
	p.Will.QoS, p.Will.Retain, p.Will.Topic, p.Will.Payload = 0, false, nil, nil
	if p.WillFlag {
		p.Will.QoS, p.Will.Retain = willQoS, willRetain
		if level == V5 {
			p.Will.Properties.decode(&r, scopeWill)
		}
		p.Will.Topic = r.string()
		p.Will.Payload = r.binary()
		if r.err == nil {
			if err := ValidTopicName(p.Will.Topic); err != nil {
				return err
			}
		}
	}
	p.Username, p.Password = nil, nil
	if hasUser {
		p.Username = r.string()
	}
	if hasPass {
		p.Password = r.binary()
	}
	return r.done()
}

// Append encodes the CONNECT for p.Version; v is ignored.
func (p *Connect) Append(dst []byte, _ Version) ([]byte, error) {
	v := p.Version
	if v != V311 && v != V5 {
		return dst, ErrProtocolVersion
	}
	flags := byte(0)
	if p.CleanStart {
		flags |= connectFlagCleanStart
	}
	size := 2 + 4 + 1 + 1 + 2 + 2 + len(p.ClientID)
	if err := checkString(p.ClientID, true); err != nil {
		return dst, err
	}
	propSize, n, err := propertiesSize(&p.Properties, v, inConnect)
	if err != nil {
		return dst, err
	}
	size += n
	var willPropSize int
	if p.WillFlag {
		if p.Will.QoS > 2 {
			return dst, ErrWillFlags
		}
		if err := ValidTopicName(p.Will.Topic); err != nil {
			return dst, err
		}
		if err := checkString(p.Will.Payload, false); err != nil {
			return dst, err
		}
		flags |= connectFlagWill | p.Will.QoS<<3
		if p.Will.Retain {
			flags |= connectFlagWillRetain
		}
		if willPropSize, n, err = propertiesSize(&p.Will.Properties, v, scopeWill); err != nil {
			return dst, err
		}
		size += n
		size += 4 + len(p.Will.Topic) + len(p.Will.Payload)
	}
	if p.Username != nil {
		if err := checkString(p.Username, true); err != nil {
			return dst, err
		}
		flags |= connectFlagUsername
		size += 2 + len(p.Username)
	}
	if p.Password != nil {
		if v == V311 && p.Username == nil {
			return dst, ErrPasswordWithoutUsername
		}
		if err := checkString(p.Password, false); err != nil {
			return dst, err
		}
		flags |= connectFlagPassword
		size += 2 + len(p.Password)
	}
	if dst, err = appendHeader(dst, TypeConnect, 0, size); err != nil {
		return dst, err
	}
	dst = append(dst, 0, 4, 'M', 'Q', 'T', 'T', byte(v), flags)
	dst = appendUint16(dst, p.KeepAlive)
	if v == V5 {
		dst = p.Properties.appendTo(dst, propSize)
	}
	dst = appendBinary(dst, p.ClientID)
	if p.WillFlag {
		if v == V5 {
			dst = p.Will.Properties.appendTo(dst, willPropSize)
		}
		dst = appendBinary(dst, p.Will.Topic)
		dst = appendBinary(dst, p.Will.Payload)
	}
	if p.Username != nil {
		dst = appendBinary(dst, p.Username)
	}
	if p.Password != nil {
		dst = appendBinary(dst, p.Password)
	}
	return dst, nil
}

// hasProperties reports whether any property would be encoded.
func hasProperties(p *Properties) bool { return p.sending() != 0 }

// propertiesSize returns the encoded length of p for a packet of protocol
// version v, both without (propSize, for appendTo) and with its length
// prefix (total, for the remaining length). Under 3.1.1 both are 0, and
// properties there are refused.
func propertiesSize(p *Properties, v Version, where scope) (propSize, total int, err error) {
	if v != V5 {
		if hasProperties(p) {
			return 0, 0, ErrPropertiesV311
		}
		return 0, 0, nil
	}
	if propSize, err = p.size(where); err != nil {
		return 0, 0, err
	}
	return propSize, VarIntSize(uint32(propSize)) + propSize, nil
}

// Connack is a CONNACK packet. (3.2) In 3.1.1, ReasonCode holds the return code.
type Connack struct {
	SessionPresent bool
	ReasonCode     ReasonCode
	Properties     Properties // v5 only
}

// Type returns TypeConnack.
func (*Connack) Type() Type { return TypeConnack }

// Unmarshal decodes a CONNACK body.
func (p *Connack) Unmarshal(v Version, flags byte, body []byte) error {
	return p.unmarshal(v, flags, reader{b: body})
}

func (p *Connack) unmarshal(v Version, _ byte, r reader) error {
	flags := r.byte()
	p.ReasonCode = ReasonCode(r.byte())
	if r.err != nil {
		return r.err
	}
	if flags&^0x01 != 0 {
		return ErrConnackFlags
	}
	p.SessionPresent = flags&0x01 != 0
	p.Properties.Reset()
	if v == V5 {
		if p.ReasonCode == V311UnacceptableProtocolVersion && r.remaining() == 0 {
			// A 3.1.1 server refuses the protocol level it lacks with
			// a 3.1.1 CONNACK, return code 0x01 [MQTT-3.1.2-2]: that is
			// a refusal, in the one code MQTT 5.0 has for it.
			p.ReasonCode = UnsupportedProtocolVersion
		}
		if !p.ReasonCode.ValidFor(TypeConnack) {
			return errorf(ErrReasonCode, "CONNACK 0x%02X", byte(p.ReasonCode))
		}
		// Some servers omit an empty property length; accept that.
		if r.remaining() > 0 {
			p.Properties.decode(&r, inConnack)
		}
	} else if p.ReasonCode > V311NotAuthorized {
		return errorf(ErrReasonCode, "CONNACK return code 0x%02X", byte(p.ReasonCode))
	}
	if r.err == nil && p.SessionPresent && p.ReasonCode != Success {
		// [MQTT-3.2.2-4] / [MQTT-3.2.2-6]
		return errorf(ErrConnackFlags, "session present with a refusal")
	}
	return r.done()
}

// Append encodes the CONNACK.
func (p *Connack) Append(dst []byte, v Version) ([]byte, error) {
	if v == V5 && !p.ReasonCode.ValidFor(TypeConnack) {
		return dst, errorf(ErrReasonCode, "CONNACK 0x%02X", byte(p.ReasonCode))
	}
	if v != V5 && p.ReasonCode > V311NotAuthorized {
		return dst, errorf(ErrReasonCode, "CONNACK return code 0x%02X", byte(p.ReasonCode))
	}
	if p.SessionPresent && p.ReasonCode != Success {
		// [MQTT-3.2.2-4] / [MQTT-3.2.2-6]
		return dst, errorf(ErrConnackFlags, "session present with a refusal")
	}
	propSize, n, err := propertiesSize(&p.Properties, v, inConnack)
	if err != nil {
		return dst, err
	}
	size := 2 + n
	if dst, err = appendHeader(dst, TypeConnack, 0, size); err != nil {
		return dst, err
	}
	flags := byte(0)
	if p.SessionPresent {
		flags = 1
	}
	dst = append(dst, flags, byte(p.ReasonCode))
	if v == V5 {
		dst = p.Properties.appendTo(dst, propSize)
	}
	return dst, nil
}
