package protocol

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// seedPayloads adds the golden payloads and a few near misses.
func seedPayloads(f *testing.F) {
	for _, g := range goldenPayloads {
		f.Add([]byte(g.json))
		f.Add([]byte(strings.Replace(g.json, `"v":1`, `"v":1,"v":1`, 1)))
		f.Add([]byte(g.json[:len(g.json)/2]))
	}
	f.Add([]byte(`{"v":1,"progress":1e999}`))
	f.Add([]byte(`{"v":1,"details":{"a":"\ud800"}}`))
	f.Add([]byte(`{"v":1,"ts":"0000-01-01T00:00:00+01:00"}`))
	f.Add([]byte(strings.Repeat("[", 10000)))
}

// roundTrip checks what every parser promises: no panic, errors that wrap
// ErrMalformed, and for accepted payloads a canonical form that parses back
// to the same value.
func roundTrip[T any](t *testing.T, payload []byte, parse func([]byte) (T, error), marshal func(*T) ([]byte, error)) {
	v, err := parse(payload)
	if err != nil {
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("error %v does not wrap ErrMalformed", err)
		}
		return
	}
	b, err := marshal(&v)
	if err != nil {
		t.Fatalf("accepted %q but cannot marshal %+v: %v", payload, v, err)
	}
	again, err := parse(b)
	if err != nil {
		t.Fatalf("canonical form %s of %q does not parse: %v", b, payload, err)
	}
	if !reflect.DeepEqual(v, again) {
		t.Fatalf("round trip changed %+v to %+v", v, again)
	}
}

func FuzzParseStatus(f *testing.F) {
	seedPayloads(f)
	f.Fuzz(func(t *testing.T, payload []byte) {
		roundTrip(t, payload, ParseStatus, MarshalStatus)
	})
}

func FuzzParseNotice(f *testing.F) {
	seedPayloads(f)
	f.Fuzz(func(t *testing.T, payload []byte) {
		roundTrip(t, payload, ParseNotice, MarshalNotice)
	})
}

func FuzzParseInventory(f *testing.F) {
	seedPayloads(f)
	f.Fuzz(func(t *testing.T, payload []byte) {
		roundTrip(t, payload, ParseInventory, MarshalInventory)
	})
}

func FuzzParseDeviceTopic(f *testing.F) {
	tp, err := NewTopics("factory-7/sensors")
	if err != nil {
		f.Fatal(err)
	}
	f.Add("factory-7/sensors/devices/sensor-0042/status")
	f.Add("factory-7/sensors/devices/+/status")
	f.Add("factory-7/sensors/notices/th-sensor/04")
	f.Fuzz(func(t *testing.T, topic string) {
		id, kind, err := tp.ParseDeviceTopic(topic)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if ValidSegment(id) != nil || tp.device(id, kind) != topic {
			t.Fatalf("accepted %q as %q, %v", topic, id, kind)
		}
	})
}

func FuzzParseConstraint(f *testing.F) {
	f.Add(">=1.2.0, <2.0.0 || =3.0.0-rc.1", "2.0.0-rc.1")
	f.Add("!=1.0.0", "1.0.0+b")
	f.Fuzz(func(t *testing.T, constraint, version string) {
		c, err := ParseConstraint(constraint)
		if err != nil {
			return
		}
		again, err := ParseConstraint(c.String())
		if err != nil || again.String() != c.String() {
			t.Fatalf("canonical form %q of %q does not parse back: %v", c, constraint, err)
		}
		a, errA := c.Allows(version)
		b, errB := again.Allows(version)
		if a != b || (errA == nil) != (errB == nil) {
			t.Fatalf("%q and its canonical form disagree on %q", constraint, version)
		}
	})
}
