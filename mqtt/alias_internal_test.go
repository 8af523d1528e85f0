package mqtt

import (
	"testing"

	"github.com/heraldiot/herald/mqtt/packet"
)

func TestOutboundAliasesLRU(t *testing.T) {
	a := newOutboundAliases(2)
	type step struct {
		topic     string
		wantAlias uint16
		wantKnown bool
	}
	steps := []step{
		{"a", 1, false},
		{"b", 2, false},
		{"a", 1, true},  // a is now the most recently used
		{"c", 2, false}, // evicts b, the least recently used
		{"b", 1, false}, // evicts a
		{"c", 2, true},
		{"b", 1, true},
	}
	for i, s := range steps {
		alias, known := a.lookup([]byte(s.topic))
		if alias != s.wantAlias || known != s.wantKnown {
			t.Fatalf("step %d: lookup(%q) = %d, %v; want %d, %v", i, s.topic, alias, known, s.wantAlias, s.wantKnown)
		}
	}
}

func TestOutboundAliasesForget(t *testing.T) {
	a := newOutboundAliases(3)
	a.lookup([]byte("a"))
	a.lookup([]byte("b"))
	a.forget([]byte("a"))
	// The forgotten number is handed out again before a new one, and the
	// forgotten topic must be defined again, not assumed known.
	if alias, known := a.lookup([]byte("c")); alias != 1 || known {
		t.Fatalf("lookup(c) = %d, %v; want the freed alias 1, unknown", alias, known)
	}
	if alias, known := a.lookup([]byte("a")); alias != 3 || known {
		t.Fatalf("lookup(a) = %d, %v; want 3, unknown", alias, known)
	}
	if alias, known := a.lookup([]byte("b")); alias != 2 || !known {
		t.Fatalf("lookup(b) = %d, %v; want 2, known", alias, known)
	}
}

func TestOutboundAliasesDoNotAliasCallerMemory(t *testing.T) {
	a := newOutboundAliases(1)
	buf := []byte("topic/one")
	a.lookup(buf)
	copy(buf, "xxxxx")
	if _, known := a.lookup([]byte("topic/one")); !known {
		t.Fatal("the table changed with the caller's buffer")
	}
}

func TestInboundAliasResolve(t *testing.T) {
	pub := func(topic string, alias uint16) *packet.Publish {
		p := &packet.Publish{Topic: []byte(topic)}
		if alias != 0 {
			p.Properties.TopicAlias = alias
			p.Properties.Set(packet.PropTopicAlias)
		}
		return p
	}
	zero := pub("t", 0)
	zero.Properties.Set(packet.PropTopicAlias)
	tests := []struct {
		name    string
		p       *packet.Publish
		want    string
		wantErr error
	}{
		{"plain topic", pub("plain", 0), "plain", nil},
		{"define 1", pub("x/y", 1), "x/y", nil},
		{"use 1", pub("", 1), "x/y", nil},
		{"redefine 1", pub("x/z", 1), "x/z", nil},
		{"use redefined 1", pub("", 1), "x/z", nil},
		{"unknown 2", pub("", 2), "", packet.ProtocolError},
		{"above maximum", pub("t", 3), "", packet.TopicAliasInvalid},
		{"alias 0", zero, "", packet.TopicAliasInvalid},
		{"empty topic, no alias", pub("", 0), "", packet.ProtocolError},
	}
	var a inboundAliases
	for _, tt := range tests {
		got, err := a.resolve(tt.p, 2)
		if packet.ReasonOf(err) != packet.ReasonOf(tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
			t.Fatalf("%s: error %v, want %v", tt.name, err, tt.wantErr)
		}
		if got != tt.want {
			t.Fatalf("%s: topic %q, want %q", tt.name, got, tt.want)
		}
	}
}
