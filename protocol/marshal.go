package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// The Marshal functions write a payload's canonical JSON: members in the
// order of the struct, optional ones omitted when empty, times in UTC, and
// "v" set to Version when the caller left it zero. They validate first, so
// that nothing is published that ParseX, or a device, would refuse.
// Unlike json.Marshal they leave '<', '>' and '&' unescaped, so that a
// constraint reads ">=1.2.0" and not "\u003e=1.2.0" to whoever watches the
// broker; json.Marshal on the types writes equivalent JSON without checks.

// MarshalPresence returns the canonical JSON of p.
func MarshalPresence(p *Presence) ([]byte, error) {
	c := *p
	c.V = orVersion(c.V)
	c.Time = utc(c.Time)
	return marshal("presence", &c, c.Validate)
}

// MarshalInventory returns the canonical JSON of inv.
func MarshalInventory(inv *Inventory) ([]byte, error) {
	c := *inv
	c.V = orVersion(c.V)
	c.Time = utc(c.Time)
	return marshal("inventory", &c, c.Validate)
}

// MarshalNotice returns the canonical JSON of n.
func MarshalNotice(n *Notice) ([]byte, error) {
	c := *n
	c.V = orVersion(c.V)
	c.IssuedAt = utc(c.IssuedAt)
	if c.Attempt == 1 {
		c.Attempt = 0 // the first attempt is written by leaving it out
	}
	return marshal("notice", &c, c.Validate)
}

// MarshalStatus returns the canonical JSON of s.
func MarshalStatus(s *Status) ([]byte, error) {
	c := *s
	c.V = orVersion(c.V)
	c.Time = utc(c.Time)
	if c.Attempt == 1 {
		c.Attempt = 0
	}
	return marshal("status", &c, c.Validate)
}

func marshal(kind string, v any, validate func() error) ([]byte, error) {
	if err := validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

func orVersion(v int) int {
	if v == 0 {
		return Version
	}
	return v
}

// utc converts t to UTC but keeps the zero time zero, so that omitzero
// still omits it.
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC()
}
