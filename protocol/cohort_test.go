package protocol

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"testing"
)

// cohortVectors are the test vectors of docs/protocol.md (TestDocument
// checks that the document has the same): the FNV-1a 32-bit hash of the
// device ID and its cohort. "a" and "foobar" are FNV's own published
// vectors; "x" hashes above 2^31, where signed arithmetic goes wrong;
// the two MAC-like IDs show that case matters.
var cohortVectors = []struct {
	id     string
	hash   uint32
	cohort int
}{
	{"a", 0xe40c292c, 20},
	{"foobar", 0xbf9cf968, 20},
	{"x", 0xfd0c5087, 95},
	{"sensor-0001", 0x4fc674d5, 1},
	{"sensor-0002", 0x4cc6701c, 44},
	{"sensor-0042", 0xc4d02760, 4},
	{"sensor-0060", 0x5acb0354, 0},
	{"sensor-0029", 0xcbc127db, 99},
	{"AA-BB-CC-DD-EE-FF", 0xd2ff11ea, 26},
	{"aa-bb-cc-dd-ee-ff", 0x8cd074ea, 58},
	{"3c71bf4a9e21", 0x6adee387, 35},
	{"gw_01", 0x67146587, 59},
	{"dev.42", 0xa584831c, 56},
}

func fnv1a(s string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(s))
	return h.Sum32()
}

func TestCohortVectors(t *testing.T) {
	for _, v := range cohortVectors {
		if h := fnv1a(v.id); h != v.hash {
			t.Errorf("FNV-1a(%q) = %#08x, table says %#08x", v.id, h, v.hash)
		}
		if got := Cohort(v.id); got != v.cohort {
			t.Errorf("Cohort(%q) = %d, want %d", v.id, got, v.cohort)
		}
		if int(v.hash%100) != v.cohort {
			t.Errorf("table row %q: %d mod 100 is not %d", v.id, v.hash, v.cohort)
		}
	}
}

// The hand-written loop is hash/fnv's FNV-1a, modulo 100.
func TestCohortMatchesHashFNV(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		b := make([]byte, r.IntN(MaxSegmentLength+1))
		for i := range b {
			b[i] = byte(r.UintN(256))
		}
		if got, want := Cohort(string(b)), int(fnv1a(string(b))%Cohorts); got != want {
			t.Fatalf("Cohort(%q) = %d, want %d", b, got, want)
		}
	}
}

// Sequential IDs, the common case, spread evenly: no cohort of 100,000
// devices gets far from 1,000.
func TestCohortSpread(t *testing.T) {
	var counts [Cohorts]int
	for i := range 100000 {
		counts[Cohort(fmt.Sprintf("sensor-%06d", i))]++
	}
	for c, n := range counts {
		if n < 850 || n > 1150 {
			t.Errorf("cohort %02d has %d of 100000 devices", c, n)
		}
	}
}

var cohortSink int

func TestCohortAllocatesNothing(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { cohortSink = Cohort("sensor-0042") }); n != 0 {
		t.Errorf("Cohort allocates %v times", n)
	}
}

func TestCohortSegment(t *testing.T) {
	for c := range Cohorts {
		s := CohortSegment(c)
		if s != fmt.Sprintf("%02d", c) {
			t.Errorf("CohortSegment(%d) = %q", c, s)
		}
		if back, err := ParseCohortSegment(s); err != nil || back != c {
			t.Errorf("ParseCohortSegment(%q) = %d, %v", s, back, err)
		}
	}
	for _, c := range []int{-1, 100, 1 << 40} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("CohortSegment(%d) did not panic", c)
				}
			}()
			CohortSegment(c)
		}()
	}
}

func TestParseCohortSegmentInvalid(t *testing.T) {
	for _, s := range []string{"", "0", "7", "100", "-1", "+1", "1a", " 1", "٠١"} {
		if c, err := ParseCohortSegment(s); err == nil {
			t.Errorf("ParseCohortSegment(%q) = %d, want an error", s, c)
		} else {
			wantErr(t, err, ErrTopic)
		}
	}
}
