package packet_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/heraldiot/herald/mqtt/packet"
)

// FuzzDecode feeds arbitrary bytes to Decode under both versions. Decoding
// must never panic; a failure must be an *Error with a failure reason code;
// a success must honour the size limit exactly and survive a round trip:
// the packet re-encodes, and decoding that encoding gives an equal packet.
func FuzzDecode(f *testing.F) {
	for _, tc := range goldenCases() {
		f.Add(tc.raw)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, v := range []packet.Version{packet.V311, packet.V5} {
			checkDecode(t, data, v)
		}
	})
}

func checkDecode(t *testing.T, data []byte, v packet.Version) {
	p, n, err := packet.Decode(data, v, 0)
	checkDiscardUser(t, data, v, err)
	if err != nil {
		if p != nil || n != 0 {
			t.Fatalf("v%s: Decode failed with %v but returned packet %+v, n=%d", v, err, p, n)
		}
		var pe *packet.Error
		if !errors.As(err, &pe) {
			t.Fatalf("v%s: Decode error %v is not a *packet.Error", v, err)
		}
		if !packet.ReasonOf(err).IsError() {
			t.Fatalf("v%s: Decode error %v carries success code 0x%02X", v, err, byte(packet.ReasonOf(err)))
		}
		return
	}
	if n < 2 || n > len(data) {
		t.Fatalf("v%s: Decode consumed %d of %d bytes", v, n, len(data))
	}
	// The limit counts the whole packet: it fits n bytes, not n-1.
	if _, _, err := packet.Decode(data, v, uint32(n)); err != nil {
		t.Fatalf("v%s: Decode with maxSize %d (the packet's size): %v", v, n, err)
	}
	if _, _, err := packet.Decode(data, v, uint32(n-1)); !errors.Is(err, packet.ErrPacketTooLarge) {
		t.Fatalf("v%s: Decode with maxSize %d: %v, want ErrPacketTooLarge", v, n-1, err)
	}
	enc, err := p.Append(nil, v)
	if err != nil {
		t.Fatalf("v%s: decoded %+v from % X but cannot encode it: %v", v, p, data[:n], err)
	}
	q, m, err := packet.Decode(enc, v, 0)
	if err != nil {
		t.Fatalf("v%s: cannot decode the re-encoding % X of % X: %v", v, enc, data[:n], err)
	}
	if m != len(enc) {
		t.Fatalf("v%s: decoding the re-encoding consumed %d of %d bytes", v, m, len(enc))
	}
	if !reflect.DeepEqual(p, q) {
		t.Fatalf("v%s: round trip changed the packet\n  in % X\n got %+v\n out % X\nback %+v", v, data[:n], p, enc, q)
	}
}

// checkDiscardUser decodes data again with DiscardUserProperties: that
// option changes what is kept, never what is accepted, so it must fail
// where the full decode failed (with fullErr), with the same reason, and
// otherwise give the same packet without user properties.
func checkDiscardUser(t *testing.T, data []byte, v packet.Version, fullErr error) {
	h, n, err := packet.DecodeHeader(data, v, 0)
	if err != nil || len(data)-n < h.Remaining {
		return // the header decides, which the option does not touch
	}
	p, err := packet.New(h.Type)
	if err != nil {
		return
	}
	err = packet.UnmarshalOptions{DiscardUserProperties: true}.Unmarshal(p, v, h.Flags, data[n:n+h.Remaining])
	if (err == nil) != (fullErr == nil) || packet.ReasonOf(err) != packet.ReasonOf(fullErr) {
		t.Fatalf("v%s: % X decodes with %v, but with user properties discarded %v", v, data, fullErr, err)
	}
	if err != nil {
		return
	}
	for _, pr := range properties(p) {
		if len(pr.User) != 0 {
			t.Fatalf("v%s: % X: discarded decode kept %d user properties", v, data, len(pr.User))
		}
	}
	// Compare with the full decode stripped of its user properties.
	stripped, _, _ := packet.Decode(data, v, 0)
	for _, pr := range properties(stripped) {
		pr.User = nil
	}
	if !reflect.DeepEqual(p, stripped) {
		t.Fatalf("v%s: % X: discarded decode\n%+v\ndiffers from the full one without them\n%+v", v, data, p, stripped)
	}
}

// FuzzRoundTrip starts from the golden packets and checks the properties
// a stream codec relies on for anything that decodes: the encoding is
// canonical (encoding what it decodes to gives the same bytes), every
// strict prefix of it is reported as incomplete rather than malformed,
// and Unmarshal into a value already holding a packet leaves nothing of
// the old one behind.
func FuzzRoundTrip(f *testing.F) {
	for _, tc := range goldenCases() {
		f.Add(byte(tc.v), tc.raw)
	}
	f.Fuzz(func(t *testing.T, version byte, data []byte) {
		// Spend every input on a real version: the golden seeds use 4 and 5.
		v := packet.V311
		if version&1 == 1 {
			v = packet.V5
		}
		p, _, err := packet.Decode(data, v, 0)
		if err != nil {
			return
		}
		enc, err := p.Append(nil, v)
		if err != nil {
			t.Fatalf("v%s: decoded %+v but cannot encode it: %v", v, p, err)
		}
		q, _, err := packet.Decode(enc, v, 0)
		if err != nil {
			t.Fatalf("v%s: cannot decode own encoding % X: %v", v, enc, err)
		}
		again, err := q.Append(nil, v)
		if err != nil || !bytes.Equal(again, enc) {
			t.Fatalf("v%s: encoding not canonical:\nfirst  % X\nsecond % X (err %v)", v, enc, again, err)
		}
		for i := range len(enc) {
			if _, _, err := packet.Decode(enc[:i], v, 0); !errors.Is(err, packet.ErrShortBuffer) {
				t.Fatalf("v%s: Decode of %d-byte prefix of % X: %v, want ErrShortBuffer", v, i, enc, err)
			}
		}
		h, hn, err := packet.DecodeHeader(enc, v, 0)
		if err != nil {
			t.Fatalf("v%s: DecodeHeader of own encoding: %v", v, err)
		}
		if err := p.Unmarshal(v, h.Flags, enc[hn:]); err != nil {
			t.Fatalf("v%s: Unmarshal own encoding into the reused value: %v", v, err)
		}
		if reused, err := p.Append(nil, v); err != nil || !bytes.Equal(reused, enc) {
			t.Fatalf("v%s: reused value encodes to % X (err %v), want % X", v, reused, err, enc)
		}
	})
}

// TestDecodeOversizedAllocatesNothing checks that a packet claiming more
// than the limit is refused from its fixed header, before anything is
// allocated for it, so a peer cannot make the decoder reserve memory by
// announcing a large packet. A packet above the announced Maximum Packet
// Size is answered with DISCONNECT 0x95 (3.1.2.11.4, [MQTT-3.1.2-24]).
func TestDecodeOversizedAllocatesNothing(t *testing.T) {
	hugeHeader := wire(0x30, 0xFF, 0xFF, 0xFF, 0x7F) // PUBLISH claiming 268,435,455 bytes
	bigBody := append(wire(0x30, 0xD3, 0x0F, 0x00, 0x01, "a"), make([]byte, 2000)...)
	tests := []struct {
		name    string
		raw     []byte
		maxSize uint32
		want    error
	}{
		{"huge length, small limit, header only", hugeHeader, 1024, packet.ErrPacketTooLarge},
		{"huge length, limit one below the largest packet", hugeHeader, packet.MaxVarInt + 4, packet.ErrPacketTooLarge},
		{"2003-byte body present, 1 KiB limit", bigBody, 1024, packet.ErrPacketTooLarge},
		{"huge length, no limit, body still to come", hugeHeader, 0, packet.ErrShortBuffer},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			allocs := testing.AllocsPerRun(100, func() {
				_, _, err = packet.Decode(tc.raw, packet.V5, tc.maxSize)
			})
			if !errors.Is(err, tc.want) {
				t.Fatalf("Decode error = %v, want %v", err, tc.want)
			}
			if allocs != 0 {
				t.Errorf("Decode allocated %.1f times per call, want 0", allocs)
			}
		})
	}
}

// writeCorpusEnv names the environment variable that makes
// TestFuzzSeedCorpus rewrite the checked-in seed files from the table.
const writeCorpusEnv = "HERALD_WRITE_FUZZ_CORPUS"

// TestFuzzSeedCorpus keeps testdata/fuzz in step with the golden table:
// each golden packet is a checked-in seed of both fuzz targets, in the
// "go test fuzz v1" format. Run with HERALD_WRITE_FUZZ_CORPUS=1 to
// rewrite the files after changing the table.
func TestFuzzSeedCorpus(t *testing.T) {
	write := os.Getenv(writeCorpusEnv) == "1"
	for _, tc := range goldenCases() {
		name := "golden-" + seedName(tc.name)
		files := map[string]string{
			filepath.Join("testdata", "fuzz", "FuzzDecode", name): fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", tc.raw),
			filepath.Join("testdata", "fuzz", "FuzzRoundTrip", name): fmt.Sprintf("go test fuzz v1\nbyte(%q)\n[]byte(%q)\n",
				byte(tc.v), tc.raw),
		}
		for path, want := range files {
			if write {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Errorf("seed for %q: %v (run with %s=1 to write it)", tc.name, err, writeCorpusEnv)
				continue
			}
			if string(got) != want {
				t.Errorf("seed %s differs from the golden table (run with %s=1 to rewrite it)", path, writeCorpusEnv)
			}
		}
	}
}

// seedName turns a golden case name into a file name.
func seedName(name string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			return r
		case r >= 'A' && r <= 'Z':
			return r - 'A' + 'a'
		}
		return '-'
	}, name)
}
