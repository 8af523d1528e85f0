package brokerconn

import (
	"strings"
	"testing"
)

// TestDefaultClientIDsDoNotCollide: fleets whose joined names are equal,
// or whose names are long enough to be cut, still get distinct IDs.
func TestDefaultClientIDsDoNotCollide(t *testing.T) {
	long := strings.Repeat("x", 60)
	pairs := [][2][2]string{
		{{"a-b", "c"}, {"a", "b-c"}},
		{{"team", long + "1"}, {"team", long + "2"}},
		{{long, "a"}, {long, "b"}},
	}
	for _, p := range pairs {
		a, b := DefaultClientID(p[0][0], p[0][1]), DefaultClientID(p[1][0], p[1][1])
		if a == b {
			t.Errorf("%v and %v share the client ID %q", p[0], p[1], a)
		}
		for _, id := range []string{a, b} {
			if len(id) > 64 || !strings.HasPrefix(id, "herald-") {
				t.Errorf("client ID %q: want a herald- prefix and at most 64 bytes", id)
			}
		}
	}
	if got := DefaultClientID("plant", "sensors"); !strings.HasPrefix(got, "herald-plant-sensors-") {
		t.Errorf("client ID %q does not name its fleet", got)
	}
}
