package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sync"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// members is one JSON object, read with the rules the protocol sets for all
// payloads and that encoding/json does not enforce by itself:
//
//   - member names match exactly: encoding/json would bind "State" to
//     "state", which a firmware parser would not, so the two would disagree
//     about the same bytes;
//   - a name occurs once per object (ErrDuplicateField);
//   - null stands for an absent member.
//
// Values stay raw until a typed getter decodes them. All objects of one
// payload share one error slot that keeps the first error; getters do
// nothing once it is set, so that a parser reads as a plain list of members
// and checks the error once at the end.
//
// The parsers read every device message the operator receives, so reading
// is built to be cheap: a payload that is valid JSON is checked once by
// json.Valid and then split by a small scanner (splitObject) into name and
// value spans that point into the payload, and the getters decode values
// straight from those spans. What they decode is exactly what
// encoding/json would, and anything that is not valid JSON, or that the
// scanner does not expect, is read by encoding/json's token stream
// (streamObject) as it always was, so that errors read the same.
//
// The spans stay valid as long as the payload: the getters copy what they
// return, so that parsed values share no memory with the payload.
type members struct {
	at     location
	list   []member // in document order; names are unique
	err    *error
	inline [16]member // backs list for objects of up to 16 members
	slot   error      // the error slot of a payload's top-level object
}

// member is one member of an object: its name with escapes resolved and its
// raw value without the whitespace around it.
type member struct {
	name, value []byte
}

// location names an object in error messages by its JSON path.
type location struct {
	parent string // path prefix of the enclosing object's members: "" or "rollout."
	name   string // the member holding the object; "" for the payload itself
	index  int    // the object's position in the array name, or -1
}

// object returns the object's own path: "", "rollout" or "artifacts[1]".
func (l location) object() string {
	if l.index >= 0 {
		return fmt.Sprintf("%s%s[%d]", l.parent, l.name, l.index)
	}
	return l.parent + l.name
}

// members returns the path prefix of the object's members: "" at the top
// level, "rollout." below it.
func (l location) members() string {
	if p := l.object(); p != "" {
		return p + "."
	}
	return ""
}

// decodePayload checks a whole payload: size, encoding, one JSON object,
// and "v" equal to Version. Checking "v" before anything else lets a later
// protocol version change any other member without old readers reporting
// misleading member errors. The caller hands the object back with release
// once it has read the members it needs.
func decodePayload(payload []byte) (*members, error) {
	if len(payload) > MaxPayloadSize {
		return nil, fmt.Errorf("%w (%d bytes)", ErrTooLarge, len(payload))
	}
	if !utf8.Valid(payload) {
		return nil, fmt.Errorf("%w: invalid UTF-8", ErrSyntax)
	}
	o := payloads.Get().(*members)
	o.at = location{index: -1}
	o.err = &o.slot
	list, err := splitPayload(payload, o.inline[:0])
	if err != nil {
		o.release()
		return nil, err
	}
	o.list = list
	var v int64
	if !o.integer("v", &v) {
		err := o.error()
		o.release()
		if err != nil {
			return nil, err
		}
		return nil, missing("v")
	}
	if v != Version {
		o.release()
		return nil, fmt.Errorf("%w %d (this reader speaks %d)", ErrVersion, v, Version)
	}
	return o, nil
}

// payloads recycles the top-level objects decodePayload returns: one is
// about 800 bytes (its inline members), and the operator parses every
// device message it receives, hundreds of thousands in a replay.
var payloads = sync.Pool{New: func() any { return new(members) }}

// release hands an object from decodePayload back for reuse, once the
// parser is done with it: neither it nor the objects nested in it may be
// used afterwards. What the getters returned stays valid, being copies.
// Clearing it drops its spans, so that it does not keep a payload alive.
func (o *members) release() {
	*o = members{}
	payloads.Put(o)
}

// splitPayload appends the members of the object that payload holds to
// list. A payload that is not exactly one valid JSON object goes to the
// token stream, whose error messages the protocol has always reported.
func splitPayload(payload []byte, list []member) ([]member, error) {
	if i := skipSpace(payload, 0); i < len(payload) && payload[i] == '{' && json.Valid(payload) {
		if list, ok := splitObject(payload[i:], list); ok {
			if d := duplicate(list); d >= 0 {
				return nil, fmt.Errorf("%w %q", ErrDuplicateField, string(list[d].name))
			}
			return list, nil
		}
	}
	return streamObject("", payload, list[:0])
}

// decodeNested appends the members of r, the raw value of a member or of an
// array element, to list. at names the object in errors.
func decodeNested(at location, r []byte, list []member) ([]member, error) {
	if len(r) == 0 || r[0] != '{' {
		return nil, invalid(at.object(), "must be an object")
	}
	list, ok := splitObject(r, list)
	if !ok {
		// Not expected: r is valid JSON. The token stream decides.
		return streamObject(at.object(), r, list[:0])
	}
	if d := duplicate(list); d >= 0 {
		return nil, fmt.Errorf("%w %q", ErrDuplicateField, at.members()+string(list[d].name))
	}
	return list, nil
}

// duplicate returns the index of the first member whose name an earlier
// member has, or -1. Small objects are compared pairwise, which costs less
// than a map; large ones, which only a hostile payload has, use a map so
// that the cost stays linear.
func duplicate(list []member) int {
	if len(list) > 16 {
		seen := make(map[string]struct{}, len(list))
		for i := range list {
			if _, dup := seen[string(list[i].name)]; dup {
				return i
			}
			seen[string(list[i].name)] = struct{}{}
		}
		return -1
	}
	for i := 1; i < len(list); i++ {
		for j := range i {
			if bytes.Equal(list[i].name, list[j].name) {
				return i
			}
		}
	}
	return -1
}

// streamObject reads data, which must hold exactly one JSON object, with
// encoding/json's token stream and appends its members to list. path names
// the object in errors ("" at the top level). It is the reference that the
// scanner matches, and reads what the scanner does not: anything that is
// not valid JSON, so that syntax errors keep their messages.
func streamObject(path string, data []byte, list []member) ([]member, error) {
	fail := func(err error) error {
		if path != "" {
			return invalid(path, "must be an object")
		}
		if err != nil {
			return fmt.Errorf("%w: %v", ErrSyntax, err)
		}
		return ErrSyntax
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return nil, fail(err)
	}
	seen := make(map[string]bool)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fail(err)
		}
		name := tok.(string) // inside an object the decoder yields a name here or fails
		if seen[name] {
			if path != "" {
				name = path + "." + name
			}
			return nil, fmt.Errorf("%w %q", ErrDuplicateField, name)
		}
		seen[name] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fail(err)
		}
		list = append(list, member{name: []byte(name), value: raw})
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, fail(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fail(fmt.Errorf("data after the object"))
	}
	return list, nil
}

func (o *members) error() error { return *o.err }

func (o *members) fail(err error) {
	if *o.err == nil {
		*o.err = err
	}
}

// path returns the path prefix of o's members for error messages.
func (o *members) path() string { return o.at.members() }

// raw returns a member's value, or nil when it is absent or null, or when
// an error was met before.
func (o *members) raw(name string) []byte {
	if *o.err != nil {
		return nil
	}
	for i := range o.list {
		if string(o.list[i].name) == name {
			if r := o.list[i].value; string(r) != "null" {
				return r
			}
			return nil
		}
	}
	return nil
}

// decode unmarshals a present member into dst with encoding/json and
// reports whether it did; want describes the expected JSON type for the
// error message. The typed getters decode the common cases themselves and
// fall back to decode for anything else.
func (o *members) decode(name string, dst any, want string) bool {
	r := o.raw(name)
	if r == nil {
		return false
	}
	if err := json.Unmarshal(r, dst); err != nil {
		o.fail(invalid(o.path()+name, "must be %s", want))
		return false
	}
	return true
}

// text reads a present member that must be a string.
func (o *members) text(name, want string) (string, bool) {
	r := o.raw(name)
	if r == nil {
		return "", false
	}
	s, ok := decodeString(r)
	if !ok {
		o.fail(invalid(o.path()+name, "must be %s", want))
		return "", false
	}
	return s, true
}

func (o *members) str(name string, dst *string) bool {
	s, ok := o.text(name, "a string")
	if ok {
		*dst = s
	}
	return ok
}

func (o *members) integer(name string, dst *int64) bool {
	r := o.raw(name)
	if r == nil {
		return false
	}
	n, ok := decodeInt64(r)
	if !ok {
		o.fail(invalid(o.path()+name, "must be an integer"))
		return false
	}
	*dst = n
	return true
}

func (o *members) strs(name string, dst *[]string) bool {
	const want = "an array of strings"
	r := o.raw(name)
	if r == nil {
		return false
	}
	if len(r) == 0 || r[0] != '[' {
		o.fail(invalid(o.path()+name, "must be %s", want))
		return false
	}
	var buf [16][]byte
	elems, ok := splitArray(r, buf[:0])
	if !ok {
		return o.decode(name, dst, want) // not expected: r is valid JSON
	}
	out := make([]string, len(elems)) // not nil for [], as encoding/json
	for i, e := range elems {
		if string(e) == "null" {
			continue // encoding/json leaves the element empty
		}
		s, ok := decodeString(e)
		if !ok {
			o.fail(invalid(o.path()+name, "must be %s", want))
			return false
		}
		out[i] = s
	}
	*dst = out
	return true
}

// time reads a date-time (see parseTime) and keeps it in UTC, the form the
// marshal helpers write, so that parsed values compare equal.
func (o *members) time(name string, dst *time.Time) bool {
	s, ok := o.text(name, "an RFC 3339 date-time string")
	if !ok {
		return false
	}
	t, ok := parseTime(s)
	if !ok {
		o.fail(invalid(o.path()+name, "%s is not an RFC 3339 date-time such as 2026-03-02T08:00:00Z", quote(s)))
		return false
	}
	*dst = t.UTC()
	return true
}

// parseTime reads a date-time in the profile of RFC 3339 that
// docs/protocol.md §5 defines:
//
//	YYYY-MM-DDTHH:MM:SS[.F]Z  or  YYYY-MM-DDTHH:MM:SS[.F]+HH:MM (or -HH:MM)
//
// with an upper-case T and Z, 1 to 9 fractional digits after a '.', hours
// 00-23, minutes and seconds 00-59 (no leap second, 60) and an offset of
// at most 23:59, on a day that exists. RFC 3339 also allows a lower-case t
// and z and a leap second; the protocol does not, because common parsers,
// time.Parse among them, refuse them, and a message that one reader takes
// and another refuses is worse than one that every reader refuses.
// time.Parse alone would not do either: it also takes a one-digit hour, a
// ',' before the fraction, more than 9 fractional digits (dropping the
// rest) and offsets such as +24:00 or +01:60, so the syntax is checked
// here, byte by byte, before it decides the calendar.
func parseTime(s string) (time.Time, bool) {
	const layout = "dddd-dd-ddTdd:dd:dd"
	if len(s) < len(layout)+1 {
		return time.Time{}, false
	}
	for i := range len(layout) {
		if c := s[i]; (layout[i] == 'd' && !isDigit(c)) || (layout[i] != 'd' && c != layout[i]) {
			return time.Time{}, false
		}
	}
	if two(s[11:]) > 23 || two(s[14:]) > 59 || two(s[17:]) > 59 {
		return time.Time{}, false
	}
	i := len(layout)
	if s[i] == '.' {
		j := i + 1
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		if n := j - i - 1; n < 1 || n > 9 {
			return time.Time{}, false
		}
		i = j
	}
	switch zone := s[i:]; {
	case zone == "Z":
	case len(zone) == 6 && (zone[0] == '+' || zone[0] == '-') && isDigit(zone[1]) && isDigit(zone[2]) &&
		zone[3] == ':' && isDigit(zone[4]) && isDigit(zone[5]) && two(zone[1:]) <= 23 && two(zone[4:]) <= 59:
	default:
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, s) // the calendar: month 01-12, a day of that month
	return t, err == nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// two returns the value of the two decimal digits that s starts with.
func two(s string) int { return int(s[0]-'0')*10 + int(s[1]-'0') }

// object reads a nested object; an absent one reads as empty.
func (o *members) object(name string) *members {
	n := &members{at: location{parent: o.path(), name: name, index: -1}, err: o.err}
	if r := o.raw(name); r != nil {
		list, err := decodeNested(n.at, r, n.inline[:0])
		o.fail(err)
		n.list = list
	}
	return n
}

// objects reads an array of objects.
func (o *members) objects(name string) []*members {
	const want = "an array of objects"
	r := o.raw(name)
	if r == nil {
		return nil
	}
	if len(r) == 0 || r[0] != '[' {
		o.fail(invalid(o.path()+name, "must be %s", want))
		return nil
	}
	var buf [16][]byte
	elems, ok := splitArray(r, buf[:0])
	if !ok { // not expected: r is valid JSON
		var items []json.RawMessage
		if !o.decode(name, &items, want) {
			return nil
		}
		elems = elems[:0]
		for _, it := range items {
			elems = append(elems, it)
		}
	}
	parent := o.path()
	out := make([]*members, len(elems))
	for i, e := range elems {
		n := &members{at: location{parent: parent, name: name, index: i}, err: o.err}
		list, err := decodeNested(n.at, e, n.inline[:0])
		if err != nil {
			o.fail(err)
			return nil
		}
		n.list = list
		out[i] = n
	}
	return out
}

// stringMap reads an object whose members are all strings, such as labels.
// When several members are not strings, the error names the first.
func (o *members) stringMap(name string) map[string]string {
	r := o.raw(name)
	if r == nil {
		return nil
	}
	at := location{parent: o.path(), name: name, index: -1}
	var buf [32]member
	list, err := decodeNested(at, r, buf[:0])
	if err != nil {
		o.fail(err)
		return nil
	}
	if len(list) == 0 {
		return nil
	}
	out := make(map[string]string, len(list))
	for _, m := range list {
		s, ok := decodeString(m.value) // null is not a string
		if !ok {
			o.fail(invalid(at.members()+string(m.name), "must be a string"))
			return nil
		}
		out[string(m.name)] = s
	}
	return out
}

// The scanner below splits JSON that json.Valid accepted. It relies on that
// for the grammar and checks only what it needs to stay in bounds and to
// tell the kinds of values apart; when something is not as it expects, it
// reports failure and the caller falls back to encoding/json.

// skipSpace returns the offset of the first byte at or after i that is not
// JSON whitespace.
func skipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// stringEnd returns the offset just past the string that starts with the
// quote at data[i], and whether the string has escapes.
func stringEnd(data []byte, i int) (end int, escaped, ok bool) {
	for j := i + 1; j <= len(data); {
		k := bytes.IndexByte(data[j:], '"')
		if k < 0 {
			return 0, false, false
		}
		q := j + k
		// The quote ends the string unless an odd number of backslashes
		// escapes it.
		n := 0
		for q-n-1 > i && data[q-n-1] == '\\' {
			n++
		}
		if n%2 == 0 {
			return q + 1, escaped || bytes.IndexByte(data[i+1:q], '\\') >= 0, true
		}
		escaped = true
		j = q + 1
	}
	return 0, false, false
}

// valueEnd returns the offset just past the value that starts at data[i].
func valueEnd(data []byte, i int) (int, bool) {
	if i >= len(data) {
		return 0, false
	}
	switch data[i] {
	case '"':
		end, _, ok := stringEnd(data, i)
		return end, ok
	case '{', '[':
		depth := 0
		for j := i; j < len(data); j++ {
			switch data[j] {
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, true
				}
			case '"':
				end, _, ok := stringEnd(data, j)
				if !ok {
					return 0, false
				}
				j = end - 1
			}
		}
		return 0, false
	default: // a number or a literal
		j := i
		for j < len(data) {
			switch data[j] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return j, j > i
			}
			j++
		}
		return j, j > i
	}
}

// splitObject appends the members of the object at the start of data to
// list; only whitespace may follow the object.
func splitObject(data []byte, list []member) ([]member, bool) {
	if len(data) == 0 || data[0] != '{' {
		return list, false
	}
	i := skipSpace(data, 1)
	if i < len(data) && data[i] == '}' {
		return list, skipSpace(data, i+1) == len(data)
	}
	for i < len(data) && data[i] == '"' {
		end, escaped, ok := stringEnd(data, i)
		if !ok {
			return list, false
		}
		name := data[i+1 : end-1]
		if escaped {
			// Names are matched with escapes resolved, as
			// encoding/json's Token returns them.
			if name, ok = appendUnescaped(nil, name); !ok {
				return list, false
			}
		}
		i = skipSpace(data, end)
		if i >= len(data) || data[i] != ':' {
			return list, false
		}
		i = skipSpace(data, i+1)
		end, ok = valueEnd(data, i)
		if !ok {
			return list, false
		}
		list = append(list, member{name: name, value: data[i:end]})
		i = skipSpace(data, end)
		if i >= len(data) {
			return list, false
		}
		switch data[i] {
		case ',':
			i = skipSpace(data, i+1)
		case '}':
			return list, skipSpace(data, i+1) == len(data)
		default:
			return list, false
		}
	}
	return list, false
}

// splitArray appends the elements of the array r to dst; nothing may follow
// the array.
func splitArray(r []byte, dst [][]byte) ([][]byte, bool) {
	if len(r) == 0 || r[0] != '[' {
		return dst, false
	}
	i := skipSpace(r, 1)
	if i < len(r) && r[i] == ']' {
		return dst, i+1 == len(r)
	}
	for i < len(r) {
		end, ok := valueEnd(r, i)
		if !ok {
			return dst, false
		}
		dst = append(dst, r[i:end])
		i = skipSpace(r, end)
		if i >= len(r) {
			return dst, false
		}
		switch r[i] {
		case ',':
			i = skipSpace(r, i+1)
		case ']':
			return dst, i+1 == len(r)
		default:
			return dst, false
		}
	}
	return dst, false
}

// decodeString decodes the raw value r as json.Unmarshal decodes it into a
// string: ok is false unless r is a JSON string. Without escapes the string
// is its bytes between the quotes: they are valid UTF-8 (the payload was
// checked) and free of control characters (it is valid JSON), the two
// things encoding/json would otherwise change or refuse.
func decodeString(r []byte) (string, bool) {
	if len(r) < 2 || r[0] != '"' || r[len(r)-1] != '"' {
		return "", false
	}
	body := r[1 : len(r)-1]
	if bytes.IndexByte(body, '\\') < 0 {
		return string(body), true
	}
	var buf [128]byte
	if b, ok := appendUnescaped(buf[:0], body); ok {
		return string(b), true
	}
	var s string // not expected: r is valid JSON
	err := json.Unmarshal(r, &s)
	return s, err == nil
}

// appendUnescaped appends the string body s, the bytes between the quotes,
// with its escapes resolved as encoding/json resolves them: an unpaired
// UTF-16 surrogate becomes U+FFFD. It reports false for what valid JSON
// cannot hold, leaving that to encoding/json.
func appendUnescaped(dst, s []byte) ([]byte, bool) {
	for r := 0; r < len(s); {
		c := s[r]
		if c == '"' || c < ' ' {
			return dst, false
		}
		if c != '\\' {
			dst = append(dst, c) // valid UTF-8, so copied as it is
			r++
			continue
		}
		if r+1 >= len(s) {
			return dst, false
		}
		switch s[r+1] {
		case '"', '\\', '/':
			dst = append(dst, s[r+1])
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			rr := hex4(s[r:])
			if rr < 0 {
				return dst, false
			}
			r += 6
			if utf16.IsSurrogate(rr) {
				if dec := utf16.DecodeRune(rr, hex4(s[r:])); dec != unicode.ReplacementChar {
					r += 6
					dst = utf8.AppendRune(dst, dec)
					continue
				}
				rr = unicode.ReplacementChar
			}
			dst = utf8.AppendRune(dst, rr)
			continue
		default:
			return dst, false
		}
		r += 2
	}
	return dst, true
}

// hex4 decodes the escape \uXXXX at the start of s, or returns -1.
func hex4(s []byte) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range s[2:6] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

// decodeInt64 decodes the raw value r as json.Unmarshal decodes it into an
// int64, which takes a number only if strconv.ParseInt takes it in base 10:
// digits with an optional minus sign, no fraction or exponent (1.0 and 1e2
// are refused), within the range of int64.
func decodeInt64(r []byte) (int64, bool) {
	digits := r
	neg := len(r) > 0 && r[0] == '-'
	if neg {
		digits = r[1:]
	}
	if len(digits) == 0 {
		return 0, false
	}
	limit := uint64(math.MaxInt64)
	if neg {
		limit++
	}
	var n uint64
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (limit-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	if neg {
		return -int64(n), true // also right for math.MinInt64
	}
	return int64(n), true
}
