// This file keeps the reference implementation: decode.go and the Parse
// functions as they were before the scanner, verbatim but for names, so that
// the differential tests and the benchmarks can compare the two.

package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"time"
	"unicode/utf8"
)

// oldMembers is one JSON object, read with the rules the protocol sets for all
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
type oldMembers struct {
	path string // JSON path prefix of the oldMembers: "" or "rollout."
	m    map[string]json.RawMessage
	err  *error
}

// oldDecodePayload checks a whole payload: size, encoding, one JSON object,
// and "v" equal to Version. Checking "v" before anything else lets a later
// protocol version change any other member without old readers reporting
// misleading member errors.
func oldDecodePayload(payload []byte) (*oldMembers, error) {
	if len(payload) > MaxPayloadSize {
		return nil, fmt.Errorf("%w (%d bytes)", ErrTooLarge, len(payload))
	}
	if !utf8.Valid(payload) {
		return nil, fmt.Errorf("%w: invalid UTF-8", ErrSyntax)
	}
	m, err := oldDecodeObject("", payload)
	if err != nil {
		return nil, err
	}
	o := &oldMembers{m: m, err: new(error)}
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

// oldDecodeObject reads data, which must hold exactly one JSON object, into its
// members by name. path names the object in errors ("" at the top level).
func oldDecodeObject(path string, data []byte) (map[string]json.RawMessage, error) {
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

func (o *oldMembers) error() error { return *o.err }

func (o *oldMembers) fail(err error) {
	if *o.err == nil {
		*o.err = err
	}
}

// raw returns a member's value, or nil when it is absent or null, or when
// an error was met before.
func (o *oldMembers) raw(name string) json.RawMessage {
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
func (o *oldMembers) decode(name string, dst any, want string) bool {
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

func (o *oldMembers) str(name string, dst *string) bool {
	return o.decode(name, dst, "a string")
}

func (o *oldMembers) integer(name string, dst *int64) bool {
	return o.decode(name, dst, "an integer")
}

func (o *oldMembers) strs(name string, dst *[]string) bool {
	return o.decode(name, dst, "an array of strings")
}

// time reads an RFC 3339 date-time and keeps it in UTC, the form the
// marshal helpers write, so that parsed values compare equal.
func (o *oldMembers) time(name string, dst *time.Time) bool {
	var s string
	if !o.decode(name, &s, "an RFC 3339 date-time string") {
		return false
	}
	// The profile of RFC 3339 is the protocol's, not a matter of decoding
	// JSON: the reference shares it.
	t, ok := parseTime(s)
	if !ok {
		o.fail(invalid(o.path+name, "%s is not an RFC 3339 date-time such as 2026-03-02T08:00:00Z", quote(s)))
		return false
	}
	*dst = t.UTC()
	return true
}

// object reads a nested object; an absent one reads as empty.
func (o *oldMembers) object(name string) *oldMembers {
	n := &oldMembers{path: o.path + name + ".", err: o.err}
	if r := o.raw(name); r != nil {
		m, err := oldDecodeObject(o.path+name, r)
		o.fail(err)
		n.m = m
	}
	return n
}

// objects reads an array of objects.
func (o *oldMembers) objects(name string) []*oldMembers {
	var items []json.RawMessage
	if !o.decode(name, &items, "an array of objects") {
		return nil
	}
	out := make([]*oldMembers, len(items))
	for i, r := range items {
		path := fmt.Sprintf("%s%s[%d]", o.path, name, i)
		m, err := oldDecodeObject(path, r)
		if err != nil {
			o.fail(err)
			return nil
		}
		out[i] = &oldMembers{path: path + ".", m: m, err: o.err}
	}
	return out
}

// stringMap reads an object whose members are all strings, such as labels.
func (o *oldMembers) stringMap(name string) map[string]string {
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

// oldParsePresence decodes a Presence.
func oldParsePresence(payload []byte) (Presence, error) {
	o, err := oldDecodePayload(payload)
	if err != nil {
		return Presence{}, fmt.Errorf("presence: %w", err)
	}
	p := Presence{V: Version}
	var state string
	o.str("state", &state)
	p.State = PresenceState(state)
	o.time("ts", &p.Time)
	return oldFinish("presence", p, o, p.Validate)
}

// oldParseInventory decodes an Inventory. The caller must also check that its
// DeviceID equals the device ID of the topic it came on.
func oldParseInventory(payload []byte) (Inventory, error) {
	o, err := oldDecodePayload(payload)
	if err != nil {
		return Inventory{}, fmt.Errorf("inventory: %w", err)
	}
	inv := Inventory{V: Version}
	o.str("deviceId", &inv.DeviceID)
	o.str("model", &inv.Model)
	o.str("hardwareRevision", &inv.HardwareRevision)
	o.str("firmwareVersion", &inv.FirmwareVersion)
	inv.Labels = o.stringMap("labels")
	o.time("ts", &inv.Time)
	return oldFinish("inventory", inv, o, inv.Validate)
}

// oldParseStatus decodes a Status.
func oldParseStatus(payload []byte) (Status, error) {
	o, err := oldDecodePayload(payload)
	if err != nil {
		return Status{}, fmt.Errorf("status: %w", err)
	}
	s := Status{V: Version}
	o.str("rolloutUID", &s.RolloutUID)
	o.str("rollout", &s.Rollout)
	o.str("targetVersion", &s.TargetVersion)
	var state string
	o.str("state", &state)
	s.State = State(state)
	var progress int64
	if o.integer("progress", &progress) {
		if progress < 0 || progress > 100 {
			o.fail(invalid("progress", "%d is not 0 to 100", progress))
		}
		p := int(progress)
		s.Progress = &p
	}
	o.str("reason", &s.Reason)
	o.str("message", &s.Message)
	s.Details = o.stringMap("details")
	o.time("ts", &s.Time)
	return oldFinish("status", s, o, s.Validate)
}

// oldParseNotice decodes a Notice. Members of update notices are not read from
// a cancel notice.
func oldParseNotice(payload []byte) (Notice, error) {
	o, err := oldDecodePayload(payload)
	if err != nil {
		return Notice{}, fmt.Errorf("notice: %w", err)
	}
	n := Notice{V: Version}
	var action string
	o.str("action", &action)
	n.Action = Action(action)
	r := o.object("rollout")
	r.str("namespace", &n.Rollout.Namespace)
	r.str("name", &n.Rollout.Name)
	r.str("uid", &n.Rollout.UID)
	o.time("issuedAt", &n.IssuedAt)
	if n.Action == ActionUpdate {
		o.str("targetVersion", &n.TargetVersion)
		o.strs("models", &n.Models)
		o.str("currentVersion", &n.CurrentVersion)
		for _, a := range o.objects("artifacts") {
			var art Artifact
			a.str("url", &art.URL)
			n.Artifacts = append(n.Artifacts, art)
		}
		o.str("sha256", &n.SHA256)
		o.integer("size", &n.Size)
		o.str("signature", &n.Signature)
		o.str("releaseNotesURL", &n.ReleaseNotesURL)
	}
	return oldFinish("notice", n, o, n.Validate)
}

// oldFinish returns the decoded value once its members decoded and it is
// valid, or the zero value and the first error.
func oldFinish[T any](kind string, v T, o *oldMembers, validate func() error) (T, error) {
	err := o.error()
	if err == nil {
		err = validate()
	}
	if err != nil {
		var zero T
		return zero, fmt.Errorf("%s: %w", kind, err)
	}
	return v, nil
}
