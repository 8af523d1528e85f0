package protocol

import (
	"errors"
	"strings"
	"testing"
)

func TestValidSegment(t *testing.T) {
	for _, tc := range []struct {
		s       string
		message string // part of the error; "" for a valid segment
	}{
		{"sensor-0042", ""},
		{"A", ""},
		{"0", ""},
		{"_x", ""},
		{"-x", ""},
		{"a.b", ""},
		{"a..", ""},
		{strings.Repeat("z", 64), ""},
		{"", "empty"},
		{strings.Repeat("z", 65), "65 bytes, at most 64"},
		{".", "must not start with '.'"},
		{"..", "must not start with '.'"},
		{".hidden", "must not start with '.'"},
		{"+", "'+', an MQTT wildcard"},
		{"a+", "byte 1 is '+', an MQTT wildcard"},
		{"#", "'#', an MQTT wildcard"},
		{"a/b", "byte 1 is '/', the topic level separator"},
		{"/", "the topic level separator"},
		{"a\x00", "byte 1 is the control character 0x00"},
		{"\x1b[31m", "the control character 0x1b"},
		{"a\x7f", "the control character 0x7f"},
		{"café", "byte 3 is 0xc3, not ASCII"},
		{"a b", "byte 1 is ' '"},
		{"$SYS", "byte 0 is '$'"},
		{"a:b", "byte 1 is ':'"},
	} {
		err := ValidSegment(tc.s)
		switch {
		case tc.message == "" && err != nil:
			t.Errorf("ValidSegment(%q) = %v", tc.s, err)
		case tc.message == "":
		case err == nil:
			t.Errorf("ValidSegment(%q) = nil, want %q", tc.s, tc.message)
		case !strings.Contains(err.Error(), tc.message):
			t.Errorf("ValidSegment(%q) = %v, want it to say %q", tc.s, err, tc.message)
		case !errors.Is(err, ErrInvalidSegment) || !errors.Is(err, ErrMalformed):
			t.Errorf("ValidSegment(%q) = %v, not ErrInvalidSegment", tc.s, err)
		}
	}
}

// Error messages quote the value, cut short.
func TestValidSegmentQuotesShort(t *testing.T) {
	err := ValidSegment(strings.Repeat("x", 10000))
	if err == nil || len(err.Error()) > 200 {
		t.Errorf("error is %d bytes: %v", len(err.Error()), err)
	}
}

func TestValidVersion(t *testing.T) {
	for _, tc := range []struct {
		v  string
		ok bool
	}{
		{"0.0.0", true},
		{"1.4.2", true},
		{"2.0.0-rc.1", true},
		{"1.0.0-alpha.beta.1+build.77.sha-1f2e", true},
		{"1.0.0-0A", true},
		{"9999999999999999999.0.0", true},
		{"0.0.9999999999999999999-9999999999999999999", true},
		{"18446744073709551615.0.0", false}, // 20 digits, although it fits in a uint64
		{"1.0.0-10000000000000000000", false},
		{"1.0.0-a10000000000000000000", true}, // alphanumeric: not a number
		{"1.0.0+10000000000000000000", true},  // build metadata is text
		{"1.0.0-" + strings.Repeat("a", 58), true},
		{"1.0.0-" + strings.Repeat("a", 59), false},
		{"", false},
		{"v1.4.2", false},
		{"1.4", false},
		{"1", false},
		{"01.4.2", false},
		{"1.4.02", false},
		{"1.0.0-01", false},
		{"1.0.0-", false},
		{"1.0.0+", false},
		{"1.0.0-a..b", false},
		{"1.0.0 ", false},
		{"1.0.0_beta", false},
		{"18446744073709551616.0.0", false},
		{"latest", false},
	} {
		if err := ValidVersion(tc.v); (err == nil) != tc.ok {
			t.Errorf("ValidVersion(%q) = %v, want ok=%v", tc.v, err, tc.ok)
		}
	}
}
