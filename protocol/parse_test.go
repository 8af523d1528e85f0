package protocol

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// parsers parses a payload as each kind and returns the error alone.
var parsers = map[string]func([]byte) error{
	"presence":  func(b []byte) error { _, err := ParsePresence(b); return err },
	"inventory": func(b []byte) error { _, err := ParseInventory(b); return err },
	"notice":    func(b []byte) error { _, err := ParseNotice(b); return err },
	"status":    func(b []byte) error { _, err := ParseStatus(b); return err },
}

// Valid payloads with every member set, and their required members.
var fullPayloads = []struct {
	kind, json string
	required   []string
}{
	{"presence", goldenJSON("presence online"), []string{"v", "state"}},
	{"inventory", goldenJSON("inventory"), []string{"v", "deviceId", "model", "hardwareRevision", "firmwareVersion"}},
	{"notice", goldenJSON("notice update"), []string{"v", "action", "rollout", "targetVersion", "models", "artifacts", "sha256", "size", "issuedAt"}},
	{"notice", goldenJSON("notice cancel"), []string{"v", "action", "rollout", "issuedAt"}},
	{"status", goldenJSON("status failed"), []string{"v", "rolloutUID", "rollout", "targetVersion", "state"}},
}

func goldenJSON(name string) string {
	for _, g := range goldenPayloads {
		if g.name == name {
			return g.json
		}
	}
	panic("no golden payload " + name)
}

// edit decodes a JSON object, lets f change it and encodes it again.
func edit(t *testing.T, payload string, f func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(payload), &m); err != nil {
		t.Fatal(err)
	}
	f(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func wantErr(t *testing.T, err, want error) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Errorf("unexpected error: %v", err)
	case want == nil:
	case !errors.Is(err, want):
		t.Errorf("error %v, want %v", err, want)
	case !errors.Is(err, ErrMalformed):
		t.Errorf("error %v does not wrap ErrMalformed", err)
	}
}

type parseCase struct {
	name    string
	payload []byte
	want    error
}

// TestParseCommon runs the checks every payload kind shares.
func TestParseCommon(t *testing.T) {
	for _, fp := range fullPayloads {
		parse := parsers[fp.kind]
		base := fp.json
		cases := []parseCase{
			{"valid", []byte(base), nil},
			{"unknown member", edit(t, base, func(m map[string]any) { m["futureMember"] = map[string]any{"x": []int{1}} }), nil},
			{"whitespace", []byte(" \n" + strings.Replace(base, ",", " ,\n\t", 3) + "\r\n"), nil},
			{"v 2", edit(t, base, func(m map[string]any) { m["v"] = 2 }), ErrVersion},
			{"v 0", edit(t, base, func(m map[string]any) { m["v"] = 0 }), ErrVersion},
			{"v 2 with other members", []byte(`{"v":2,"entirely":"different"}`), ErrVersion},
			{"v string", edit(t, base, func(m map[string]any) { m["v"] = "1" }), ErrInvalidField},
			{"v fraction", edit(t, base, func(m map[string]any) { m["v"] = 1.5 }), ErrInvalidField},
			{"v 1.0", []byte(strings.Replace(base, `"v":1`, `"v":1.0`, 1)), ErrInvalidField},
			{"v 1e0", []byte(strings.Replace(base, `"v":1`, `"v":1e0`, 1)), ErrInvalidField},
			{"duplicate member", []byte(`{"v":1,` + base[1:]), ErrDuplicateField},
			{"oversized", edit(t, base, func(m map[string]any) { m["pad"] = strings.Repeat("x", MaxPayloadSize) }), ErrTooLarge},
			{"empty", nil, ErrSyntax},
			{"not JSON", []byte("online"), ErrSyntax},
			{"truncated", []byte(base[:len(base)-1]), ErrSyntax},
			{"array", []byte("[" + base + "]"), ErrSyntax},
			{"string", []byte(`"{\"v\":1}"`), ErrSyntax},
			{"null", []byte("null"), ErrSyntax},
			{"two objects", []byte(base + base), ErrSyntax},
			{"trailing garbage", []byte(base + "x"), ErrSyntax},
			{"invalid UTF-8", []byte(strings.Replace(base, `"v":1`, "\"v\":1,\"x\":\"\xff\"", 1)), ErrSyntax},
			{"byte order mark", append([]byte("\xef\xbb\xbf"), base...), ErrSyntax},
		}
		// Required members: absent, null, or named in another case (which
		// encoding/json alone would accept) all count as missing.
		for _, name := range fp.required {
			cases = append(cases,
				parseCase{"without " + name, edit(t, base, func(m map[string]any) { delete(m, name) }), ErrMissingField},
				parseCase{name + " null", edit(t, base, func(m map[string]any) { m[name] = nil }), ErrMissingField},
				parseCase{name + " upper case", edit(t, base, func(m map[string]any) {
					m[strings.ToUpper(name[:1])+name[1:]] = m[name]
					delete(m, name)
				}), ErrMissingField},
			)
		}
		for _, name := range optionalMembers(t, base, fp.required) {
			cases = append(cases,
				parseCase{"without " + name, edit(t, base, func(m map[string]any) { delete(m, name) }), nil},
				parseCase{name + " null", edit(t, base, func(m map[string]any) { m[name] = nil }), nil},
			)
		}
		if strings.Contains(base, `"action":"update"`) {
			fp.kind += " update"
		} else if strings.Contains(base, `"action":"cancel"`) {
			fp.kind += " cancel"
		}
		for _, tc := range cases {
			t.Run(fp.kind+"/"+tc.name, func(t *testing.T) {
				wantErr(t, parse(tc.payload), tc.want)
			})
		}
	}
}

func optionalMembers(t *testing.T, payload string, required []string) []string {
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(payload), &m); err != nil {
		t.Fatal(err)
	}
	var opt []string
	for name := range m {
		if !slices.Contains(required, name) {
			opt = append(opt, name)
		}
	}
	return opt
}

// TestParseInvalidMembers covers member values each kind refuses.
func TestParseInvalidMembers(t *testing.T) {
	set := func(name string, v any) func(map[string]any) {
		return func(m map[string]any) { m[name] = v }
	}
	setIn := func(obj, name string, v any) func(map[string]any) {
		return func(m map[string]any) { m[obj].(map[string]any)[name] = v }
	}
	cases := []struct {
		kind, base, name string
		change           func(map[string]any)
		want             error
	}{
		{"presence", "presence online", "state unknown", set("state", "away"), ErrInvalidField},
		{"presence", "presence online", "state case", set("state", "Online"), ErrInvalidField},
		{"presence", "presence online", "state number", set("state", 1), ErrInvalidField},
		{"presence", "presence online", "ts not RFC 3339", set("ts", "2026-03-02 08:00:01"), ErrInvalidField},
		{"presence", "presence online", "ts date only", set("ts", "2026-03-02"), ErrInvalidField},
		{"presence", "presence online", "ts number", set("ts", 1772438401), ErrInvalidField},
		{"presence", "presence online", "ts with offset", set("ts", "2026-03-02T09:00:01+01:00"), nil},
		{"presence", "presence online", "ts fraction", set("ts", "2026-03-02T08:00:01.123456789Z"), nil},

		{"inventory", "inventory", "deviceId slash", set("deviceId", "a/b"), ErrInvalidSegment},
		{"inventory", "inventory", "deviceId plus", set("deviceId", "+"), ErrInvalidSegment},
		{"inventory", "inventory", "deviceId hash", set("deviceId", "#"), ErrInvalidSegment},
		{"inventory", "inventory", "deviceId 65 bytes", set("deviceId", strings.Repeat("a", 65)), ErrInvalidSegment},
		{"inventory", "inventory", "deviceId empty", set("deviceId", ""), ErrMissingField},
		{"inventory", "inventory", "model dot", set("model", ".m"), ErrInvalidSegment},
		{"inventory", "inventory", "model space", set("model", "th sensor"), ErrInvalidSegment},
		{"inventory", "inventory", "firmwareVersion v prefix", set("firmwareVersion", "v1.3.2"), ErrInvalidField},
		{"inventory", "inventory", "firmwareVersion short", set("firmwareVersion", "1.3"), ErrInvalidField},
		{"inventory", "inventory", "firmwareVersion leading zero", set("firmwareVersion", "1.03.2"), ErrInvalidField},
		{"inventory", "inventory", "firmwareVersion 65 bytes", set("firmwareVersion", "1.0.0-"+strings.Repeat("a", 59)), ErrInvalidField},
		{"inventory", "inventory", "hardwareRevision control", set("hardwareRevision", "rev\tC"), ErrInvalidField},
		{"inventory", "inventory", "hardwareRevision 65 bytes", set("hardwareRevision", strings.Repeat("r", 65)), ErrInvalidField},
		{"inventory", "inventory", "labels array", set("labels", []string{"a"}), ErrInvalidField},
		{"inventory", "inventory", "label key", set("labels", map[string]any{"bad key": "x"}), ErrInvalidField},
		{"inventory", "inventory", "label value", set("labels", map[string]any{"k": "has space"}), ErrInvalidField},
		{"inventory", "inventory", "label number", set("labels", map[string]any{"k": 1}), ErrInvalidField},
		{"inventory", "inventory", "label null", set("labels", map[string]any{"k": nil}), ErrInvalidField},
		{"inventory", "inventory", "labels empty", set("labels", map[string]any{}), nil},
		{"inventory", "inventory", "label empty value", set("labels", map[string]any{"k": ""}), nil},
		{"inventory", "inventory", "33 labels", set("labels", manyLabels(33)), ErrInvalidField},

		{"notice", "notice update", "action unknown", set("action", "reboot"), ErrInvalidField},
		{"notice", "notice update", "rollout string", set("rollout", "factory-7/th"), ErrInvalidField},
		{"notice", "notice update", "rollout without uid", func(m map[string]any) { delete(m["rollout"].(map[string]any), "uid") }, ErrMissingField},
		{"notice", "notice update", "rollout uid space", setIn("rollout", "uid", "a b"), ErrInvalidField},
		{"notice", "notice update", "rollout namespace", setIn("rollout", "namespace", "Factory_7"), ErrInvalidField},
		{"notice", "notice update", "rollout unknown member", setIn("rollout", "generation", 3), nil},
		{"notice", "notice update", "targetVersion", set("targetVersion", "latest"), ErrInvalidField},
		{"notice", "notice update", "models empty", set("models", []string{}), ErrMissingField},
		{"notice", "notice update", "models string", set("models", "th-sensor"), ErrInvalidField},
		{"notice", "notice update", "models slash", set("models", []string{"th/sensor"}), ErrInvalidSegment},
		{"notice", "notice update", "models twice", set("models", []string{"m", "m"}), ErrInvalidField},
		{"notice", "notice update", "currentVersion caret", set("currentVersion", "^1.2.0"), ErrInvalidField},
		{"notice", "notice update", "currentVersion partial", set("currentVersion", ">=1.2"), ErrInvalidField},
		{"notice", "notice update", "artifacts empty", set("artifacts", []any{}), ErrMissingField},
		{"notice", "notice update", "artifacts strings", set("artifacts", []string{"https://x.example"}), ErrInvalidField},
		{"notice", "notice update", "artifact without url", set("artifacts", []any{map[string]any{}}), ErrMissingField},
		{"notice", "notice update", "artifact ftp", set("artifacts", []any{map[string]any{"url": "ftp://x.example/a"}}), ErrInvalidField},
		{"notice", "notice update", "artifact relative", set("artifacts", []any{map[string]any{"url": "/fw/a.bin"}}), ErrInvalidField},
		{"notice", "notice update", "artifact credentials", set("artifacts", []any{map[string]any{"url": "https://u:p@x.example/a"}}), ErrInvalidField},
		{"notice", "notice update", "sha256 upper case", set("sha256", strings.ToUpper(testDigest)), ErrInvalidField},
		{"notice", "notice update", "sha256 short", set("sha256", testDigest[2:]), ErrInvalidField},
		{"notice", "notice update", "size zero", set("size", 0), ErrMissingField},
		{"notice", "notice update", "size negative", set("size", -1), ErrInvalidField},
		{"notice", "notice update", "size fraction", set("size", 1.5), ErrInvalidField},
		{"notice", "notice update", "size string", set("size", "1024"), ErrInvalidField},
		{"notice", "notice update", "size 2^53", set("size", int64(1)<<53), ErrInvalidField},
		{"notice", "notice update", "signature not base64", set("signature", "c2ln!"), ErrInvalidField},
		{"notice", "notice update", "signature url alphabet", set("signature", "c2ln_-=="), ErrInvalidField},
		{"notice", "notice update", "signature unpadded", set("signature", "c2lnbg"), ErrInvalidField},
		{"notice", "notice update", "releaseNotesURL", set("releaseNotesURL", "notes"), ErrInvalidField},
		{"notice", "notice update", "issuedAt", set("issuedAt", "today"), ErrInvalidField},
		{"notice", "notice cancel", "cancel ignores update members", set("targetVersion", "not even a version"), nil},

		{"status", "status failed", "state unknown", set("state", "exploded"), ErrInvalidField},
		{"status", "status failed", "state upper case", set("state", "FAILED"), ErrInvalidField},
		{"status", "status failed", "progress 101", set("progress", 101), ErrInvalidField},
		{"status", "status failed", "progress -1", set("progress", -1), ErrInvalidField},
		{"status", "status failed", "progress fraction", set("progress", 50.5), ErrInvalidField},
		{"status", "status failed", "progress huge", set("progress", 1e30), ErrInvalidField},
		{"status", "status failed", "progress 100", set("progress", 100), nil},
		{"status", "status failed", "reason space", set("reason", "low battery"), ErrInvalidField},
		{"status", "status failed", "reason 65 bytes", set("reason", strings.Repeat("r", 65)), ErrInvalidField},
		{"status", "status failed", "rollout without slash", set("rollout", "th-sensor-1.4.0"), ErrInvalidField},
		{"status", "status failed", "rollout three levels", set("rollout", "a/b/c"), ErrInvalidField},
		{"status", "status failed", "rolloutUID slash", set("rolloutUID", "a/b"), ErrInvalidField},
		{"status", "status failed", "targetVersion", set("targetVersion", "1"), ErrInvalidField},
		{"status", "status failed", "message 1025 bytes", set("message", strings.Repeat("m", 1025)), ErrInvalidField},
		{"status", "status failed", "details number", set("details", map[string]any{"code": 404}), ErrInvalidField},
		{"status", "status failed", "details key", set("details", map[string]any{"a b": "x"}), ErrInvalidField},
		{"status", "status failed", "details value control", set("details", map[string]any{"k": "a\x00b"}), ErrInvalidField},
	}
	for _, tc := range cases {
		t.Run(tc.kind+"/"+tc.name, func(t *testing.T) {
			wantErr(t, parsers[tc.kind](edit(t, goldenJSON(tc.base), tc.change)), tc.want)
		})
	}
}

func manyLabels(n int) map[string]any {
	m := map[string]any{}
	for i := range n {
		m["k"+strings.Repeat("x", i)] = "v"
	}
	return m
}

// Duplicates are refused in nested objects too, and errors name the path.
func TestParseDuplicateNested(t *testing.T) {
	payload := strings.Replace(goldenJSON("notice update"), `"uid":`, `"uid":"x","uid":`, 1)
	_, err := ParseNotice([]byte(payload))
	wantErr(t, err, ErrDuplicateField)
	if err == nil || !strings.Contains(err.Error(), `"rollout.uid"`) {
		t.Errorf("error %v does not name rollout.uid", err)
	}
	payload = strings.Replace(goldenJSON("inventory"), `"site":"hall-3"`, `"site":"hall-3","site":"hall-4"`, 1)
	_, err = ParseInventory([]byte(payload))
	wantErr(t, err, ErrDuplicateField)
}

// A failed parse returns the zero value, never a half-filled one.
func TestParseZeroOnError(t *testing.T) {
	s, err := ParseStatus(edit(t, goldenJSON("status failed"), func(m map[string]any) { m["state"] = "exploded" }))
	if err == nil || s.RolloutUID != "" || s.V != 0 {
		t.Errorf("got %+v, %v", s, err)
	}
}

func TestErrorMessagesNameTheMember(t *testing.T) {
	_, err := ParseNotice(edit(t, goldenJSON("notice update"), func(m map[string]any) {
		m["artifacts"] = []any{map[string]any{"url": "https://ok.example/a"}, map[string]any{"url": "ftp://x"}}
	}))
	if err == nil || !strings.Contains(err.Error(), `"artifacts[1].url"`) || !strings.HasPrefix(err.Error(), "notice: ") {
		t.Errorf("error %v", err)
	}
}

func TestIsWithdrawal(t *testing.T) {
	if !IsWithdrawal(nil) || !IsWithdrawal([]byte{}) || IsWithdrawal([]byte("{}")) || IsWithdrawal([]byte(" ")) {
		t.Error("IsWithdrawal is true exactly for zero-length payloads")
	}
}

// Parsed values do not alias the payload, which callers reuse.
func TestParseCopies(t *testing.T) {
	payload := []byte(goldenJSON("inventory"))
	inv, err := ParseInventory(payload)
	if err != nil {
		t.Fatal(err)
	}
	for i := range payload {
		payload[i] = 'X'
	}
	if inv.DeviceID != "sensor-0042" || inv.Labels["site"] != "hall-3" {
		t.Errorf("parsed value changed with the payload: %+v", inv)
	}
}

// A time whose UTC year falls outside 0001-9999 could be read but not
// written back, so it is refused.
func TestParseTimeOutOfRange(t *testing.T) {
	_, err := ParsePresence([]byte(`{"v":1,"state":"online","ts":"0001-01-01T00:00:00+01:00"}`))
	wantErr(t, err, ErrInvalidField)
}

// timeCases are date-times and whether the protocol's profile of RFC 3339
// (docs/protocol.md §5) takes them. TestParseTime runs them through the
// parsers, TestDocTimePattern through the schemas' pattern.
var timeCases = []struct {
	in string
	ok bool
}{
	{"2026-03-02T08:00:01Z", true},
	{"2026-03-02T09:00:01+01:00", true},
	{"2026-03-02T03:00:01-05:00", true},
	{"2026-03-02T08:00:01-00:00", true}, // RFC 3339's "offset unknown": the UTC instant
	{"2026-03-02T08:00:01.5Z", true},
	{"2026-03-02T08:00:01.123456789Z", true},
	{"2026-03-02T09:00:01.25+01:00", true},
	{"2026-03-02T23:59:59+23:59", true},
	{"2024-02-29T00:00:00Z", true},
	{"9999-12-31T23:59:59Z", true},
	// RFC 3339 allows these; the protocol does not.
	{"2026-03-02t08:00:01Z", false},
	{"2026-03-02T08:00:01z", false},
	{"2016-12-31T23:59:60Z", false},
	// Neither does RFC 3339, though time.Parse takes them.
	{"2026-03-02T8:00:01Z", false},
	{"2026-03-02T08:00:01,5Z", false},
	{"2026-03-02T08:00:01.1234567891Z", false},
	{"2026-03-02T08:00:01+24:00", false},
	{"2026-03-02T08:00:01+01:60", false},
	// Nor these.
	{"2026-03-02T08:00:01.Z", false},
	{"2026-03-02T08:00:01", false},
	{"2026-03-02T08:00Z", false},
	{"2026-03-02 08:00:01Z", false},
	{"2026-03-02T08:00:01+0100", false},
	{"2026-03-02T08:00:01+01", false},
	{"2026-03-02T08:00:01 Z", false},
	{"2026-03-02T08:00:01Z ", false},
	{"+2026-03-02T08:00:01Z", false},
	{"2026-3-02T08:00:01Z", false},
	{"2026-02-29T08:00:01Z", false},
	{"2026-04-31T08:00:01Z", false},
	{"2026-13-02T08:00:01Z", false},
	{"2026-00-02T08:00:01Z", false},
	{"2026-03-00T08:00:01Z", false},
	{"2026-03-02T24:00:00Z", false},
	{"2026-03-02T08:60:01Z", false},
	{"2026-03-02T08:00:01.５Z", false},
	{"", false},
}

// TestParseTime: readers take exactly the profile of RFC 3339 the
// protocol defines, in every payload, and compare instants.
func TestParseTime(t *testing.T) {
	for _, tc := range timeCases {
		payload := `{"v":1,"state":"online","ts":"` + tc.in + `"}`
		p, err := ParsePresence([]byte(payload))
		if tc.ok {
			want, perr := time.Parse(time.RFC3339Nano, tc.in)
			switch {
			case err != nil || perr != nil:
				t.Errorf("%q: %v %v", tc.in, err, perr)
			case !p.Time.Equal(want) || p.Time.Location() != time.UTC:
				t.Errorf("%q read as %v", tc.in, p.Time)
			}
			continue
		}
		wantErr(t, err, ErrInvalidField)
		_, err = ParseNotice([]byte(strings.Replace(goldenJSON("notice cancel"), "2026-03-02T09:30:00.25Z", tc.in, 1)))
		wantErr(t, err, ErrInvalidField)
	}
}

// TestParseIntegers: an integer member written with a fraction or an
// exponent is malformed, even when its value is a whole number, and "v"
// written so is an invalid member, not an unknown version.
func TestParseIntegers(t *testing.T) {
	for _, v := range []string{"1.0", "1e0", "1E0", "10e-1", "1.0e0", "0.1e1"} {
		payload := strings.Replace(goldenJSON("status downloading"), `"v":1`, `"v":`+v, 1)
		_, err := ParseStatus([]byte(payload))
		wantErr(t, err, ErrInvalidField)
		if errors.Is(err, ErrVersion) {
			t.Errorf(`"v":%s: %v is ErrVersion`, v, err)
		}
	}
	for _, p := range []string{"40.0", "4e1", "4E1", "400e-1"} {
		payload := strings.Replace(goldenJSON("status downloading"), `"progress":0`, `"progress":`+p, 1)
		_, err := ParseStatus([]byte(payload))
		wantErr(t, err, ErrInvalidField)
	}
	_, err := ParseNotice([]byte(strings.Replace(goldenJSON("notice update"), `"size":524288`, `"size":524288.0`, 1)))
	wantErr(t, err, ErrInvalidField)
}

// TestParseRejectable: from a malformed update notice, a device can read
// what it needs to report it rejected, and nothing from what it must not
// answer (docs/protocol.md §10.2, rule 1).
func TestParseRejectable(t *testing.T) {
	set := func(name string, v any) func(map[string]any) { return func(m map[string]any) { m[name] = v } }
	base := goldenJSON("notice update")
	for _, tc := range []struct {
		name    string
		payload []byte
		want    error // nil: readable
		models  bool  // models read
		issued  bool  // issuedAt read
	}{
		{"bad digest", edit(t, base, set("sha256", strings.ToUpper(testDigest))), nil, true, true},
		{"bad constraint", edit(t, base, set("currentVersion", "~1.2")), nil, true, true},
		{"no artifacts", edit(t, base, func(m map[string]any) { delete(m, "artifacts") }), nil, true, true},
		{"bad models", edit(t, base, set("models", []string{"th/sensor"})), nil, false, true},
		{"models not an array", edit(t, base, set("models", "th-sensor")), nil, false, true},
		{"bad issuedAt", edit(t, base, set("issuedAt", "2026-03-02t09:30:00z")), nil, true, false},
		{"unknown version", edit(t, base, set("v", 2)), ErrVersion, false, false},
		{"cancel", []byte(goldenJSON("notice cancel")), ErrInvalidField, false, false},
		{"no action", edit(t, base, func(m map[string]any) { delete(m, "action") }), ErrInvalidField, false, false},
		{"no uid", edit(t, base, func(m map[string]any) { delete(m["rollout"].(map[string]any), "uid") }), ErrMissingField, false, false},
		{"bad namespace", edit(t, base, func(m map[string]any) { m["rollout"].(map[string]any)["namespace"] = "Factory" }), ErrInvalidField, false, false},
		{"bad targetVersion", edit(t, base, set("targetVersion", "v1.4.0")), ErrInvalidField, false, false},
		{"not JSON", []byte("{"), ErrSyntax, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := ParseRejectable(tc.payload)
			wantErr(t, err, tc.want)
			if tc.want != nil {
				return
			}
			if n.Action != ActionUpdate || n.Rollout != testRef || n.TargetVersion != "1.4.0" {
				t.Errorf("read %+v", n)
			}
			if (n.Models != nil) != tc.models || (!n.IssuedAt.IsZero()) != tc.issued {
				t.Errorf("models %q, issuedAt %v", n.Models, n.IssuedAt)
			}
			if tc.issued && !n.IssuedAt.Equal(issuedTime) {
				t.Errorf("issuedAt %v", n.IssuedAt)
			}
		})
	}
}
