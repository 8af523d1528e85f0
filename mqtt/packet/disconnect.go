package packet

// Disconnect is a DISCONNECT packet. In 3.1.1 it has no body. (3.14)
type Disconnect struct {
	ReasonCode ReasonCode // v5 only
	Properties Properties // v5 only
}

// Type returns TypeDisconnect.
func (*Disconnect) Type() Type { return TypeDisconnect }

// Unmarshal decodes a DISCONNECT body.
func (p *Disconnect) Unmarshal(v Version, flags byte, body []byte) error {
	return p.unmarshal(v, flags, reader{b: body})
}

func (p *Disconnect) unmarshal(v Version, _ byte, r reader) error {
	return unmarshalReason(&r, v, TypeDisconnect, &p.ReasonCode, &p.Properties)
}

// Append encodes the DISCONNECT in its shortest form.
func (p *Disconnect) Append(dst []byte, v Version) ([]byte, error) {
	if v != V5 {
		if p.ReasonCode != NormalDisconnection || hasProperties(&p.Properties) {
			return dst, ErrPropertiesV311
		}
		return append(dst, 0xE0, 0), nil
	}
	return appendReason(dst, TypeDisconnect, p.ReasonCode, &p.Properties)
}

// Auth is an AUTH packet of MQTT 5.0 enhanced authentication. (3.15)
type Auth struct {
	ReasonCode ReasonCode
	Properties Properties
}

// Type returns TypeAuth.
func (*Auth) Type() Type { return TypeAuth }

// Unmarshal decodes an AUTH body.
func (p *Auth) Unmarshal(v Version, flags byte, body []byte) error {
	return p.unmarshal(v, flags, reader{b: body})
}

func (p *Auth) unmarshal(v Version, _ byte, r reader) error {
	if v != V5 {
		return ErrAuthV311
	}
	return unmarshalReason(&r, v, TypeAuth, &p.ReasonCode, &p.Properties)
}

// Append encodes the AUTH.
func (p *Auth) Append(dst []byte, v Version) ([]byte, error) {
	if v != V5 {
		return dst, ErrAuthV311
	}
	return appendReason(dst, TypeAuth, p.ReasonCode, &p.Properties)
}

// unmarshalReason decodes the reason code and properties that DISCONNECT
// and AUTH share; both may be omitted when Success and empty.
func unmarshalReason(r *reader, v Version, t Type, code *ReasonCode, props *Properties) error {
	*code = Success
	props.Reset()
	if v != V5 {
		return r.done()
	}
	if r.remaining() > 0 {
		*code = ReasonCode(r.byte())
		if !code.ValidFor(t) {
			return errorf(ErrReasonCode, "%s 0x%02X", t, byte(*code))
		}
	}
	if r.remaining() > 0 {
		props.decode(r, scopeOf(t))
	}
	return r.done()
}

func appendReason(dst []byte, t Type, code ReasonCode, props *Properties) ([]byte, error) {
	propSize, err := props.size(scopeOf(t))
	if err != nil {
		return dst, err
	}
	if !code.ValidFor(t) {
		return dst, errorf(ErrReasonCode, "%s 0x%02X", t, byte(code))
	}
	if propSize == 0 && code == Success {
		return append(dst, byte(t)<<4, 0), nil
	}
	if propSize == 0 && t == TypeDisconnect {
		// "If the Remaining Length is less than 2, a value of 0 is used"
		// for DISCONNECT's property length (3.14.2.2.1), so a reason code
		// alone is the shortest form. AUTH has no such rule (3.15.2.2.1).
		return append(dst, byte(t)<<4, 1, byte(code)), nil
	}
	size := 1 + VarIntSize(uint32(propSize)) + propSize
	if dst, err = appendHeader(dst, t, 0, size); err != nil {
		return dst, err
	}
	dst = append(dst, byte(code))
	return props.appendTo(dst, propSize), nil
}
