package protocol

import (
	"testing"
)

// The benchmarks run each parser and its reference implementation
// (decode_old_test.go) on the same payload, so that one run shows the
// ratio: go test -run '^$' -bench Parse -benchmem ./protocol/

func benchmarkParse[T any](b *testing.B, payload string, parse, ref func([]byte) (T, error)) {
	p := []byte(payload)
	for _, impl := range []struct {
		name  string
		parse func([]byte) (T, error)
	}{{"new", parse}, {"old", ref}} {
		b.Run(impl.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(p)))
			for b.Loop() {
				if _, err := impl.parse(p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkParseStatus(b *testing.B) {
	b.Run("progress", func(b *testing.B) {
		benchmarkParse(b, goldenJSON("status downloading"), ParseStatus, oldParseStatus)
	})
	b.Run("failed", func(b *testing.B) {
		benchmarkParse(b, goldenJSON("status failed"), ParseStatus, oldParseStatus)
	})
}

func BenchmarkParseInventory(b *testing.B) {
	benchmarkParse(b, goldenJSON("inventory"), ParseInventory, oldParseInventory)
}

func BenchmarkParseNotice(b *testing.B) {
	benchmarkParse(b, goldenJSON("notice update"), ParseNotice, oldParseNotice)
}

func BenchmarkParsePresence(b *testing.B) {
	benchmarkParse(b, goldenJSON("presence online"), ParsePresence, oldParsePresence)
}
