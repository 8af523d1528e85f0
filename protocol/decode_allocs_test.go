//go:build !race

package protocol

import "testing"

// TestParseAllocs keeps the parsers' allocations far below the reference's
// (decode_old_test.go). Most of what is left is the values they return and
// Validate. The race detector allocates more, hence the build constraint.
func TestParseAllocs(t *testing.T) {
	for _, tc := range []struct {
		name       string
		parse, ref func([]byte) error
		json       string
	}{
		{"presence", parsers["presence"], func(b []byte) error { _, err := oldParsePresence(b); return err }, goldenJSON("presence online")},
		{"status", parsers["status"], func(b []byte) error { _, err := oldParseStatus(b); return err }, goldenJSON("status downloading")},
		{"inventory", parsers["inventory"], func(b []byte) error { _, err := oldParseInventory(b); return err }, goldenJSON("inventory")},
		{"notice", parsers["notice"], func(b []byte) error { _, err := oldParseNotice(b); return err }, goldenJSON("notice update")},
	} {
		p := []byte(tc.json)
		allocs := func(parse func([]byte) error) float64 {
			return testing.AllocsPerRun(100, func() {
				if err := parse(p); err != nil {
					t.Fatal(err)
				}
			})
		}
		got, ref := allocs(tc.parse), allocs(tc.ref)
		t.Logf("%s: %v allocations, reference %v", tc.name, got, ref)
		if got > ref/4 {
			t.Errorf("%s: %v allocations, more than a quarter of the reference's %v", tc.name, got, ref)
		}
	}
}
