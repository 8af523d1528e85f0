package protocol

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// These tests hold docs/protocol.md to the code: its examples parse, its
// JSON Schemas name the same members and require the same ones as the
// parsers, its patterns agree with the validators, its cohort table is
// cohortVectors, and its worked example is a valid session.

const docPath = "../docs/protocol.md"

// docBlock is a fenced code block that follows a marker comment such as
// <!-- example: status -->.
type docBlock struct {
	marker, arg string // arg may hold '-': <!-- grammar: date-time -->
	line        int    // of the marker
	body        string
}

var markerRE = regexp.MustCompile(`^<!-- (example|schema|session|grammar)(?:: ([\w-]+))? -->$`)

func docBlocks(t *testing.T) []docBlock {
	t.Helper()
	doc, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	var blocks []docBlock
	var cur *docBlock
	inside := false
	var body []string
	sc := bufio.NewScanner(strings.NewReader(string(doc)))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur == nil:
			if m := markerRE.FindStringSubmatch(line); m != nil {
				cur = &docBlock{marker: m[1], arg: m[2], line: n}
			}
		case !inside && strings.HasPrefix(line, "```"):
			inside = true
		case !inside && strings.TrimSpace(line) != "":
			t.Fatalf("%s:%d: marker is not followed by a code block", docPath, cur.line)
		case inside && line == "```":
			cur.body = strings.Join(body, "\n")
			blocks = append(blocks, *cur)
			cur, inside, body = nil, false, nil
		case inside:
			body = append(body, line)
		}
	}
	if cur != nil {
		t.Fatalf("%s:%d: unterminated block", docPath, cur.line)
	}
	return blocks
}

func blocksOf(t *testing.T, marker string) []docBlock {
	var out []docBlock
	for _, b := range docBlocks(t) {
		if b.marker == marker {
			out = append(out, b)
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s has no %s blocks", docPath, marker)
	}
	return out
}

func TestDocExamples(t *testing.T) {
	seen := map[string]bool{}
	for _, b := range blocksOf(t, "example") {
		parse := parsers[b.arg]
		if parse == nil {
			t.Errorf("%s:%d: unknown example kind %q", docPath, b.line, b.arg)
			continue
		}
		seen[b.arg] = true
		if err := parse([]byte(b.body)); err != nil {
			t.Errorf("%s:%d: %s example does not parse: %v", docPath, b.line, b.arg, err)
		}
	}
	for kind := range parsers {
		if !seen[kind] {
			t.Errorf("%s has no %s example", docPath, kind)
		}
	}
}

// schema is the part of a JSON Schema the tests look at.
type schema struct {
	Schema     string                     `json:"$schema"`
	Required   []string                   `json:"required"`
	Properties map[string]json.RawMessage `json:"properties"`
	If         *struct {
		Properties struct {
			Action struct {
				Const string `json:"const"`
			} `json:"action"`
		} `json:"properties"`
	} `json:"if"`
	Then *struct {
		Required []string `json:"required"`
	} `json:"then"`
	Defs map[string]struct {
		MinLength int    `json:"minLength"`
		MaxLength int    `json:"maxLength"`
		Pattern   string `json:"pattern"`
	} `json:"$defs"`
}

func docSchemas(t *testing.T) map[string]schema {
	out := map[string]schema{}
	for _, b := range blocksOf(t, "schema") {
		var s schema
		if err := json.Unmarshal([]byte(b.body), &s); err != nil {
			t.Fatalf("%s:%d: schema is not JSON: %v", docPath, b.line, err)
		}
		if s.Schema != "https://json-schema.org/draft/2020-12/schema" {
			t.Errorf("%s:%d: $schema is %q", docPath, b.line, s.Schema)
		}
		out[b.arg] = s
	}
	return out
}

// jsonNames lists the JSON member names of a struct type.
func jsonNames(t reflect.Type) []string {
	var names []string
	for f := range t.Fields() {
		names = append(names, strings.Split(f.Tag.Get("json"), ",")[0])
	}
	sort.Strings(names)
	return names
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

var payloadTypes = map[string]reflect.Type{
	"presence":  reflect.TypeFor[Presence](),
	"inventory": reflect.TypeFor[Inventory](),
	"notice":    reflect.TypeFor[Notice](),
	"status":    reflect.TypeFor[Status](),
}

// The schemas define exactly the members of the Go types.
func TestDocSchemaMembers(t *testing.T) {
	schemas := docSchemas(t)
	for kind, typ := range payloadTypes {
		s, ok := schemas[kind]
		if !ok {
			t.Errorf("%s has no %s schema", docPath, kind)
			continue
		}
		if got, want := keys(s.Properties), jsonNames(typ); !slices.Equal(got, want) {
			t.Errorf("%s schema properties %v, Go type %v", kind, got, want)
		}
	}
	var rollout struct {
		Properties map[string]json.RawMessage `json:"properties"`
	}
	if err := json.Unmarshal(schemas["notice"].Properties["rollout"], &rollout); err != nil {
		t.Fatal(err)
	}
	if got, want := keys(rollout.Properties), jsonNames(reflect.TypeFor[RolloutRef]()); !slices.Equal(got, want) {
		t.Errorf("notice schema rollout properties %v, Go type %v", got, want)
	}
}

// For every example, removing a member the schema requires makes it
// malformed, and removing any other member does not.
func TestDocSchemaRequired(t *testing.T) {
	schemas := docSchemas(t)
	for _, b := range blocksOf(t, "example") {
		s := schemas[b.arg]
		var members map[string]any
		if err := json.Unmarshal([]byte(b.body), &members); err != nil {
			t.Fatal(err)
		}
		required := slices.Clone(s.Required)
		if s.If != nil && members["action"] == s.If.Properties.Action.Const {
			required = append(required, s.Then.Required...)
		}
		for name := range members {
			err := parsers[b.arg](edit(t, b.body, func(m map[string]any) { delete(m, name) }))
			if slices.Contains(required, name) != errors.Is(err, ErrMissingField) {
				t.Errorf("%s:%d: without %q: %v; the schema requires %v", docPath, b.line, name, err, required)
			}
		}
	}
}

// The schemas' patterns accept exactly what the validators accept.
func TestDocSchemaPatterns(t *testing.T) {
	schemas := docSchemas(t)
	defs := schemas["notice"].Defs
	samples := []string{"", "a", "0", ".a", "_a", "-a", "a.b", "a/b", "a b", "+", "#", "é", "$x",
		strings.Repeat("a", 64), strings.Repeat("a", 65), "1.4.2", "v1.4.2", "1.4", "01.4.2", "1.0.0-rc.1",
		"1.0.0-01", "1.0.0-0A", "1.0.0+b.7", "9999999999999999999.0.0", "10000000000000000000.0.0",
		"0.0.0-9999999999999999999", "0.0.0-10000000000000000000", "0.0.0-x10000000000000000000", "0.0.0+10000000000000000000", "1.0.0+", "1.0.0-a..b", "1.0.0-" + strings.Repeat("a", 58),
		"1.0.0-" + strings.Repeat("a", 59), ">=1.2.0, <2.0.0", ">=1.2.0,<2.0.0", " >= 1.2.0 , < 2.0.0 ",
		"<1.4.0 || >=1.5.0, <2.0.0", "<1.4.0||>=1.5.0", "=1.0.0", "!=1.0.0-rc.1", "1.0.0", ">=1.2",
		"^1.2.0", ">=1.2.0 <2.0.0", ">=1.2.0,", "||=1.0.0", "=>1.0.0", ">=1.0.0+b", ">=1.0.0\t",
		"6f1c2a3e-9b4d-4e8a-a1f2-3c4d5e6f7a8b"}
	for _, tc := range []struct {
		def   string
		valid func(string) bool
	}{
		{"segment", func(s string) bool { return ValidSegment(s) == nil }},
		{"token", func(s string) bool { return checkToken("x", s, true) == nil }},
		{"version", func(s string) bool { return ValidVersion(s) == nil }},
		{"constraint", func(s string) bool { _, err := ParseConstraint(s); return err == nil }},
	} {
		d, ok := defs[tc.def]
		if !ok {
			t.Errorf("notice schema has no $defs/%s", tc.def)
			continue
		}
		re, err := regexp.Compile(d.Pattern)
		if err != nil {
			t.Errorf("$defs/%s pattern: %v", tc.def, err)
			continue
		}
		for _, s := range samples {
			schemaOK := re.MatchString(s) && len(s) >= d.MinLength && (d.MaxLength == 0 || len(s) <= d.MaxLength)
			if schemaOK != tc.valid(s) {
				t.Errorf("$defs/%s: schema says %v for %q, the code %v", tc.def, schemaOK, s, tc.valid(s))
			}
		}
	}
}

var vectorRowRE = regexp.MustCompile("^\\| `([^`]+)` \\| `0x([0-9a-f]{8})` \\| ([0-9]+) \\| `([0-9]{2})` \\|$")

func TestDocCohortVectors(t *testing.T) {
	doc, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(doc), "<!-- cohort-vectors:begin -->\n")
	table, _, ok2 := strings.Cut(table, "<!-- cohort-vectors:end -->")
	if !ok || !ok2 {
		t.Fatal("cohort vector markers not found")
	}
	var rows []string
	for _, line := range strings.Split(strings.TrimSpace(table), "\n")[2:] {
		m := vectorRowRE.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("cannot read cohort vector row %q", line)
			continue
		}
		hash, _ := strconv.ParseUint(m[2], 16, 32)
		if dec, _ := strconv.ParseUint(m[3], 10, 32); dec != hash {
			t.Errorf("row %q: hex and decimal differ", line)
		}
		rows = append(rows, fmt.Sprintf("%s %08x %s", m[1], hash, m[4]))
	}
	var want []string
	for _, v := range cohortVectors {
		want = append(want, fmt.Sprintf("%s %08x %02d", v.id, v.hash, v.cohort))
	}
	if !slices.Equal(rows, want) {
		t.Errorf("document vectors\n%s\ndiffer from cohortVectors\n%s", strings.Join(rows, "\n"), strings.Join(want, "\n"))
	}
}

var sessionRE = regexp.MustCompile(`^\d\d:\d\d:\d\d (D→B|O→B) (PUBLISH|WILL) (\S+) qos=(\d) retain=([01]) (.*)$`)

// TestDocSession replays the worked example: every publish goes to a
// protocol topic, by the right party, with QoS 1, the right retain flag and
// a valid payload, and group notices reach the device's own cohort.
func TestDocSession(t *testing.T) {
	tp := mustTopics(t, "factory-7/sensors")
	sessions := blocksOf(t, "session")
	publishes := 0
	for i, line := range strings.Split(sessions[0].body, "\n") {
		if !strings.Contains(line, " PUBLISH ") && !strings.Contains(line, " WILL ") {
			continue
		}
		where := fmt.Sprintf("%s:%d: worked example line %d", docPath, sessions[0].line, i+2)
		m := sessionRE.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("%s: cannot read %q", where, line)
			continue
		}
		publishes++
		from, topic, qos, retain, payload := m[1], m[3], m[4], m[5] == "1", []byte(m[6])
		if qos != "1" {
			t.Errorf("%s: QoS %s", where, qos)
		}
		if model, cohort, isGroup, err := tp.ParseGroupNoticeTopic(topic); isGroup {
			n, perr := ParseNotice(payload)
			switch {
			case err != nil || perr != nil:
				t.Errorf("%s: %v %v", where, err, perr)
			case from != "O→B" || retain != (n.Action == ActionUpdate):
				t.Errorf("%s: notice published by %s with retain=%v", where, from, retain)
			case !slices.Contains(n.Models, model) || cohort != Cohort("sensor-0042"):
				t.Errorf("%s: notice on model %s cohort %02d", where, model, cohort)
			}
			continue
		}
		id, kind, err := tp.ParseDeviceTopic(topic)
		if err != nil {
			t.Errorf("%s: %v", where, err)
			continue
		}
		if kind == TopicNotice {
			_, err = ParseNotice(payload)
		} else {
			if from != "D→B" || !retain {
				t.Errorf("%s: %s published by %s with retain=%v", where, kind, from, retain)
			}
			switch kind {
			case TopicPresence:
				_, err = ParsePresence(payload)
			case TopicInventory:
				var inv Inventory
				inv, err = ParseInventory(payload)
				if err == nil && inv.DeviceID != id {
					err = fmt.Errorf("inventory of %s on the topic of %s", inv.DeviceID, id)
				}
			case TopicStatus:
				_, err = ParseStatus(payload)
			}
		}
		if err != nil {
			t.Errorf("%s: %v", where, err)
		}
	}
	if publishes < 10 {
		t.Errorf("the worked example has only %d publishes", publishes)
	}
}

var refRE = regexp.MustCompile(`"\$ref": "#/\$defs/([^"]+)"`)

// TestDocSchemaDefs: a definition that several schemas share is the same
// in each, and every $ref names a definition of its own schema (a schema
// must stand alone, so that a device's test suite can load one file).
func TestDocSchemaDefs(t *testing.T) {
	seen := map[string]string{} // def name → its compact JSON
	for _, b := range blocksOf(t, "schema") {
		var s struct {
			Defs map[string]json.RawMessage `json:"$defs"`
		}
		if err := json.Unmarshal([]byte(b.body), &s); err != nil {
			t.Fatalf("%s:%d: %v", docPath, b.line, err)
		}
		for _, m := range refRE.FindAllStringSubmatch(b.body, -1) {
			if _, ok := s.Defs[m[1]]; !ok {
				t.Errorf("%s:%d: %s schema refers to $defs/%s, which it does not define", docPath, b.line, b.arg, m[1])
			}
		}
		for name, raw := range s.Defs {
			var buf bytes.Buffer
			if err := json.Compact(&buf, raw); err != nil {
				t.Fatal(err)
			}
			if prev, ok := seen[name]; ok && prev != buf.String() {
				t.Errorf("%s:%d: $defs/%s of the %s schema differs from another schema's", docPath, b.line, name, b.arg)
			}
			seen[name] = buf.String()
		}
	}
	if _, ok := seen["time"]; !ok {
		t.Error("no schema defines $defs/time")
	}
}
