package packet_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/heraldiot/herald/mqtt/packet"
)

// TestVarInt checks the variable byte integer at each size boundary, with
// the encodings worked out from the table in 1.5.5.
func TestVarInt(t *testing.T) {
	tests := []struct {
		v   uint32
		enc []byte
	}{
		{0, []byte{0x00}},
		{127, []byte{0x7F}},
		{128, []byte{0x80, 0x01}},
		{16_383, []byte{0xFF, 0x7F}},
		{16_384, []byte{0x80, 0x80, 0x01}},
		{2_097_151, []byte{0xFF, 0xFF, 0x7F}},
		{2_097_152, []byte{0x80, 0x80, 0x80, 0x01}},
		{packet.MaxVarInt, []byte{0xFF, 0xFF, 0xFF, 0x7F}},
	}
	for _, tc := range tests {
		if got := packet.AppendVarInt(nil, tc.v); !bytes.Equal(got, tc.enc) {
			t.Errorf("AppendVarInt(%d) = % X, want % X", tc.v, got, tc.enc)
		}
		if got := packet.VarIntSize(tc.v); got != len(tc.enc) {
			t.Errorf("VarIntSize(%d) = %d, want %d", tc.v, got, len(tc.enc))
		}
		// Decoding reads the integer and nothing after it.
		v, n, err := packet.DecodeVarInt(append(append([]byte(nil), tc.enc...), 0xAA))
		if err != nil || v != tc.v || n != len(tc.enc) {
			t.Errorf("DecodeVarInt(% X) = %d, %d, %v, want %d, %d", tc.enc, v, n, err, tc.v, len(tc.enc))
		}
	}
}

func TestDecodeVarIntErrors(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, packet.ErrShortBuffer},
		{"continued past the end", []byte{0x80}, packet.ErrShortBuffer},
		{"three continued past the end", []byte{0xFF, 0xFF, 0xFF}, packet.ErrShortBuffer},
		{"fifth byte", []byte{0xFF, 0xFF, 0xFF, 0xFF, 0x01}, packet.ErrVarIntTooLong},
		{"four continuation bytes", []byte{0x80, 0x80, 0x80, 0x80}, packet.ErrVarIntTooLong},
		{"0 in two bytes", []byte{0x80, 0x00}, packet.ErrVarIntNotMinimal},              // [MQTT-1.5.5-1]
		{"127 in two bytes", []byte{0xFF, 0x00}, packet.ErrVarIntNotMinimal},            // [MQTT-1.5.5-1]
		{"0 in four bytes", []byte{0x80, 0x80, 0x80, 0x00}, packet.ErrVarIntNotMinimal}, // [MQTT-1.5.5-1]
	}
	for _, tc := range tests {
		if _, _, err := packet.DecodeVarInt(tc.b); !errors.Is(err, tc.want) {
			t.Errorf("%s: DecodeVarInt(% X) error = %v, want %v", tc.name, tc.b, err, tc.want)
		}
	}
}

func TestValidUTF8(t *testing.T) {
	tests := []struct {
		s    string
		want bool
	}{
		{"", true},
		{"plain ASCII", true},
		{"ü", true},
		{"\U0001F600", true},        // 4-byte sequence
		{"a\uFEFFb", true},          // a BOM inside is kept, not stripped [MQTT-1.5.4-3]
		{"\x00", false},             // [MQTT-1.5.4-2]
		{"ü\x00", false},            // U+0000 after a multi-byte character [MQTT-1.5.4-2]
		{"\xFF", false},             // [MQTT-1.5.4-1]
		{"\xC3", false},             // truncated sequence
		{"\xC0\xAF", false},         // overlong '/'
		{"\xED\xBF\xBF", false},     // surrogate U+DFFF [MQTT-1.5.4-1]
		{"\xF4\x90\x80\x80", false}, // beyond U+10FFFF
	}
	for _, tc := range tests {
		if got := packet.ValidUTF8([]byte(tc.s)); got != tc.want {
			t.Errorf("ValidUTF8(%q) = %v, want %v", tc.s, got, tc.want)
		}
	}
}
