package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"time"
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
type members struct {
	path string // JSON path prefix of the members: "" or "rollout."
	m    map[string]json.RawMessage
	err  *error
}

// decodePayload checks a whole payload: size, encoding, one JSON object,
// and "v" equal to Version. Checking "v" before anything else lets a later
// protocol version change any other member without old readers reporting
// misleading member errors.
func decodePayload(payload []byte) (*members, error) {
	if len(payload) > MaxPayloadSize {
		return nil, fmt.Errorf("%w (%d bytes)", ErrTooLarge, len(payload))
	}
	if !utf8.Valid(payload) {
		return nil, fmt.Errorf("%w: invalid UTF-8", ErrSyntax)
	}
	m, err := decodeObject("", payload)
	if err != nil {
		return nil, err
	}
	o := &members{m: m, err: new(error)}
	var v int64
	if !o.integer("v", &v) {
		if err := o.error(); err != nil {
			return nil, err
		}
		return nil, missing("v")
	}
	if v != Version {
		return nil, fmt.Errorf("%w %d (this reader speaks %d)", ErrVersion, v, Version)
	}
	return o, nil
}

// decodeObject reads data, which must hold exactly one JSON object, into its
// members by name. path names the object in errors ("" at the top level).
func decodeObject(path string, data []byte) (map[string]json.RawMessage, error) {
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
	m := make(map[string]json.RawMessage)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fail(err)
		}
		name := tok.(string) // inside an object the decoder yields a name here or fails
		if _, dup := m[name]; dup {
			if path != "" {
				name = path + "." + name
			}
			return nil, fmt.Errorf("%w %q", ErrDuplicateField, name)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fail(err)
		}
		m[name] = raw
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, fail(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fail(fmt.Errorf("data after the object"))
	}
	return m, nil
}

func (o *members) error() error { return *o.err }

func (o *members) fail(err error) {
	if *o.err == nil {
		*o.err = err
	}
}

// raw returns a member's value, or nil when it is absent or null, or when
// an error was met before.
func (o *members) raw(name string) json.RawMessage {
	if *o.err != nil {
		return nil
	}
	r := o.m[name]
	if string(r) == "null" {
		return nil
	}
	return r
}

// decode unmarshals a present member into dst and reports whether it did;
// want describes the expected JSON type for the error message.
func (o *members) decode(name string, dst any, want string) bool {
	r := o.raw(name)
	if r == nil {
		return false
	}
	if err := json.Unmarshal(r, dst); err != nil {
		o.fail(invalid(o.path+name, "must be %s", want))
		return false
	}
	return true
}

func (o *members) str(name string, dst *string) bool {
	return o.decode(name, dst, "a string")
}

func (o *members) integer(name string, dst *int64) bool {
	return o.decode(name, dst, "an integer")
}

func (o *members) strs(name string, dst *[]string) bool {
	return o.decode(name, dst, "an array of strings")
}

// time reads an RFC 3339 date-time and keeps it in UTC, the form the
// marshal helpers write, so that parsed values compare equal.
func (o *members) time(name string, dst *time.Time) bool {
	var s string
	if !o.decode(name, &s, "an RFC 3339 date-time string") {
		return false
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		o.fail(invalid(o.path+name, "%s is not an RFC 3339 date-time such as 2026-03-02T08:00:00Z", quote(s)))
		return false
	}
	*dst = t.UTC()
	return true
}

// object reads a nested object; an absent one reads as empty.
func (o *members) object(name string) *members {
	n := &members{path: o.path + name + ".", err: o.err}
	if r := o.raw(name); r != nil {
		m, err := decodeObject(o.path+name, r)
		o.fail(err)
		n.m = m
	}
	return n
}

// objects reads an array of objects.
func (o *members) objects(name string) []*members {
	var items []json.RawMessage
	if !o.decode(name, &items, "an array of objects") {
		return nil
	}
	out := make([]*members, len(items))
	for i, r := range items {
		path := fmt.Sprintf("%s%s[%d]", o.path, name, i)
		m, err := decodeObject(path, r)
		if err != nil {
			o.fail(err)
			return nil
		}
		out[i] = &members{path: path + ".", m: m, err: o.err}
	}
	return out
}

// stringMap reads an object whose members are all strings, such as labels.
func (o *members) stringMap(name string) map[string]string {
	n := o.object(name)
	if len(n.m) == 0 {
		return nil
	}
	out := make(map[string]string, len(n.m))
	for k := range n.m {
		var v string
		if !n.str(k, &v) {
			n.fail(invalid(n.path+k, "must be a string"))
			return nil
		}
		out[k] = v
	}
	return out
}
