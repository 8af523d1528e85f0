package packet_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/heraldiot/herald/mqtt/packet"
)

func TestValidTopicName(t *testing.T) {
	tests := []struct {
		name string
		want error // nil: valid
	}{
		{"a/b", nil},
		{"/", nil},           // two empty levels are still a name (4.7.1.1)
		{"a//b", nil},        // empty level
		{" ", nil},           // spaces are allowed [MQTT-4.7.3-1]
		{"$SYS/broker", nil}, // '$' topics are names like any other to a publisher
		{"héllo/wörld", nil}, // multi-byte UTF-8
		{strings.Repeat("a", 0xFFFF), nil},
		{"", packet.ErrTopicName},    // at least one character [MQTT-4.7.3-1]
		{"a/+", packet.ErrTopicName}, // [MQTT-3.3.2-2]
		{"#", packet.ErrTopicName},   // [MQTT-3.3.2-2]
		{"a+b", packet.ErrTopicName}, // a wildcard anywhere, not only as a level
		{"a#", packet.ErrTopicName},
		{"a\x00", packet.ErrInvalidUTF8},                        // [MQTT-4.7.3-2]
		{"\xFF", packet.ErrInvalidUTF8},                         // [MQTT-1.5.4-1]
		{"a\xED\xA0\x80", packet.ErrInvalidUTF8},                // surrogate U+D800 [MQTT-1.5.4-1]
		{"\xC0\x80", packet.ErrInvalidUTF8},                     // overlong U+0000 [MQTT-1.5.4-1]
		{strings.Repeat("a", 0x10000), packet.ErrStringTooLong}, // [MQTT-4.7.3-3]
	}
	for _, tc := range tests {
		err := packet.ValidTopicName([]byte(tc.name))
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("ValidTopicName(%.20q) = %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestValidTopicFilter(t *testing.T) {
	tests := []struct {
		filter string
		want   error // nil: valid
	}{
		{"a/b", nil},
		{"#", nil},     // [MQTT-4.7.1-1]
		{"+", nil},     // [MQTT-4.7.1-2]
		{"a/#", nil},   // '#' as the last level
		{"a/+/b", nil}, // '+' as a whole level
		{"+/+", nil},
		{"/+", nil}, // empty first level
		{"+/#", nil},
		{"a//b", nil}, // empty level
		{"a/b/", nil}, // empty last level
		{"$SYS/#", nil},
		{"$sharex/a", nil}, // only "$share/" starts a shared subscription
		{"$share/g/a/b", nil},
		{"$share/g/#", nil},
		{"$share/g/+/x", nil},
		{"$share/g//", nil},              // the filter after the share name may itself have empty levels
		{"", packet.ErrTopicFilter},      // at least one character [MQTT-4.7.3-1]
		{"a#", packet.ErrTopicFilter},    // '#' alone in its level [MQTT-4.7.1-1]
		{"a/#/b", packet.ErrTopicFilter}, // '#' last [MQTT-4.7.1-1]
		{"#/a", packet.ErrTopicFilter},
		{"a/b#", packet.ErrTopicFilter},
		{"##", packet.ErrTopicFilter},
		{"a+", packet.ErrTopicFilter}, // '+' alone in its level [MQTT-4.7.1-2]
		{"a/+b", packet.ErrTopicFilter},
		{"+a/b", packet.ErrTopicFilter},
		{"++", packet.ErrTopicFilter},
		{"$share//a", packet.ErrSharedSubscription},   // empty share name [MQTT-4.8.2-1]
		{"$share/g", packet.ErrSharedSubscription},    // no '/' and filter after the name [MQTT-4.8.2-2]
		{"$share/g/", packet.ErrSharedSubscription},   // '/' but no filter after it [MQTT-4.8.2-2]
		{"$share/g+/a", packet.ErrSharedSubscription}, // wildcard in the share name [MQTT-4.8.2-2]
		{"$share/g#/a", packet.ErrSharedSubscription},
		{"$share/g/a#", packet.ErrTopicFilter}, // the inner filter follows the ordinary rules
		{"$share/g/a/#/b", packet.ErrTopicFilter},
		{"a\x00", packet.ErrInvalidUTF8},  // [MQTT-4.7.3-2]
		{"\xFE/#", packet.ErrInvalidUTF8}, // [MQTT-1.5.4-1]
		{strings.Repeat("a", 0x10000), packet.ErrStringTooLong},
	}
	for _, tc := range tests {
		err := packet.ValidTopicFilter([]byte(tc.filter))
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("ValidTopicFilter(%.20q) = %v, want %v", tc.filter, err, tc.want)
		}
		if err != nil && !errors.Is(err, packet.ErrInvalidUTF8) && !errors.Is(err, packet.ErrStringTooLong) &&
			packet.ReasonOf(err) != packet.TopicFilterInvalid {
			t.Errorf("ValidTopicFilter(%.20q): reason 0x%02X, want Topic Filter invalid", tc.filter, byte(packet.ReasonOf(err)))
		}
	}
}

func TestSplitShared(t *testing.T) {
	tests := []struct {
		filter      string
		share, rest string
		ok          bool
	}{
		{"$share/g/a/b", "g", "a/b", true},
		{"$share/group/#", "group", "#", true},
		{"$share/g/", "g", "", true},
		{"$share/g", "g", "", true}, // shared, but without a filter: ValidTopicFilter refuses it
		{"$share//a", "", "a", true},
		{"a/b", "", "", false},
		{"$share", "", "", false},
		{"$shared/g/a", "", "", false},
		{"$SHARE/g/a", "", "", false}, // topic levels are case-sensitive (4.7.3)
	}
	for _, tc := range tests {
		share, rest, ok := packet.SplitShared([]byte(tc.filter))
		if string(share) != tc.share || string(rest) != tc.rest || ok != tc.ok {
			t.Errorf("SplitShared(%q) = %q, %q, %v, want %q, %q, %v",
				tc.filter, share, rest, ok, tc.share, tc.rest, tc.ok)
		}
	}
}

func TestMatchTopic(t *testing.T) {
	tests := []struct {
		filter, topic string
		want          bool
	}{
		{"a/b", "a/b", true},
		{"a/b", "a/c", false},
		{"a/b", "a/b/c", false},
		{"a/b/c", "a/b", false},
		{"A/b", "a/b", false}, // case-sensitive (4.7.3)
		{"a", "a/", false},
		{"a/", "a", false},
		{"a/", "a/", true},
		{"/", "/", true},
		{"+", "a", true},
		{"+", "a/b", false},
		{"+", "/a", false},  // "+" matches one level, and "/a" has two
		{"+/+", "/a", true}, // the first level is empty (4.7.1.3)
		{"/+", "/a", true},
		{"a/+", "a/b", true},
		{"a/+", "a/b/c", false},
		{"a/+", "a", false},     // "sport/tennis/+" does not match "sport/tennis" (4.7.1.3)
		{"a/+", "a/", true},     // but matches an empty last level
		{"a/+/b", "a//b", true}, // '+' matches an empty level
		{"a/+/b", "a/b", false},
		{"a//b", "a//b", true},
		{"#", "a", true},
		{"#", "a/b/c", true},
		{"#", "/", true},
		{"a/#", "a", true}, // '#' also matches the parent level [MQTT-4.7.1-2]
		{"a/#", "a/b/c", true},
		{"a/#", "ab", false},
		{"a/#", "b/a", false},
		{"a/b/#", "a", false},
		{"a/+/#", "a/b", true},
		{"+/#", "a", true},
		{"#", "$SYS/x", false},   // wildcards never match a leading '$' level [MQTT-4.7.2-1]
		{"+/x", "$SYS/x", false}, // [MQTT-4.7.2-1]
		{"+", "$SYS", false},     // [MQTT-4.7.2-1]
		{"$SYS/#", "$SYS/x", true},
		{"$SYS/+", "$SYS/x", true},
		{"$SYS/#", "$SYS", true},
		{"a/$x", "a/$x", true}, // '$' only matters as the topic's first character
		{"+/$x", "a/$x", true},
		{"$share/g/a/+", "a/b", true}, // shared subscriptions match by their filter (4.8.2)
		{"$share/g/a/+", "b/b", false},
		{"$share/g/#", "x/y", true},
		{"$share/g/#", "$SYS/x", false},
		{"$share/g", "g", false}, // no filter: matches nothing
	}
	for _, tc := range tests {
		if got := packet.MatchTopic(tc.filter, tc.topic); got != tc.want {
			t.Errorf("MatchTopic(%q, %q) = %v, want %v", tc.filter, tc.topic, got, tc.want)
		}
	}
}

// TestMatchTopicLiteral checks that a filter without wildcards matches
// exactly the equal topic, level by level and byte by byte.
func TestMatchTopicLiteral(t *testing.T) {
	names := []string{"a", "a/b", "a/b/", "/a", "a//b", "ab", "a/bc", "$SYS/a", "/"}
	for _, f := range names {
		for _, topic := range names {
			if got, want := packet.MatchTopic(f, topic), f == topic; got != want {
				t.Errorf("MatchTopic(%q, %q) = %v, want %v", f, topic, got, want)
			}
		}
	}
}
