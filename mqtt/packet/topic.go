package packet

import (
	"bytes"
	"strings"
	"unicode/utf8"
)

// sharePrefix starts a shared subscription filter: $share/{ShareName}/{filter}.
const sharePrefix = "$share/"

// ValidTopicName checks a topic name for PUBLISH: valid UTF-8 without
// U+0000, no wildcards, 1 to 65,535 bytes. An empty name is allowed only
// when a v5 topic alias stands in for it, which the caller decides.
// [MQTT-4.7.3-1], [MQTT-3.3.2-2]
func ValidTopicName(name []byte) error {
	if len(name) == 0 {
		return errorf(ErrTopicName, "empty")
	}
	if len(name) > 0xFFFF {
		return ErrStringTooLong
	}
	// One pass finds wildcards, which take precedence, and notes what the
	// UTF-8 check needs: a NUL, or bytes beyond ASCII to validate.
	nul, ascii := false, true
	for _, c := range name {
		switch {
		case c == '+' || c == '#':
			return errorf(ErrTopicName, "%q contains a wildcard", name)
		case c == 0:
			nul = true
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	if nul || (!ascii && !utf8.Valid(name)) {
		return ErrInvalidUTF8
	}
	return nil
}

// ValidTopicFilter checks a subscription filter: '#' only as the whole last
// level, '+' only as a whole level, and for $share/ the share name rules.
// [MQTT-4.7.1-1], [MQTT-4.7.1-2], [MQTT-4.8.2-1], [MQTT-4.8.2-2]
func ValidTopicFilter(filter []byte) error {
	if len(filter) == 0 {
		return errorf(ErrTopicFilter, "empty")
	}
	if len(filter) > 0xFFFF {
		return ErrStringTooLong
	}
	if !ValidUTF8(filter) {
		return ErrInvalidUTF8
	}
	if share, rest, ok := SplitShared(filter); ok {
		if len(share) == 0 || bytes.ContainsAny(share, "+#") {
			return errorf(ErrSharedSubscription, "share name in %q must be non-empty without wildcards", filter)
		}
		if len(rest) == 0 {
			return errorf(ErrSharedSubscription, "%q has no topic filter after the share name", filter)
		}
		filter = rest
	} else if bytes.HasPrefix(filter, []byte("$share")) && (len(filter) == 6 || filter[6] == '/') {
		return errorf(ErrSharedSubscription, "%q has no share name", filter)
	}
	for i, c := range filter {
		switch c {
		case '#':
			// Multi-level wildcard: last character, alone in its level.
			if i != len(filter)-1 || (i > 0 && filter[i-1] != '/') {
				return errorf(ErrTopicFilter, "%q: '#' must be the last level on its own", filter)
			}
		case '+':
			if (i > 0 && filter[i-1] != '/') || (i < len(filter)-1 && filter[i+1] != '/') {
				return errorf(ErrTopicFilter, "%q: '+' must be a whole level", filter)
			}
		}
	}
	return nil
}

// SplitShared splits "$share/name/filter" into share name and filter. ok is
// false when filter is not a shared subscription. The share name ends at the
// first '/' after the prefix.
func SplitShared(filter []byte) (share, rest []byte, ok bool) {
	if !bytes.HasPrefix(filter, []byte(sharePrefix)) {
		return nil, nil, false
	}
	tail := filter[len(sharePrefix):]
	i := bytes.IndexByte(tail, '/')
	if i < 0 {
		return tail, nil, true
	}
	return tail[:i], tail[i+1:], true
}

// MatchTopic reports whether topic matches filter. A shared subscription
// matches by its inner filter. Topics beginning with '$' are not matched by
// filters beginning with a wildcard. [MQTT-4.7.2-1]
func MatchTopic(filter, topic string) bool {
	if len(filter) >= len(sharePrefix) && filter[:len(sharePrefix)] == sharePrefix {
		tail := filter[len(sharePrefix):]
		i := strings.IndexByte(tail, '/')
		if i < 0 {
			return false
		}
		filter = tail[i+1:]
	}
	if len(topic) > 0 && topic[0] == '$' && len(filter) > 0 && (filter[0] == '+' || filter[0] == '#') {
		return false
	}
	for {
		// Compare one level at a time.
		fi := strings.IndexByte(filter, '/')
		flevel := filter
		if fi >= 0 {
			flevel = filter[:fi]
		}
		if flevel == "#" {
			return true
		}
		ti := strings.IndexByte(topic, '/')
		tlevel := topic
		if ti >= 0 {
			tlevel = topic[:ti]
		}
		if flevel != "+" && flevel != tlevel {
			return false
		}
		switch {
		case fi < 0 && ti < 0:
			return true
		case ti < 0:
			// Topic ended; "a/#" also matches "a".
			return filter[fi+1:] == "#"
		case fi < 0:
			return false
		}
		filter, topic = filter[fi+1:], topic[ti+1:]
	}
}
