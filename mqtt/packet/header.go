package packet

// Header is a packet's fixed header. (2.1)
type Header struct {
	Type      Type
	Flags     byte // the low four bits of the first byte
	Remaining int  // length of the variable header and payload
}

// DecodeHeader reads a fixed header from the start of b and returns it with
// its length in bytes. The remaining length is checked against maxSize (the
// whole packet's size limit; 0 means the protocol maximum) before the body is
// read, so an oversized packet is refused without buffering it. A b that
// holds only part of the header yields ErrShortBuffer.
func DecodeHeader(b []byte, v Version, maxSize uint32) (Header, int, error) {
	if len(b) < 1 {
		return Header{}, 0, ErrShortBuffer
	}
	h := Header{Type: Type(b[0] >> 4), Flags: b[0] & 0x0F}
	if err := checkHeader(h.Type, h.Flags, v); err != nil {
		return Header{}, 0, err
	}
	rem, n, err := DecodeVarInt(b[1:])
	if err != nil {
		return Header{}, 0, err
	}
	h.Remaining = int(rem)
	if maxSize > 0 && uint64(1+n)+uint64(rem) > uint64(maxSize) {
		return Header{}, 0, ErrPacketTooLarge
	}
	return h, 1 + n, nil
}

func checkHeader(t Type, flags byte, v Version) error {
	switch {
	case t == 0, t == TypeAuth && v != V5:
		return ErrReservedType
	case t == TypePublish:
		if flags>>1&0x03 == 3 {
			return ErrQoS
		}
	case flags != fixedFlags(t):
		return errorf(ErrFlags, "%s with flags 0x%X", t, flags)
	}
	return nil
}

// appendHeader writes the fixed header of a packet with the given body size.
func appendHeader(dst []byte, t Type, flags byte, remaining int) ([]byte, error) {
	if remaining > MaxVarInt {
		return dst, ErrTooLarge
	}
	return AppendVarInt(append(dst, byte(t)<<4|flags), uint32(remaining)), nil
}
