//go:build unix && !aix && !solaris

package mqtt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// These tests damage the log on purpose, so they need its name and layout.

type fileStoreContent struct {
	out []string // "id=encoded" in order
	in  []uint16
}

func contentOf(t *testing.T, s *FileStore) fileStoreContent {
	t.Helper()
	var c fileStoreContent
	if err := s.Outbound(func(id uint16, encoded []byte) bool {
		c.out = append(c.out, string(rune('0'+id))+"="+string(encoded))
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Inbound(func(id uint16) bool { c.in = append(c.in, id); return true }); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c fileStoreContent) equal(o fileStoreContent) bool {
	return slices.Equal(c.out, o.out) && slices.Equal(c.in, o.in)
}

// sampleLog builds a store with three records and returns its log, the
// content after each record, and where each record starts.
func sampleLog(t *testing.T) (log []byte, after []fileStoreContent, starts []int) {
	t.Helper()
	dir := t.TempDir()
	s, err := OpenFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	steps := []func() error{
		func() error { return s.PutOutbound(1, []byte("publish one")) },
		func() error { return s.PutInbound(7) },
		func() error { return s.PutOutbound(2, []byte("publish two")) },
	}
	after = append(after, contentOf(t, s))
	for _, step := range steps {
		starts = append(starts, int(s.size))
		if err := step(); err != nil {
			t.Fatal(err)
		}
		after = append(after, contentOf(t, s))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	log, err = os.ReadFile(filepath.Join(dir, fileStoreLog))
	if err != nil {
		t.Fatal(err)
	}
	return log, after, starts
}

// openLog writes b as the log of a fresh directory and opens it.
func openLog(t *testing.T, b []byte) (*FileStore, string, error) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, fileStoreLog), b, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := OpenFileStore(dir)
	if err == nil {
		t.Cleanup(func() { s.Close() })
	}
	return s, dir, err
}

// TestFileStoreTornTail cuts the log at every point inside the final
// record, and appends runs of zeros, as a crash during an append can: the
// store opens without the unfinished record, reports what it cut, and
// appends after the last good record, not after the debris.
func TestFileStoreTornTail(t *testing.T) {
	log, after, starts := sampleLog(t)
	last := starts[len(starts)-1]
	type tail struct {
		name string
		b    []byte
		torn int64
	}
	var tails []tail
	for cut := last + 1; cut < len(log); cut++ {
		tails = append(tails, tail{"cut", log[:cut], int64(cut - last)})
	}
	for _, zeros := range []int{1, 7, 8, 12, 15, 100, 4096} {
		tails = append(tails, tail{"zeros", append(slices.Clone(log), make([]byte, zeros)...), int64(zeros)})
	}
	for _, tc := range tails {
		s, dir, err := openLog(t, tc.b)
		if err != nil {
			t.Fatalf("%s at %d bytes: %v", tc.name, len(tc.b), err)
		}
		want := after[len(after)-1]
		if tc.name == "cut" {
			want = after[len(after)-2]
		}
		if got := contentOf(t, s); !got.equal(want) {
			t.Fatalf("%s at %d bytes: content %+v, want %+v", tc.name, len(tc.b), got, want)
		}
		if s.TornTail() != tc.torn {
			t.Fatalf("%s at %d bytes: TornTail %d, want %d", tc.name, len(tc.b), s.TornTail(), tc.torn)
		}
		if err := s.PutInbound(9); err != nil {
			t.Fatal(err)
		}
		s.Close()
		s, err = OpenFileStore(dir)
		if err != nil {
			t.Fatalf("%s at %d bytes: reopen after an append: %v", tc.name, len(tc.b), err)
		}
		want.in = append(slices.Clone(want.in), 9)
		slices.Sort(want.in)
		if got := contentOf(t, s); !got.equal(want) || s.TornTail() != 0 {
			t.Fatalf("%s at %d bytes: after an append and reopen: content %+v torn %d, want %+v and 0", tc.name, len(tc.b), got, s.TornTail(), want)
		}
		s.Close()
	}
}

// TestFileStoreDetectsEveryBitFlip flips one bit in every byte of a log:
// each flip must be reported as corruption at the start of the damaged
// record (0 for the file header), even in the final record, and the file
// must be left as it was.
func TestFileStoreDetectsEveryBitFlip(t *testing.T) {
	log, _, starts := sampleLog(t)
	recordAt := func(off int) int64 {
		start := 0
		for _, s := range starts {
			if off >= s {
				start = s
			}
		}
		return int64(start)
	}
	for off := range log {
		b := slices.Clone(log)
		b[off] ^= 1 << (off % 8)
		s, dir, err := openLog(t, b)
		if err == nil {
			s.Close()
			t.Fatalf("bit %d of byte %d flipped: store opened", off%8, off)
		}
		var ce *CorruptStoreError
		if !errors.Is(err, ErrCorruptStore) || !errors.As(err, &ce) {
			t.Fatalf("byte %d: error %v, want a *CorruptStoreError", off, err)
		}
		if want := recordAt(off); ce.Offset != want {
			t.Fatalf("byte %d: reported offset %d, want %d (%v)", off, ce.Offset, want, err)
		}
		if got, _ := os.ReadFile(filepath.Join(dir, fileStoreLog)); !bytes.Equal(got, b) {
			t.Fatalf("byte %d: a failed open changed the file", off)
		}
	}
}

// rawRecord encodes a record with valid checksums around any body.
func rawRecord(body []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b[0:4], castagnoli))
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(body, castagnoli))
	return append(b, body...)
}

// TestFileStoreRejectsDamagedLogs: files that are not logs, and logs whose
// records check out but make no sense, are reported, never used.
func TestFileStoreRejectsDamagedLogs(t *testing.T) {
	good := appendRecord(nil, recPutOutbound, 1, []byte("publish"))
	garbage := make([]byte, 1000)
	for i := range garbage {
		garbage[i] = byte(i*7 + i>>3)
	}
	badLast := appendRecord(nil, recPutInbound, 3, nil)
	badLast[len(badLast)-1] ^= 0xFF // complete, but its body fails its checksum
	tests := []struct {
		name   string
		log    []byte
		offset int64
	}{
		{"empty file", nil, 0},
		{"short header", logMagic[:5], 0},
		{"garbage", garbage, 0},
		{"another format version", append(append(logMagic[:7:7], 2), good...), 0},
		{"garbage after the header", append(logMagic[:], garbage...), 8},
		{"garbage after a record", slices.Concat(logMagic[:], good, garbage), int64(8 + len(good))},
		{"unknown kind", slices.Concat(logMagic[:], rawRecord([]byte{9, 0, 1})), 8},
		{"zero kind", slices.Concat(logMagic[:], good, rawRecord([]byte{0, 0, 1})), int64(8 + len(good))},
		{"put-outbound without a packet", slices.Concat(logMagic[:], rawRecord([]byte{recPutOutbound, 0, 1})), 8},
		{"delete with extra bytes", slices.Concat(logMagic[:], rawRecord([]byte{recDeleteOutbound, 0, 1, 5})), 8},
		{"impossible length", slices.Concat(logMagic[:], rawRecord([]byte{recPutInbound, 0})), 8},
		{"complete final record with a bad checksum", slices.Concat(logMagic[:], good, badLast), int64(8 + len(good))},
		{"zeros before a record", slices.Concat(logMagic[:], make([]byte, 12), good), 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _, err := openLog(t, tt.log)
			if err == nil {
				t.Fatalf("store opened with content %+v", contentOf(t, s))
			}
			var ce *CorruptStoreError
			if !errors.As(err, &ce) || !errors.Is(err, ErrCorruptStore) {
				t.Fatalf("error %v, want a *CorruptStoreError", err)
			}
			if ce.Offset != tt.offset {
				t.Fatalf("offset %d, want %d (%v)", ce.Offset, tt.offset, err)
			}
		})
	}
}

// TestFileStoreIgnoresUnfinishedCompaction: a crash before the rename
// leaves a temporary file, which must neither replace nor disturb the log.
func TestFileStoreIgnoresUnfinishedCompaction(t *testing.T) {
	log, after, _ := sampleLog(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, fileStoreLog), log, 0o600); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, fileStoreTemp)
	if err := os.WriteFile(tmp, log[:len(log)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := OpenFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, want := contentOf(t, s), after[len(after)-1]; !got.equal(want) {
		t.Fatalf("content %+v, want %+v", got, want)
	}
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary file still there: %v", err)
	}
}

// TestFileStoreCompactsAutomatically checks that a long stream of puts and
// deletes keeps the log near its compaction threshold, with the state
// intact across the compactions.
func TestFileStoreCompactsAutomatically(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	s.compactAt = 4 << 10
	packet := bytes.Repeat([]byte("m"), 100)
	rec := int64(recHeaderLen + recFixedBody + len(packet))
	var largest int64
	const n = 1000
	for i := range n {
		// The log may exceed the larger of the floor and four times the
		// live state by the one record that triggers the compaction.
		bound := max(s.compactAt, compactRatio*(s.live+rec)) + rec
		id := uint16(i % 50)
		if err := s.PutOutbound(id, packet); err != nil {
			t.Fatal(err)
		}
		if i >= 10 {
			if err := s.DeleteOutbound(uint16((i - 10) % 50)); err != nil {
				t.Fatal(err)
			}
		}
		if s.size > bound {
			t.Fatalf("after %d puts the log holds %d bytes, want at most %d", i+1, s.size, bound)
		}
		largest = max(largest, s.size)
	}
	// Without compaction the 2000 records would take about 130 KiB.
	if largest > 8<<10 {
		t.Fatalf("log reached %d bytes", largest)
	}
	want := contentOf(t, s)
	if len(want.out) != 10 {
		t.Fatalf("%d packets stored, want 10", len(want.out))
	}
	s.Close()
	if s, err = OpenFileStore(dir); err != nil {
		t.Fatal(err)
	}
	if got := contentOf(t, s); !got.equal(want) {
		t.Fatalf("after reopen: %+v, want %+v", got, want)
	}
	t.Logf("%d puts and deletes: log at most %d bytes", 2*n, largest)
}
