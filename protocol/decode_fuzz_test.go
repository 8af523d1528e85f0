package protocol

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// These tests hold the Parse functions to the reference implementation in
// decode_old_test.go: for every payload, the same value, or an error with
// the same message, the same chain of wrapped errors and the same answers
// to errors.Is for every exported error.

var sentinels = []error{
	ErrMalformed, ErrTooLarge, ErrSyntax, ErrDuplicateField, ErrVersion,
	ErrMissingField, ErrInvalidField, ErrInvalidSegment, ErrTopic,
}

// sameError reports how err and ref differ, or "" when they do not.
func sameError(err, ref error) string {
	if (err == nil) != (ref == nil) {
		return fmt.Sprintf("error %v, reference %v", err, ref)
	}
	if err == nil {
		return ""
	}
	if err.Error() != ref.Error() {
		return fmt.Sprintf("error %q, reference %q", err, ref)
	}
	for _, s := range sentinels {
		if errors.Is(err, s) != errors.Is(ref, s) {
			return fmt.Sprintf("error %q: errors.Is(%q) is %v, reference %v", err, s, errors.Is(err, s), errors.Is(ref, s))
		}
	}
	for e, r := err, ref; e != nil || r != nil; e, r = errors.Unwrap(e), errors.Unwrap(r) {
		if e == nil || r == nil || reflect.TypeOf(e) != reflect.TypeOf(r) || e.Error() != r.Error() {
			return fmt.Sprintf("error %q wraps %#v, reference %q wraps %#v", err, e, ref, r)
		}
	}
	return ""
}

// compareParse parses payload with parse and with the reference ref.
func compareParse[T any](t testing.TB, kind string, payload []byte, parse, ref func([]byte) (T, error)) {
	t.Helper()
	v, err := parse(payload)
	var diff string
	// When several members are wrong, the reference named the first it met
	// in a map's order, which is random; Validate still does for labels and
	// details. So an error may match only one of several reference runs.
	for try := 0; try < 1000; try++ {
		w, rerr := ref(payload)
		diff = sameError(err, rerr)
		if diff == "" && !reflect.DeepEqual(v, w) {
			diff = fmt.Sprintf("value %+v, reference %+v", v, w)
		}
		if diff == "" || err == nil || rerr == nil {
			break
		}
	}
	if diff != "" {
		t.Fatalf("%s %s: %s", kind, abbreviate(payload), diff)
	}
}

func abbreviate(payload []byte) string {
	if len(payload) > 400 {
		return fmt.Sprintf("%q... (%d bytes)", payload[:400], len(payload))
	}
	return fmt.Sprintf("%q", payload)
}

// compareAll parses payload as every kind.
func compareAll(t testing.TB, payload []byte) {
	t.Helper()
	compareParse(t, "presence", payload, ParsePresence, oldParsePresence)
	compareParse(t, "inventory", payload, ParseInventory, oldParseInventory)
	compareParse(t, "status", payload, ParseStatus, oldParseStatus)
	compareParse(t, "notice", payload, ParseNotice, oldParseNotice)
}

// escapeASCII writes every ASCII letter and digit of s as a \u escape.
func escapeASCII(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r < 0x80 && (r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			fmt.Fprintf(&b, `\u%04x`, r)
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

var stringRE = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

// variants derives payloads from a valid one: with whitespace everywhere,
// escaped names and values, every member doubled, and more.
func variants(payload string) []string {
	out := []string{
		payload,
		" \t\r\n" + payload + " \t\r\n",
		strings.NewReplacer("{", "{ \n", "}", "\t}", "[", "[\r", "]", " ]", ":", " :\t", ",", "\n, ").Replace(payload),
		stringRE.ReplaceAllStringFunc(payload, escapeASCII),
		strings.Replace(payload, "{", "{\"v\":1,", 1),
		strings.Replace(payload, "{", "{\"\\u0076\":1,", 1),
		strings.Replace(payload, `"v":1`, `"v":1.0`, 1),
		strings.Replace(payload, `"v":1`, `"v":1e0`, 1),
		strings.Replace(payload, `"v":1`, `"v":-0`, 1),
		payload + "x",
		payload + payload,
		payload[:len(payload)-1],
		"[" + payload + "]",
	}
	// Each name doubled, escaped or not, and each value replaced by other
	// kinds of value.
	for _, m := range regexp.MustCompile(`"(\w+)":`).FindAllStringSubmatchIndex(payload, -1) {
		name := payload[m[2]:m[3]]
		at := m[0]
		out = append(out,
			payload[:at]+`"`+name+`":null,`+payload[at:],
			payload[:at]+`"`+escapeASCII(name)+`":"x",`+payload[at:],
		)
		end := m[1]
		for _, v := range []string{`null`, `1`, `-1`, `1.5`, `1e2`, `"x"`, `"\u00e9\ud83d\ude00"`, `true`, `[]`, `{}`, `[null]`, `[{}]`, `["a",null]`, `{"a":null}`, `{"a":"b","a":"c"}`, `{"a":1,"b":2}`} {
			if rest := valueLen(payload[end:]); rest > 0 {
				out = append(out, payload[:end]+v+payload[end+rest:])
			}
		}
	}
	return out
}

// valueLen returns the length of the JSON value at the start of s; s comes
// from the golden payloads, which have no whitespace.
func valueLen(s string) int {
	if s == "" {
		return 0
	}
	switch s[0] {
	case '"':
		return len(stringRE.FindString(s))
	case '{', '[':
		depth := 0
		for i := 0; i < len(s); i++ {
			switch s[i] {
			case '"':
				i += len(stringRE.FindString(s[i:])) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return 0
	default:
		return strings.IndexAny(s, ",}]")
	}
}

// trickyPayloads are the cases the scanner must get right.
func trickyPayloads() []string {
	big := func(n int, s string) string { return strings.Repeat(s, n) }
	labels := func(n int, extra string) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, `"k%d":"v",`, i)
		}
		return `{"v":1,"deviceId":"d","model":"m","hardwareRevision":"1","firmwareVersion":"1.0.0","labels":{` + b.String() + extra + `}}`
	}
	members := func(n int, extra string) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, `"m%d":%d,`, i, i)
		}
		return `{` + b.String() + extra + `"v":1,"state":"online"}`
	}
	pad := func(n int) string {
		s := `{"v":1,"state":"online","pad":""}`
		return s[:len(s)-2] + big(n-len(s), "x") + `"}`
	}
	ps := []string{
		``, ` `, `{}`, ` {} `, `{ }`, `[]`, `1`, `1e999`, `-`, `"x"`, `null`, `true`, `{`, `}`, `{"v"}`, `{"v":}`,
		`{"v":1}`, `{"v":1.0}`, `{"v":1e0}`, `{"v":10e-1}`, `{"v":1E0}`, `{"v":-0}`, `{"v":-1}`, `{"v":01}`, `{"v":+1}`,
		`{"v":9223372036854775807}`, `{"v":9223372036854775808}`, `{"v":-9223372036854775808}`, `{"v":-9223372036854775809}`,
		`{"v":18446744073709551617}`, `{"v":"1"}`, `{"v":true}`, `{"v":null}`, `{"v":[1]}`, `{"v":{}}`, `{"v":1e999}`,
		`{"v":1,}`, `{"v" 1}`, `{"v":1 "a":2}`, `{'v':1}`, `{"v":1,"a":tru}`, `{"v":1,"a":"\'"}`, "{\"v\":1,\"a\":\"\x01\"}",
		`{"v":1} x`, `{"v":1}{}`, `{"v":1}]`, `{"v":1}}`, `{"v":1} {"v":1}`, "\xef\xbb\xbf{\"v\":1}", "{\"v\":1,\"a\":\"\xff\"}",
		`{"\u0076":1,"state":"online"}`, `{"v":1,"\u0076":1}`, `{"v":1,"st\u0061te":"online"}`, `{"v":1,"state":"on\u006cine"}`,
		`{"v":1,"state":"\ud800"}`, `{"v":1,"\ud800":1,"\udbff":2}`, `{"v":1,"\ud800\udc00":1,"𐀀":2}`, `{"v":1,"\udc00\ud800":1,"\ufffd\ufffd":2}`,
		`{"v":1,"\ud800x":1,"` + "\ufffd" + `x":2}`, `{"v":1,"a\/b":1,"a/b":2}`, `{"v":1,"a\"b":1,"a\u0022b":2}`, `{"v":1,"\u0000":1,"\u0000":2}`,
		`{"v":1,"state":"\\"}`, `{"v":1,"state":"\\\""}`, `{"v":1,"x":"}{][\"","state":"online"}`, `{"v":1,"x":"\\\\","state":"online"}`,
		`{"v":1,"state":"online","ts":"2026-03-02T08:00:01\u005a"}`, `{"v":1,"state":"\u006fnline","ts":"\u0032026-03-02T08:00:01Z"}`,
		`{"v":1,"state":"online","ts":"` + big(100, "\\u0041") + `"}`, `{"v":1,"state":"offline","x":"` + big(300, `\n\t\"\\\/\b\f\r`) + `"}`,
		`{"v":1,"state":"\u00E9\u00e9\uD83D\uDE00"}`, `{"v":1,"state":"\ud83d\u0041"}`, `{"v":1,"state":"\ud83d\\"}`, `{"v":1,"state":"\ud83d\u12"}`,
		"{\"v\":1,\"state\":\"\u2028\u2029\ufffd\"}",
		`{"v":1,"x":` + big(5000, "[") + big(5000, "]") + `}`, `{"v":1,"x":` + big(3000, `{"a":`) + `1` + big(3000, "}") + `}`,
		`{"v":1,"x":` + big(20000, "[") + big(20000, "]") + `}`, big(10000, "["), big(10000, "{"),
		`{"v":1,"x":[1,[2,{"a":"]"}],{"b":"}"}],"state":"online"}`,
		members(15, ""), members(16, ""), members(17, ""), members(100, ""), members(100, `"m99":1,`), members(3, `"m1":1,`), members(40, `"m0":1,`),
		labels(0, `"a":"b"`), labels(16, `"k1":"x"`), labels(31, `"a":"b"`), labels(32, `"a":"b"`), labels(40, `"a":"b"`), labels(40, `"k39":"b"`),
		labels(20, `"a":null`), labels(3, `"a":1,"b":2,"c":true`), labels(3, `"a":null,"b":[]`), labels(0, `"a":"b","\u0061":"c"`),
		labels(2, `"bad key":"x","bad key 2":"y"`),
		pad(MaxPayloadSize), pad(MaxPayloadSize + 1), pad(MaxPayloadSize - 1),
		`{"v":1,"state":"online","x":"` + big((MaxPayloadSize-40)/2, `\n`) + `"}`,
		`{"v":1,"action":"upd\u0061te","rollout":{"namespace":"a","name":"b","uid":"c"},"issuedAt":"2026-03-02T09:30:00Z"}`,
		`{"v":1,"action":"cancel","rollout":null,"issuedAt":"2026-03-02T09:30:00Z"}`,
		`{"v":1,"action":"cancel","rollout":{"uid":null},"issuedAt":"2026-03-02T09:30:00Z"}`,
		`{"v":1,"action":"cancel","rollout":{"uid":"a","\u0075id":"b"},"issuedAt":"2026-03-02T09:30:00Z"}`,
		`{"v":1,"action":"cancel","rollout":[],"issuedAt":"2026-03-02T09:30:00Z"}`,
		`{"v":1,"action":"cancel","rollout":1e999,"issuedAt":"2026-03-02T09:30:00Z"}`,
		`{"v":1,"rolloutUID":"u","rollout":"a/b","targetVersion":"1.0.0","state":"downloading","progress":1e2}`,
		`{"v":1,"rolloutUID":"u","rollout":"a/b","targetVersion":"1.0.0","state":"downloading","progress":100.0}`,
		`{"v":1,"rolloutUID":"u","rollout":"a/b","targetVersion":"1.0.0","state":"downloading","progress":-0}`,
		`{"v":1,"rolloutUID":"u","rollout":"a/b","targetVersion":"1.0.0","state":"downloading","progress":"50"}`,
		`{"v":1,"rolloutUID":"u","rollout":"a/b","targetVersion":"1.0.0","state":"downloading","progress":50,"details":{}}`,
		`{"v":1,"rolloutUID":"u","rollout":"a/b","targetVersion":"1.0.0","state":"failed","reason":"x","details":{"a":1,"b":"c","d":null}}`,
		`{"v":1,"rolloutUID":"u","rollout":"a/b","targetVersion":"1.0.0","state":"failed","reason":"x","details":"x"}`,
	}
	notice := goldenJSON("notice update")
	for _, r := range [][2]string{
		{`"models":["th-sensor","th-sensor-pro"]`, `"models":["a",null]`},
		{`"models":["th-sensor","th-sensor-pro"]`, `"models":[]`},
		{`"models":["th-sensor","th-sensor-pro"]`, `"models":[1]`},
		{`"models":["th-sensor","th-sensor-pro"]`, `"models":{}`},
		{`"models":["th-sensor","th-sensor-pro"]`, `"models":["\u0074h-sensor" , "th-sensor-pr\u006f" ]`},
		{`"models":["th-sensor","th-sensor-pro"]`, `"models":[` + big(40, `"m",`) + `"m"]`},
		{`"artifacts":[`, `"artifacts":[null,`},
		{`"artifacts":[`, `"artifacts":[{},`},
		{`"artifacts":[`, `"artifacts":[1,`},
		{`"artifacts":[`, `"artifacts":[{"url":"https://a.example/x","url":"https://a.example/y"},`},
		{`"artifacts":[`, `"artifacts":[{"url":null},`},
		{`"artifacts":[`, `"artifacts":[ { "url" : "https://a.example/x" } ,`},
		{`"artifacts":[{"url":"https://fw.example.com/th-sensor/1.4.0.bin"},{"url":"http://mirror.example.net/th-sensor-1.4.0.bin"}]`, `"artifacts":[]`},
		{`"artifacts":[{"url":"https://fw.example.com/th-sensor/1.4.0.bin"},{"url":"http://mirror.example.net/th-sensor-1.4.0.bin"}]`, `"artifacts":{}`},
		{`"artifacts":[{"url":"https://fw.example.com/th-sensor/1.4.0.bin"},{"url":"http://mirror.example.net/th-sensor-1.4.0.bin"}]`, `"artifacts":[` + big(20, `{"url":"https://a.example/x"},`) + `{"url":1}]`},
		{`"size":524288`, `"size":524288.0`},
		{`"size":524288`, `"size":5242880000000000000000`},
		{`"size":524288`, `"size":-524288`},
	} {
		ps = append(ps, strings.Replace(notice, r[0], r[1], 1))
	}
	return ps
}

// seedCorpus returns the payloads the tests and the protocol document use,
// their variants and the tricky cases.
func seedCorpus(tb testing.TB) [][]byte {
	var base []string
	for _, g := range goldenPayloads {
		base = append(base, g.json)
	}
	for _, fp := range fullPayloads {
		base = append(base, fp.json)
	}
	base = append(base, docPayloads(tb)...)
	var out [][]byte
	for _, p := range base {
		for _, v := range variants(p) {
			out = append(out, []byte(v))
		}
	}
	for _, p := range trickyPayloads() {
		out = append(out, []byte(p))
	}
	return out
}

var docExampleRE = regexp.MustCompile("(?s)<!-- example: \\w+ -->\\s*```json\n(.*?)\n```")

// docPayloads returns the examples of docs/protocol.md and the payloads of
// its worked example.
func docPayloads(tb testing.TB) []string {
	doc, err := os.ReadFile(docPath)
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, m := range docExampleRE.FindAllStringSubmatch(string(doc), -1) {
		out = append(out, m[1])
	}
	for line := range strings.SplitSeq(string(doc), "\n") {
		if m := sessionRE.FindStringSubmatch(line); m != nil && strings.HasPrefix(m[6], "{") {
			out = append(out, m[6])
		}
	}
	if len(out) < 5 {
		tb.Fatalf("only %d payloads in %s", len(out), docPath)
	}
	return out
}

func TestParseMatchesReference(t *testing.T) {
	corpus := seedCorpus(t)
	for _, p := range corpus {
		compareAll(t, p)
	}
	t.Logf("%d payloads", len(corpus))
}

// FuzzParseReference compares the parsers with the reference on any bytes.
func FuzzParseReference(f *testing.F) {
	for _, p := range seedCorpus(f) {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		compareAll(t, payload)
	})
}

// FuzzParseReferenceMember puts one fuzzed member, as raw JSON, into a
// valid payload, at the top level or in a nested object, so that the fuzzer
// spends its time on payloads that are valid JSON and reach the scanner.
func FuzzParseReferenceMember(f *testing.F) {
	var bases []string
	for _, g := range goldenPayloads {
		bases = append(bases, g.json)
	}
	for i, p := range trickyPayloads() {
		f.Add(uint16(i), `"state"`, string(p))
	}
	for i, v := range []string{`null`, `1`, `-0`, `1.0`, `1e2`, `"x"`, `"\u0041\ud800"`, `true`, `[]`, `{}`, `[{"url":"https://a.example/"}]`, `{"a":"b"}`, `{"a":null}`, `["a",null]`} {
		for _, name := range []string{`"v"`, `"\u0076"`, `"state"`, `"labels"`, `"details"`, `"progress"`, `"size"`, `"models"`, `"artifacts"`, `"rollout"`, `"uid"`, `"ts"`, `"site"`} {
			f.Add(uint16(i*7), name, v)
		}
	}
	f.Fuzz(func(t *testing.T, where uint16, name, value string) {
		base := bases[int(where)%len(bases)]
		// Insert after the n-th '{' of the base, or at its end.
		opens := strings.Count(base, "{")
		n := int(where/uint16(len(bases))) % (opens + 1)
		member := name + ":" + value
		var payload string
		if n == opens {
			payload = base[:len(base)-1] + "," + member + "}"
		} else {
			at := 0
			for range n + 1 {
				at += strings.IndexByte(base[at:], '{') + 1
			}
			payload = base[:at] + member + "," + base[at:]
		}
		compareAll(t, []byte(payload))
	})
}
