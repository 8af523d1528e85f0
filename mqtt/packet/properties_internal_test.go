package packet

import (
	"math/bits"
	"reflect"
	"testing"
)

// TestNumericPropsMatchesSpecs checks the hand-written numericProps set
// against the property table it summarises.
func TestNumericPropsMatchesSpecs(t *testing.T) {
	for id := 0; id < 64; id++ {
		numeric := false
		if id <= maxPropID {
			switch propSpecs[id].kind {
			case kindByte, kindUint16, kindUint32:
				numeric = true
			}
		}
		if got := numericProps&(1<<id) != 0; got != numeric {
			t.Errorf("numericProps has 0x%02X = %v, want %v", id, got, numeric)
		}
	}
}

// TestSendingCoversEveryField sets each exported field of Properties alone
// and checks that sending reports exactly one property, a distinct one per
// field, whose accessor reads that very field. A field added to Properties
// without a place in sending fails here rather than being silently dropped
// on encode.
func TestSendingCoversEveryField(t *testing.T) {
	defined := 0
	for id := 1; id <= maxPropID; id++ {
		if propSpecs[id].kind != 0 {
			defined++
		}
	}
	typ := reflect.TypeFor[Properties]()
	seen := map[PropID]string{}
	for i := range typ.NumField() {
		f := typ.Field(i)
		if !f.IsExported() {
			continue
		}
		var p Properties
		field := reflect.ValueOf(&p).Elem().Field(i)
		switch field.Kind() {
		case reflect.Uint8, reflect.Uint16, reflect.Uint32:
			field.SetUint(1)
		case reflect.Slice:
			// One element, or for []byte an empty but non-nil slice: a
			// []byte property is sent when non-nil.
			n := 1
			if f.Type.Elem().Kind() == reflect.Uint8 {
				n = 0
			}
			field.Set(reflect.MakeSlice(f.Type, n, n))
			if n == 1 && f.Type.Elem().Kind() == reflect.Uint32 {
				field.Index(0).SetUint(1) // subscription identifier 0 is invalid
			}
		default:
			t.Fatalf("field %s has unexpected kind %s", f.Name, field.Kind())
		}
		m := p.sending()
		if bits.OnesCount64(m) != 1 {
			t.Errorf("%s alone: sending() = %#x, want exactly one property", f.Name, m)
			continue
		}
		id := PropID(bits.TrailingZeros64(m))
		if other, dup := seen[id]; dup {
			t.Errorf("%s and %s both send property 0x%02X", f.Name, other, byte(id))
		}
		seen[id] = f.Name
		switch propSpecs[id].kind {
		case kindByte, kindUint16, kindUint32:
			if p.numeric(id) != 1 {
				t.Errorf("%s sends 0x%02X, but numeric(0x%02X) does not read it", f.Name, byte(id), byte(id))
			}
		case kindString, kindBinary:
			if p.bytesField(id) != field.Addr().Interface().(*[]byte) {
				t.Errorf("%s sends 0x%02X, but bytesField(0x%02X) is another field", f.Name, byte(id), byte(id))
			}
		case kindVarInt:
			if f.Name != "SubscriptionIDs" {
				t.Errorf("%s sends the subscription identifier", f.Name)
			}
		case kindPair:
			if f.Name != "User" {
				t.Errorf("%s sends the user property", f.Name)
			}
		}
		if n, err := p.size(^scope(0)); err != nil || n == 0 {
			t.Errorf("%s alone: size = %d, %v; want a non-empty encoding", f.Name, n, err)
		}
	}
	if len(seen) != defined {
		t.Errorf("exported fields send %d distinct properties, the table defines %d", len(seen), defined)
	}
}

// TestSendingMarks checks the rule of the Properties doc: a mark sends a
// zero numeric property, and nothing else.
func TestSendingMarks(t *testing.T) {
	var p Properties
	p.Set(PropUser)
	p.Set(PropReasonString)
	p.Set(PropSubscriptionID)
	p.Set(0x04) // not a property
	if m := p.sending(); m != 0 {
		t.Errorf("marks on non-numeric or unknown properties send %#x, want nothing", m)
	}
	p.Set(PropMaximumQoS)
	if m := p.sending(); m != 1<<PropMaximumQoS {
		t.Errorf("marked Maximum QoS 0: sending() = %#x, want only 0x24", m)
	}
}
