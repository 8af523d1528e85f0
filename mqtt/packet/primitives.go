package packet

import (
	"unicode/utf8"
)

// MaxVarInt is the largest value a variable byte integer can hold, and so the
// largest remaining length. (1.5.5)
const MaxVarInt = 268_435_455

// AppendVarInt appends v as a variable byte integer. v must be ≤ MaxVarInt.
func AppendVarInt(dst []byte, v uint32) []byte {
	for {
		b := byte(v & 0x7F)
		v >>= 7
		if v == 0 {
			return append(dst, b)
		}
		dst = append(dst, b|0x80)
	}
}

// VarIntSize is the number of bytes AppendVarInt writes for v.
func VarIntSize(v uint32) int {
	switch {
	case v < 1<<7:
		return 1
	case v < 1<<14:
		return 2
	case v < 1<<21:
		return 3
	}
	return 4
}

// DecodeVarInt reads a variable byte integer from b, returning the value and
// the number of bytes read.
func DecodeVarInt(b []byte) (uint32, int, error) {
	var v uint32
	for i := 0; i < 4; i++ {
		if i >= len(b) {
			return 0, 0, ErrShortBuffer
		}
		v |= uint32(b[i]&0x7F) << (7 * i)
		if b[i]&0x80 == 0 {
			if i > 0 && b[i] == 0 {
				return 0, 0, ErrVarIntNotMinimal
			}
			return v, i + 1, nil
		}
	}
	return 0, 0, ErrVarIntTooLong
}

// reader walks a packet body. Every read is bounds-checked; the first
// failure sticks in err, so decoders check it once per field group.
type reader struct {
	b   []byte
	off int
	err error
	// discardUser has property decoding check user properties but not
	// keep them (UnmarshalOptions.DiscardUserProperties).
	discardUser bool
	// unlistedSuccess has acks keep a success reason code their table
	// does not list (UnmarshalOptions.AcceptUnlistedAckSuccess).
	unlistedSuccess bool
}

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *reader) remaining() int { return len(r.b) - r.off }

func (r *reader) byte() byte {
	if r.err != nil || r.off >= len(r.b) {
		r.fail(ErrShortBuffer)
		return 0
	}
	v := r.b[r.off]
	r.off++
	return v
}

func (r *reader) uint16() uint16 {
	if r.err != nil || r.off+2 > len(r.b) {
		r.fail(ErrShortBuffer)
		return 0
	}
	v := uint16(r.b[r.off])<<8 | uint16(r.b[r.off+1])
	r.off += 2
	return v
}

func (r *reader) uint32() uint32 {
	if r.err != nil || r.off+4 > len(r.b) {
		r.fail(ErrShortBuffer)
		return 0
	}
	b := r.b[r.off : r.off+4]
	r.off += 4
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func (r *reader) varInt() uint32 {
	if r.err != nil {
		return 0
	}
	v, n, err := DecodeVarInt(r.b[r.off:])
	if err != nil {
		r.fail(err)
		return 0
	}
	r.off += n
	return v
}

// binary reads two-byte-length-prefixed data, aliasing the input. (1.5.6)
func (r *reader) binary() []byte {
	n := int(r.uint16())
	if r.err != nil {
		return nil
	}
	if r.off+n > len(r.b) {
		r.fail(ErrShortBuffer)
		return nil
	}
	v := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return v
}

// string reads a UTF-8 encoded string and validates it. (1.5.4)
func (r *reader) string() []byte {
	v := r.binary()
	if r.err == nil && !ValidUTF8(v) {
		r.fail(ErrInvalidUTF8)
	}
	return v
}

// rest returns the unread bytes, aliasing the input.
func (r *reader) rest() []byte {
	if r.err != nil {
		return nil
	}
	v := r.b[r.off:len(r.b):len(r.b)]
	r.off = len(r.b)
	return v
}

// done fails with ErrTrailingBytes when bytes are left unread.
func (r *reader) done() error {
	if r.err == nil && r.off != len(r.b) {
		r.err = ErrTrailingBytes
	}
	return r.err
}

// ValidUTF8 reports whether b is an MQTT UTF-8 encoded string: well-formed
// UTF-8 without surrogates and without U+0000. [MQTT-1.5.4-1], [MQTT-1.5.4-2]
func ValidUTF8(b []byte) bool {
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c == 0 {
			return false
		}
		if c >= utf8.RuneSelf {
			// Rare path: let the standard library check multi-byte
			// sequences; it rejects surrogates and overlong forms.
			return utf8.Valid(b[i:]) && !containsNUL(b[i:])
		}
	}
	return true
}

func containsNUL(b []byte) bool {
	for _, c := range b {
		if c == 0 {
			return true
		}
	}
	return false
}

func appendUint16(dst []byte, v uint16) []byte { return append(dst, byte(v>>8), byte(v)) }

func appendUint32(dst []byte, v uint32) []byte {
	return append(dst, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

func appendBinary(dst []byte, v []byte) []byte {
	dst = appendUint16(dst, uint16(len(v)))
	return append(dst, v...)
}

// checkString validates a field before encoding: at most 65,535 bytes and,
// for strings, valid MQTT UTF-8.
func checkString(v []byte, utf bool) error {
	if len(v) > 0xFFFF {
		return ErrStringTooLong
	}
	if utf && !ValidUTF8(v) {
		return ErrInvalidUTF8
	}
	return nil
}
