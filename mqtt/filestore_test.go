//go:build unix && !aix && !solaris

package mqtt_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/heraldiot/herald/mqtt"
)

// storeOp is one call on a Store, for tables and random sequences.
type storeOp struct {
	kind string // put, del, putIn, delIn, reset
	id   uint16
	data string
}

func applyOps(t *testing.T, s mqtt.Store, ops []storeOp) {
	t.Helper()
	for i, op := range ops {
		var err error
		switch op.kind {
		case "put":
			err = s.PutOutbound(op.id, []byte(op.data))
		case "del":
			err = s.DeleteOutbound(op.id)
		case "putIn":
			err = s.PutInbound(op.id)
		case "delIn":
			err = s.DeleteInbound(op.id)
		case "reset":
			err = s.Reset()
		default:
			t.Fatalf("op %d: unknown kind %q", i, op.kind)
		}
		if err != nil {
			t.Fatalf("op %d (%s %d): %v", i, op.kind, op.id, err)
		}
	}
}

// storeState is everything a Store shows, in the order it shows it.
type storeState struct {
	Out []storedOut
	In  []uint16
}

type storedOut struct {
	ID      uint16
	Encoded string
}

func stateOf(t *testing.T, s mqtt.Store) storeState {
	t.Helper()
	var st storeState
	if err := s.Outbound(func(id uint16, encoded []byte) bool {
		st.Out = append(st.Out, storedOut{id, string(encoded)})
		return true
	}); err != nil {
		t.Fatalf("Outbound: %v", err)
	}
	if err := s.Inbound(func(id uint16) bool {
		st.In = append(st.In, id)
		return true
	}); err != nil {
		t.Fatalf("Inbound: %v", err)
	}
	slices.Sort(st.In) // a set: the interface promises no order
	return st
}

func (st storeState) equal(o storeState) bool {
	return slices.Equal(st.Out, o.Out) && slices.Equal(st.In, o.In)
}

func openFileStore(t *testing.T, dir string) *mqtt.FileStore {
	t.Helper()
	s, err := mqtt.OpenFileStore(dir)
	if err != nil {
		t.Fatalf("OpenFileStore: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func closeStore(t *testing.T, s *mqtt.FileStore) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// TestFileStoreStateSurvivesReopenAndCompaction applies each sequence to a
// FileStore and to a MemoryStore, the model, and checks the FileStore shows
// the expected state, the same as the model, live, after reopening, after
// compacting and after reopening the compacted log.
func TestFileStoreStateSurvivesReopenAndCompaction(t *testing.T) {
	tests := []struct {
		name string
		ops  []storeOp
		want storeState
	}{
		{
			name: "empty",
		},
		{
			name: "outbound in put order, not id order",
			ops:  []storeOp{{"put", 3, "c"}, {"put", 1, "a"}, {"put", 2, "b"}},
			want: storeState{Out: []storedOut{{3, "c"}, {1, "a"}, {2, "b"}}},
		},
		{
			name: "a replaced packet moves to the end",
			ops:  []storeOp{{"put", 1, "publish-1"}, {"put", 2, "publish-2"}, {"put", 1, "pubrel-1"}},
			want: storeState{Out: []storedOut{{2, "publish-2"}, {1, "pubrel-1"}}},
		},
		{
			name: "delete",
			ops:  []storeOp{{"put", 1, "a"}, {"put", 2, "b"}, {"put", 3, "c"}, {"del", 2, ""}, {"del", 9, ""}},
			want: storeState{Out: []storedOut{{1, "a"}, {3, "c"}}},
		},
		{
			name: "deleted then put again goes to the end",
			ops:  []storeOp{{"put", 1, "a"}, {"put", 2, "b"}, {"del", 1, ""}, {"put", 1, "a2"}},
			want: storeState{Out: []storedOut{{2, "b"}, {1, "a2"}}},
		},
		{
			name: "inbound is a set",
			ops:  []storeOp{{"putIn", 5, ""}, {"putIn", 7, ""}, {"putIn", 5, ""}, {"delIn", 7, ""}, {"delIn", 8, ""}, {"putIn", 65535, ""}},
			want: storeState{In: []uint16{5, 65535}},
		},
		{
			name: "reset forgets both directions",
			ops:  []storeOp{{"put", 1, "a"}, {"putIn", 4, ""}, {"reset", 0, ""}, {"put", 9, "z"}},
			want: storeState{Out: []storedOut{{9, "z"}}},
		},
		{
			name: "reset of an empty store",
			ops:  []storeOp{{"reset", 0, ""}, {"putIn", 1, ""}},
			want: storeState{In: []uint16{1}},
		},
		{
			name: "packet identifier 0 and 65535 and a large packet",
			ops:  []storeOp{{"put", 65535, "x"}, {"put", 0, string(bytes.Repeat([]byte{0xA5}, 100_000))}},
			want: storeState{Out: []storedOut{{65535, "x"}, {0, string(bytes.Repeat([]byte{0xA5}, 100_000))}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			model := mqtt.NewMemoryStore()
			applyOps(t, model, tt.ops)
			if got := stateOf(t, model); !got.equal(tt.want) {
				t.Fatalf("the model disagrees with the table: %+v, want %+v", got, tt.want)
			}
			dir := t.TempDir()
			s := openFileStore(t, dir)
			applyOps(t, s, tt.ops)
			check := func(when string, s mqtt.Store) {
				t.Helper()
				if got := stateOf(t, s); !got.equal(tt.want) {
					t.Fatalf("%s: state %+v, want %+v", when, got, tt.want)
				}
			}
			check("live", s)
			closeStore(t, s)
			s = openFileStore(t, dir)
			check("after reopen", s)
			if err := s.Compact(); err != nil {
				t.Fatal(err)
			}
			check("after compaction", s)
			closeStore(t, s)
			s = openFileStore(t, dir)
			check("after reopening the compacted log", s)
			if s.TornTail() != 0 {
				t.Fatalf("TornTail after clean closes = %d", s.TornTail())
			}
		})
	}
}

// TestFileStoreMatchesMemoryStore runs a long random sequence, reopening and
// compacting at random points, and compares with a MemoryStore throughout.
// The log grows past the compaction floor, so automatic compaction runs too.
func TestFileStoreMatchesMemoryStore(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	dir := t.TempDir()
	s := openFileStore(t, dir)
	model := mqtt.NewMemoryStore()
	const n = 3000
	for i := range n {
		var op storeOp
		switch r := rng.IntN(100); {
		case r < 50:
			op = storeOp{"put", uint16(rng.IntN(20)), fmt.Sprintf("%d:%s", i, bytes.Repeat([]byte("p"), rng.IntN(600)))}
		case r < 75:
			op = storeOp{"del", uint16(rng.IntN(20)), ""}
		case r < 87:
			op = storeOp{"putIn", uint16(rng.IntN(20)), ""}
		case r < 99:
			op = storeOp{"delIn", uint16(rng.IntN(20)), ""}
		default:
			op = storeOp{"reset", 0, ""}
		}
		applyOps(t, s, []storeOp{op})
		applyOps(t, model, []storeOp{op})
		switch r := rng.IntN(200); {
		case r == 0:
			closeStore(t, s)
			s = openFileStore(t, dir)
		case r == 1:
			if err := s.Compact(); err != nil {
				t.Fatal(err)
			}
		default:
			continue
		}
		if got, want := stateOf(t, s), stateOf(t, model); !got.equal(want) {
			t.Fatalf("after op %d: file store %+v, model %+v", i, got, want)
		}
	}
	closeStore(t, s)
	s = openFileStore(t, dir)
	if got, want := stateOf(t, s), stateOf(t, model); !got.equal(want) {
		t.Fatalf("after reopen: file store %+v, model %+v", got, want)
	}
}

// TestFileStoreCopiesPacket checks the store keeps its own copy of the
// bytes, which the client reuses for the next packet.
func TestFileStoreCopiesPacket(t *testing.T) {
	s := openFileStore(t, t.TempDir())
	b := []byte("packet")
	if err := s.PutOutbound(1, b); err != nil {
		t.Fatal(err)
	}
	copy(b, "XXXXXX")
	if got := stateOf(t, s); !got.equal(storeState{Out: []storedOut{{1, "packet"}}}) {
		t.Fatalf("state %+v after the caller reused its buffer", got)
	}
}

// TestFileStoreCallbacksMayChangeStore checks that Outbound and Inbound do
// not hold the store while calling back: the client deletes inbound state
// from within Inbound when the server has lost the session.
func TestFileStoreCallbacksMayChangeStore(t *testing.T) {
	s := openFileStore(t, t.TempDir())
	applyOps(t, s, []storeOp{{"put", 1, "a"}, {"put", 2, "b"}, {"putIn", 3, ""}, {"putIn", 4, ""}})
	if err := s.Outbound(func(id uint16, _ []byte) bool { return s.DeleteOutbound(id) == nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.Inbound(func(id uint16) bool { return s.DeleteInbound(id) == nil }); err != nil {
		t.Fatal(err)
	}
	if got := stateOf(t, s); !got.equal(storeState{}) {
		t.Fatalf("state %+v, want empty", got)
	}
}

// TestFileStoreCallbackStops checks that returning false ends the walks.
func TestFileStoreCallbackStops(t *testing.T) {
	s := openFileStore(t, t.TempDir())
	applyOps(t, s, []storeOp{{"put", 1, "a"}, {"put", 2, "b"}, {"putIn", 3, ""}, {"putIn", 4, ""}})
	calls := 0
	_ = s.Outbound(func(uint16, []byte) bool { calls++; return false })
	_ = s.Inbound(func(uint16) bool { calls++; return false })
	if calls != 2 {
		t.Fatalf("%d calls, want 1 per walk", calls)
	}
}

// TestFileStoreLocksDirectory checks that a second FileStore on a directory
// in use is refused, and allowed once the first is closed.
func TestFileStoreLocksDirectory(t *testing.T) {
	dir := t.TempDir()
	s := openFileStore(t, dir)
	if s2, err := mqtt.OpenFileStore(dir); !errors.Is(err, mqtt.ErrStoreLocked) {
		if s2 != nil {
			s2.Close()
		}
		t.Fatalf("second open: %v, want ErrStoreLocked", err)
	}
	closeStore(t, s)
	s = openFileStore(t, dir)
	closeStore(t, s)
}

// TestFileStoreAfterClose checks that changes fail after Close and that
// Close may be called again.
func TestFileStoreAfterClose(t *testing.T) {
	s := openFileStore(t, t.TempDir())
	closeStore(t, s)
	if err := s.PutOutbound(1, []byte("a")); !errors.Is(err, fs.ErrClosed) {
		t.Fatalf("PutOutbound after Close: %v, want fs.ErrClosed", err)
	}
	if err := s.Outbound(func(uint16, []byte) bool { return true }); !errors.Is(err, fs.ErrClosed) {
		t.Fatalf("Outbound after Close: %v, want fs.ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestFileStoreRejectsEmptyPacket: an empty packet cannot be resent and
// would be read back as damage, so it is refused at the door.
func TestFileStoreRejectsEmptyPacket(t *testing.T) {
	s := openFileStore(t, t.TempDir())
	if err := s.PutOutbound(1, nil); err == nil {
		t.Fatal("PutOutbound with no bytes succeeded")
	}
}

// TestFileStoreCompactShrinksLog checks that Compact leaves a directory no
// bigger than the live state needs, with the state intact.
func TestFileStoreCompactShrinksLog(t *testing.T) {
	dir := t.TempDir()
	s := openFileStore(t, dir)
	packet := bytes.Repeat([]byte("m"), 1000)
	for i := range 200 {
		applyOps(t, s, []storeOp{{"put", uint16(i), string(packet)}, {"del", uint16(i), ""}})
	}
	applyOps(t, s, []storeOp{{"put", 7, "kept"}, {"putIn", 8, ""}})
	want := stateOf(t, s)
	before := dirSize(t, dir)
	if err := s.Compact(); err != nil {
		t.Fatal(err)
	}
	after := dirSize(t, dir)
	if after > 100 {
		t.Fatalf("directory holds %d bytes after compaction (%d before) for a few bytes of state", after, before)
	}
	closeStore(t, s)
	s = openFileStore(t, dir)
	if got := stateOf(t, s); !got.equal(want) {
		t.Fatalf("state %+v after compaction and reopen, want %+v", got, want)
	}
	t.Logf("compaction: %d bytes -> %d", before, after)
}

func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		fi, err := os.Stat(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		n += fi.Size()
	}
	return n
}

// TestFileStoreAllocations checks that a steady stream of publishes (put,
// then delete at the acknowledgement) allocates nothing.
func TestFileStoreAllocations(t *testing.T) {
	s := openFileStore(t, t.TempDir())
	packet := bytes.Repeat([]byte("m"), 200)
	var err error
	id := uint16(0)
	allocs := testing.AllocsPerRun(200, func() {
		id++
		if e := s.PutOutbound(id%16, packet); e != nil {
			err = e
		}
		if e := s.DeleteOutbound(id % 16); e != nil {
			err = e
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if allocs != 0 {
		t.Fatalf("%.1f allocations per put and delete, want 0", allocs)
	}
}
