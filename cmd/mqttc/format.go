package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/heraldiot/herald/mqtt"
)

// formatPart is one piece of an -F format: literal text, a message
// parameter (%t, %p, ...) or a time field (@Y, @N, ...).
type formatPart struct {
	literal   string
	param     byte // the letter after %, or 0
	timeField byte // the letter after @, or 0
	left      bool // '-' flag: pad on the right
	zero      bool // '0' flag: pad numbers with zeros
	width     int
	precision int // maximum width, -1 for none
}

// The parameters mosquitto_sub knows, and which of them take a field
// width, a maximum width and zero padding; the others ignore them.
const (
	formatParams    = "%ACDEFIjJlmPpqRrStUxX"
	widthParams     = "ACEFIlmpRStxX"
	precisionParams = "CIRt"
	zeroParams      = "AEFlmSxX"
)

// compileFormat parses an -F format string once, reporting errors as
// mosquitto_sub does.
func compileFormat(s string) ([]formatPart, error) {
	// Never nil: an empty format still overrides -v.
	parts := []formatPart{}
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			parts = append(parts, formatPart{literal: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '%':
			p, n, err := parseParam(s[i+1:])
			if err != nil {
				return nil, err
			}
			flush()
			parts = append(parts, p)
			i += n
		case '@':
			if i+1 >= len(s) {
				return nil, usageErrorf("Incomplete format specifier.")
			}
			i++
			if s[i] == '@' {
				lit.WriteByte('@')
				continue
			}
			flush()
			parts = append(parts, formatPart{timeField: s[i]})
		case '\\':
			if i+1 >= len(s) {
				return nil, usageErrorf("Incomplete escape specifier.")
			}
			i++
			r, ok := escapes[s[i]]
			if !ok {
				return nil, usageErrorf("Invalid escape specifier '%c'.", s[i])
			}
			lit.WriteByte(r)
		default:
			lit.WriteByte(c)
		}
	}
	flush()
	return parts, nil
}

var escapes = map[byte]byte{'\\': '\\', '0': 0, 'a': '\a', 'e': 0x1b, 'n': '\n', 'r': '\r', 't': '\t', 'v': '\v'}

// parseParam reads flags, width, precision and the letter of a %
// parameter from s (which follows the %), returning how much it read.
func parseParam(s string) (formatPart, int, error) {
	p := formatPart{precision: -1}
	i := 0
	for ; i < len(s) && (s[i] == '-' || s[i] == '0'); i++ {
		p.left = p.left || s[i] == '-'
		p.zero = p.zero || s[i] == '0'
	}
	i += readInt(s[i:], &p.width)
	if i < len(s) && s[i] == '.' {
		i++
		p.precision = 0
		i += readInt(s[i:], &p.precision)
	}
	if i >= len(s) {
		return p, 0, usageErrorf("Incomplete format specifier.")
	}
	if !strings.ContainsRune(formatParams, rune(s[i])) {
		return p, 0, usageErrorf("Invalid format specifier '%c'.", s[i])
	}
	p.param = s[i]
	return p, i + 1, nil
}

// readInt reads decimal digits into n and returns how many it read.
func readInt(s string, n *int) int {
	i := 0
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		*n = min(*n*10+int(s[i]-'0'), 1<<16)
	}
	return i
}

// delivery is a received message with what the wire and the clock add
// to it.
type delivery struct {
	msg  *mqtt.Message
	wire wireMessage
	at   time.Time
}

// appendFormatted renders one message with a compiled format. Errors that
// do not stop printing (a %J payload that is not JSON) are returned as
// warnings.
func appendFormatted(dst []byte, parts []formatPart, r *delivery) ([]byte, []string) {
	var warnings []string
	for _, p := range parts {
		switch {
		case p.param != 0:
			val, warning := paramValue(p.param, r)
			if warning != "" {
				warnings = append(warnings, warning)
			}
			dst = p.appendPadded(dst, val)
		case p.timeField != 0:
			dst = appendTimeField(dst, p.timeField, r.at)
		default:
			dst = append(dst, p.literal...)
		}
	}
	return dst, warnings
}

// appendPadded applies the part's maximum width and field width to val.
func (p formatPart) appendPadded(dst []byte, val string) []byte {
	if p.precision >= 0 && strings.IndexByte(precisionParams, p.param) >= 0 && len(val) > p.precision {
		val = val[:p.precision]
	}
	if p.param == 'p' && p.width > 0 && len(val) > p.width {
		// mosquitto_sub prints exactly width bytes of the payload.
		val = val[:p.width]
	}
	pad := 0
	if strings.IndexByte(widthParams, p.param) >= 0 {
		pad = p.width - len(val)
	}
	if pad <= 0 {
		return append(dst, val...)
	}
	if p.left {
		return append(append(dst, val...), strings.Repeat(" ", pad)...)
	}
	fill := " "
	if p.zero && strings.IndexByte(zeroParams, p.param) >= 0 {
		fill = "0"
	}
	return append(append(dst, strings.Repeat(fill, pad)...), val...)
}

// paramValue is the text of one % parameter for r.
func paramValue(param byte, r *delivery) (string, string) {
	m := r.msg
	switch param {
	case '%':
		return "%", ""
	case 'A':
		// We announce Topic Alias Maximum 0, so the broker never sends one.
		return "", ""
	case 'C':
		return m.ContentType, ""
	case 'D':
		return string(m.CorrelationData), ""
	case 'E':
		if !r.wire.hasExpiry {
			return "", ""
		}
		return strconv.FormatInt(int64(m.Expiry/time.Second), 10), ""
	case 'F':
		if !r.wire.hasFormat {
			return "", ""
		}
		return strconv.Itoa(int(r.wire.format)), ""
	case 'I':
		return string(appendTimeLayout(nil, "%Y-%m-%dT%H:%M:%S%z", r.at)), ""
	case 'j':
		return string(appendJSON(nil, r, false)), ""
	case 'J':
		if !json.Valid(m.Payload) {
			return "", fmt.Sprintf("Error: Message payload is not valid JSON on topic %s.", m.Topic)
		}
		return string(appendJSON(nil, r, true)), ""
	case 'l':
		return strconv.Itoa(len(m.Payload)), ""
	case 'm':
		return strconv.Itoa(int(r.wire.mid)), ""
	case 'P':
		pairs := make([]string, len(m.UserProperties))
		for i, u := range m.UserProperties {
			pairs[i] = u.Key + ":" + u.Value
		}
		return strings.Join(pairs, " "), ""
	case 'p':
		return string(m.Payload), ""
	case 'q':
		return strconv.Itoa(int(m.QoS)), ""
	case 'R':
		return m.ResponseTopic, ""
	case 'r':
		return strconv.Itoa(b2i(m.Retain)), ""
	case 'S':
		if len(m.SubscriptionIDs) == 0 {
			return "", ""
		}
		return strconv.FormatUint(uint64(m.SubscriptionIDs[0]), 10), ""
	case 't':
		return m.Topic, ""
	case 'U':
		return fmt.Sprintf("%d.%09d", r.at.Unix(), r.at.Nanosecond()), ""
	case 'x':
		return hex.EncodeToString(m.Payload), ""
	case 'X':
		return strings.ToUpper(hex.EncodeToString(m.Payload)), ""
	}
	return "", ""
}
