package mqtt

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
)

// FileStore is a Store in a directory, which survives the process: a client
// killed at any instant and restarted with the same client identifier and
// directory resumes its session with nothing lost and, at QoS 2, nothing
// duplicated, in the original order.
//
// The store holds the flows the client had started. Which messages the
// application had yet to hand to Publish is the application's to know: it
// can record its progress once PutOutbound has stored a PUBLISH (by wrapping
// the store), or read the stored PUBLISH packets back with Outbound at
// startup, so that no message is published again as a new one.
//
// # Design
//
// The state lives in one append-only log, session.log, which begins with an
// 8-byte magic number and then holds records:
//
//	uint32 n          length of the body (big endian)
//	uint32 CRC32C     of the 4 length bytes
//	uint32 CRC32C     of the body
//	body: kind byte, uint16 packet identifier, for put-outbound the packet
//
// Kinds are put-outbound, delete-outbound, put-inbound and delete-inbound;
// replaying them in order rebuilds the state, and an outbound packet's place
// in the log is its place in the Outbound order. Every call that changes the
// state appends one record and fsyncs before it returns, because the client
// sends a packet or acknowledges one only after the call: what the network
// saw, the disk has. The length has a checksum of its own so that a damaged
// length can never pass for a record cut short by a crash.
//
// When the log has grown past both a floor (256 KiB) and four times the live
// state, the next call first compacts it: the live state is written to
// session.log.tmp, which is fsynced and renamed over the log, and then the
// directory is fsynced. The rename is atomic and both files describe the
// same state, so a crash at any step leaves a valid log; the directory sync
// comes before any append to the new file, which could otherwise vanish with
// the rename. Reset is a compaction to the empty state. A leftover temporary
// file is a compaction that never reached its rename, and is removed at open.
//
// # Recovery
//
// Appends are serialised and each is synced before the next begins, so a
// crash can damage only the final record, and only one whose call never
// returned: nobody acted on it, and dropping it is safe. OpenFileStore
// therefore discards, truncates away and reports (TornTail) a final record
// that is incomplete (the file ends inside it) or made of zero bytes only
// (the file grew but the data never reached the disk). Anything else is
// reported as a *CorruptStoreError, wrapping ErrCorruptStore, naming the
// file and the offset of the damaged record, and the store is not opened:
// a record that checks out in length but not in content, even the final
// one, looks exactly like damage to a record whose call returned, and
// silently dropping an acknowledged record can lose or duplicate a message.
// A file damaged that way needs a person's decision, such as removing the
// directory and starting a clean session.
//
// After a failed write or sync the store refuses further changes: whether
// the record reached the disk is unknown (after a failed fsync Linux may
// have dropped the pages), and only a new OpenFileStore, which reads what
// the disk actually holds, can tell.
//
// # Locking and cost
//
// The directory is locked with flock on the file LOCK, so a second
// FileStore on the same directory, in this process or another, fails with
// ErrStoreLocked instead of interleaving its appends; the kernel releases
// the lock when the process dies. Each mutating call costs one write and one
// fsync: two for a QoS 1 publish, three for QoS 2 (PUBLISH, PUBREL, delete).
// Records are encoded into one reused buffer and deleted packets' buffers
// are reused, so steady-state traffic allocates nothing.
type FileStore struct {
	dir  string
	path string // the log

	mu        sync.Mutex
	lockFile  *os.File // holds the flock while open
	log       *os.File
	size      int64 // bytes of the log, all valid and synced
	live      int64 // bytes a compacted log of the current state takes
	compactAt int64 // below this log size there is no compaction
	torn      int64 // bytes of a torn final record discarded at open
	broken    error // a write or sync failed: no more changes
	closed    bool

	out        map[uint16]*fileEntry
	head, tail *fileEntry // outbound packets in Put order, oldest first
	free       []*fileEntry
	in         map[uint16]struct{}

	rec  []byte // the record being committed
	snap []byte // a record of a snapshot being written
}

// fileEntry is one outbound packet, linked in Put order so that replacing
// one moves it to the end without renumbering anything.
type fileEntry struct {
	id         uint16
	encoded    []byte
	prev, next *fileEntry
}

var _ Store = (*FileStore)(nil)

var (
	// ErrCorruptStore is wrapped by the errors that report a damaged file
	// store; errors.As with a *CorruptStoreError tells where.
	ErrCorruptStore = errors.New("mqtt: corrupt session store")
	// ErrStoreLocked means another FileStore, in this process or another,
	// has the directory open.
	ErrStoreLocked = errors.New("mqtt: session store in use by another FileStore")
)

// CorruptStoreError reports where a FileStore's log is damaged.
type CorruptStoreError struct {
	// Path is the damaged file.
	Path string
	// Offset is where the damaged record (or, at 0, the file header) starts.
	Offset int64
	// Reason says what failed to check out.
	Reason string
}

// Error names the file, the offset and the damage.
func (e *CorruptStoreError) Error() string {
	return fmt.Sprintf("%v: %s at offset %d: %s", ErrCorruptStore, e.Path, e.Offset, e.Reason)
}

// Unwrap returns ErrCorruptStore.
func (e *CorruptStoreError) Unwrap() error { return ErrCorruptStore }

const (
	fileStoreLog  = "session.log"
	fileStoreTemp = "session.log.tmp"
	fileStoreLock = "LOCK"

	logHeaderLen = 8
	recHeaderLen = 12
	recFixedBody = 3 // kind and packet identifier
	// maxRecordBody bounds a body: the largest MQTT packet (a 5-byte fixed
	// header and 268,435,455 bytes) after the fixed part.
	maxRecordBody = recFixedBody + 5 + 268_435_455

	defaultCompactAt = 256 << 10
	// compactRatio is how many times larger than the live state the log
	// may grow: larger means fewer compactions, smaller a smaller file.
	compactRatio = 4
)

// Record kinds. Zero is not one, so a zeroed body never parses.
const (
	recPutOutbound    byte = 1
	recDeleteOutbound byte = 2
	recPutInbound     byte = 3
	recDeleteInbound  byte = 4
)

// logMagic opens every log; the last byte is the format version.
var logMagic = [logHeaderLen]byte{'H', 'R', 'L', 'D', 'S', 'E', 'S', 1}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errTornRecord marks a final record cut short by a crash; it never leaves
// this file.
var errTornRecord = errors.New("torn final record")

// OpenFileStore opens the store in dir, creating dir and an empty store if
// needed, and locks it until Close. A damaged log is reported with a
// *CorruptStoreError and not opened.
func OpenFileStore(dir string) (*FileStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("mqtt: open session store: %w", err)
	}
	lockFile, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	s := &FileStore{
		dir:       dir,
		path:      filepath.Join(dir, fileStoreLog),
		lockFile:  lockFile,
		compactAt: defaultCompactAt,
		out:       make(map[uint16]*fileEntry),
		in:        make(map[uint16]struct{}),
	}
	s.live = logHeaderLen
	if err := s.load(); err != nil {
		if s.log != nil {
			s.log.Close()
		}
		lockFile.Close()
		return nil, err
	}
	return s, nil
}

// load rebuilds the state from the log, creating an empty log if there is
// none, and cuts off a torn final record.
func (s *FileStore) load() error {
	tmp := filepath.Join(s.dir, fileStoreTemp)
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("mqtt: open session store: %w", err)
	}
	f, err := os.OpenFile(s.path, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		// A log is only ever created by a rename, after its header is
		// synced, so a missing log is a new store, never a lost one.
		return s.compact(false)
	}
	if err != nil {
		return fmt.Errorf("mqtt: open session store: %w", err)
	}
	s.log = f
	b, err := io.ReadAll(f)
	if err != nil {
		return fmt.Errorf("mqtt: read session store: %w", err)
	}
	good, err := s.replay(b)
	if err != nil {
		return err
	}
	if good < int64(len(b)) {
		// Truncate before the next append, which would otherwise land
		// after the torn bytes and turn them into damage mid-log.
		if err := f.Truncate(good); err != nil {
			return fmt.Errorf("mqtt: cut torn record from session store: %w", err)
		}
		if err := f.Sync(); err != nil {
			return fmt.Errorf("mqtt: cut torn record from session store: %w", err)
		}
		s.torn = int64(len(b)) - good
	}
	s.size = good
	return nil
}

// replay applies the records of the log b and returns how many bytes of it
// are valid: all of them, or all but a torn final record.
func (s *FileStore) replay(b []byte) (int64, error) {
	if len(b) < logHeaderLen || [logHeaderLen]byte(b[:logHeaderLen]) != logMagic {
		// Never torn: the header is synced before the log gets its name.
		return 0, &CorruptStoreError{Path: s.path, Reason: "not a session store log (bad magic number)"}
	}
	off := logHeaderLen
	for off < len(b) {
		rec, n, err := decodeRecord(b[off:])
		if err == errTornRecord {
			return int64(off), nil
		}
		if err == nil {
			err = s.apply(rec)
		}
		if err != nil {
			return 0, &CorruptStoreError{Path: s.path, Offset: int64(off), Reason: err.Error()}
		}
		off += n
	}
	return int64(off), nil
}

// record is one decoded log record; encoded aliases the log.
type record struct {
	kind    byte
	id      uint16
	encoded []byte
}

// appendRecord encodes a record and appends it to dst.
func appendRecord(dst []byte, kind byte, id uint16, encoded []byte) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, kind, byte(id>>8), byte(id))
	dst = append(dst, encoded...)
	h, body := dst[start:start+recHeaderLen], dst[start+recHeaderLen:]
	binary.BigEndian.PutUint32(h[0:4], uint32(len(body)))
	binary.BigEndian.PutUint32(h[4:8], crc32.Checksum(h[0:4], castagnoli))
	binary.BigEndian.PutUint32(h[8:12], crc32.Checksum(body, castagnoli))
	return dst
}

// decodeRecord decodes the record at the start of b and returns it with its
// size. It returns errTornRecord when b ends inside the record or holds only
// zeros, and a description of the damage when the record does not check
// out. It never panics, whatever b holds.
func decodeRecord(b []byte) (record, int, error) {
	if len(b) < 8 {
		return record{}, 0, errTornRecord
	}
	n := binary.BigEndian.Uint32(b[0:4])
	if crc32.Checksum(b[0:4], castagnoli) != binary.BigEndian.Uint32(b[4:8]) {
		if allZero(b) {
			return record{}, 0, errTornRecord
		}
		return record{}, 0, errors.New("record length checksum mismatch")
	}
	if n < recFixedBody || n > maxRecordBody {
		return record{}, 0, fmt.Errorf("impossible record length %d", n)
	}
	if len(b) < recHeaderLen || uint64(len(b)-recHeaderLen) < uint64(n) {
		return record{}, 0, errTornRecord
	}
	body := b[recHeaderLen : recHeaderLen+int(n)]
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(b[8:12]) {
		return record{}, 0, errors.New("record checksum mismatch")
	}
	rec := record{kind: body[0], id: binary.BigEndian.Uint16(body[1:3]), encoded: body[recFixedBody:]}
	switch {
	case rec.kind == recPutOutbound && len(rec.encoded) == 0:
		return record{}, 0, errors.New("put-outbound record without a packet")
	case rec.kind != recPutOutbound && len(rec.encoded) != 0:
		return record{}, 0, fmt.Errorf("record of kind %d with %d extra bytes", rec.kind, len(rec.encoded))
	}
	return rec, recHeaderLen + int(n), nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// apply changes the in-memory state as rec says.
func (s *FileStore) apply(rec record) error {
	switch rec.kind {
	case recPutOutbound:
		s.putOutbound(rec.id, rec.encoded)
	case recDeleteOutbound:
		s.deleteOutbound(rec.id)
	case recPutInbound:
		s.putInbound(rec.id)
	case recDeleteInbound:
		s.deleteInbound(rec.id)
	default:
		return fmt.Errorf("unknown record kind %d", rec.kind)
	}
	return nil
}

func (s *FileStore) putOutbound(id uint16, encoded []byte) {
	e := s.out[id]
	if e != nil {
		s.unlink(e)
		s.live -= int64(recHeaderLen + recFixedBody + len(e.encoded))
	} else {
		if n := len(s.free); n > 0 {
			e, s.free = s.free[n-1], s.free[:n-1]
		} else {
			e = &fileEntry{}
		}
		e.id = id
		s.out[id] = e
	}
	e.encoded = append(e.encoded[:0], encoded...)
	s.live += int64(recHeaderLen + recFixedBody + len(e.encoded))
	e.prev = s.tail
	if s.tail != nil {
		s.tail.next = e
	} else {
		s.head = e
	}
	s.tail = e
}

func (s *FileStore) deleteOutbound(id uint16) {
	e := s.out[id]
	if e == nil {
		return
	}
	delete(s.out, id)
	s.unlink(e)
	s.live -= int64(recHeaderLen + recFixedBody + len(e.encoded))
	s.free = append(s.free, e)
}

func (s *FileStore) unlink(e *fileEntry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		s.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		s.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (s *FileStore) putInbound(id uint16) {
	if _, ok := s.in[id]; !ok {
		s.in[id] = struct{}{}
		s.live += recHeaderLen + recFixedBody
	}
}

func (s *FileStore) deleteInbound(id uint16) {
	if _, ok := s.in[id]; ok {
		delete(s.in, id)
		s.live -= recHeaderLen + recFixedBody
	}
}

// writable reports why the store cannot take changes, if it cannot.
// s.mu is held.
func (s *FileStore) writable() error {
	if s.closed {
		return fmt.Errorf("mqtt: session store %s: %w", s.dir, fs.ErrClosed)
	}
	if s.broken != nil {
		return fmt.Errorf("mqtt: session store %s unusable after an earlier failure: %w", s.dir, s.broken)
	}
	return nil
}

// commit makes the record in s.rec durable at the end of the log,
// compacting first when the log has grown too large. s.mu is held.
func (s *FileStore) commit() error {
	next := s.size + int64(len(s.rec))
	if next > s.compactAt && next > compactRatio*s.live {
		if err := s.compact(false); err != nil {
			return err
		}
	}
	if _, err := s.log.WriteAt(s.rec, s.size); err != nil {
		return s.fail(err)
	}
	if err := s.log.Sync(); err != nil {
		return s.fail(err)
	}
	s.size += int64(len(s.rec))
	return nil
}

// fail makes the store refuse further changes. s.mu is held.
func (s *FileStore) fail(err error) error {
	s.broken = err
	return fmt.Errorf("mqtt: write session store %s: %w", s.dir, err)
}

// compact replaces the log with one holding only the live state, or
// nothing when empty is set, and makes it the log to append to. On an
// error before the rename the old log stays in use; after it, the store
// is broken. s.mu is held.
func (s *FileStore) compact(empty bool) error {
	tmp := filepath.Join(s.dir, fileStoreTemp)
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("mqtt: compact session store: %w", err)
	}
	size, err := s.writeSnapshot(f, empty)
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = os.Rename(tmp, s.path)
	}
	if err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("mqtt: compact session store: %w", err)
	}
	// Until the directory is synced a crash may bring back the old log,
	// which holds the same state but not what would be appended to the
	// new one: so no append before this succeeds.
	if err := syncDir(s.dir); err != nil {
		f.Close()
		return s.fail(err)
	}
	if s.log != nil {
		s.log.Close()
	}
	s.log, s.size = f, size
	return nil
}

// writeSnapshot writes a log of the current state (or an empty one) to f
// and returns its size.
func (s *FileStore) writeSnapshot(f *os.File, empty bool) (int64, error) {
	w := bufio.NewWriterSize(f, 64<<10)
	size := int64(logHeaderLen)
	w.Write(logMagic[:])
	if !empty {
		ids := make([]uint16, 0, len(s.in))
		for id := range s.in {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			s.snap = appendRecord(s.snap[:0], recPutInbound, id, nil)
			w.Write(s.snap)
			size += int64(len(s.snap))
		}
		for e := s.head; e != nil; e = e.next {
			s.snap = appendRecord(s.snap[:0], recPutOutbound, e.id, e.encoded)
			w.Write(s.snap)
			size += int64(len(s.snap))
		}
	}
	// bufio.Writer keeps the first write error and Flush returns it.
	return size, w.Flush()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// PutOutbound implements Store. The packet is on disk when it returns.
func (s *FileStore) PutOutbound(id uint16, encoded []byte) error {
	if len(encoded) == 0 {
		return errors.New("mqtt: session store: empty packet")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writable(); err != nil {
		return err
	}
	s.rec = appendRecord(s.rec[:0], recPutOutbound, id, encoded)
	if err := s.commit(); err != nil {
		return err
	}
	s.putOutbound(id, encoded)
	return nil
}

// DeleteOutbound implements Store.
func (s *FileStore) DeleteOutbound(id uint16) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writable(); err != nil {
		return err
	}
	if _, ok := s.out[id]; !ok {
		return nil
	}
	s.rec = appendRecord(s.rec[:0], recDeleteOutbound, id, nil)
	if err := s.commit(); err != nil {
		return err
	}
	s.deleteOutbound(id)
	return nil
}

// Outbound implements Store. It calls fn without holding the store's lock,
// so fn may change the store.
func (s *FileStore) Outbound(fn func(id uint16, encoded []byte) bool) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("mqtt: session store %s: %w", s.dir, fs.ErrClosed)
	}
	type span struct {
		id         uint16
		start, end int
	}
	total, n := 0, 0
	for e := s.head; e != nil; e = e.next {
		total += len(e.encoded)
		n++
	}
	// One buffer and one index, whatever the number of packets.
	buf := make([]byte, 0, total)
	spans := make([]span, 0, n)
	for e := s.head; e != nil; e = e.next {
		start := len(buf)
		buf = append(buf, e.encoded...)
		spans = append(spans, span{e.id, start, len(buf)})
	}
	s.mu.Unlock()
	for _, sp := range spans {
		if !fn(sp.id, buf[sp.start:sp.end:sp.end]) {
			break
		}
	}
	return nil
}

// PutInbound implements Store.
func (s *FileStore) PutInbound(id uint16) error {
	return s.changeInbound(recPutInbound, id)
}

// DeleteInbound implements Store.
func (s *FileStore) DeleteInbound(id uint16) error {
	return s.changeInbound(recDeleteInbound, id)
}

func (s *FileStore) changeInbound(kind byte, id uint16) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writable(); err != nil {
		return err
	}
	if _, ok := s.in[id]; ok == (kind == recPutInbound) {
		return nil // already so: nothing to write
	}
	s.rec = appendRecord(s.rec[:0], kind, id, nil)
	if err := s.commit(); err != nil {
		return err
	}
	if kind == recPutInbound {
		s.putInbound(id)
	} else {
		s.deleteInbound(id)
	}
	return nil
}

// Inbound implements Store. It calls fn without holding the store's lock,
// so fn may change the store (the client deletes inbound state from within
// the walk when the server has lost the session).
func (s *FileStore) Inbound(fn func(id uint16) bool) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("mqtt: session store %s: %w", s.dir, fs.ErrClosed)
	}
	ids := sortedIDs(s.in)
	s.mu.Unlock()
	eachID(ids, fn)
	return nil
}

// Reset implements Store. It replaces the log with an empty one, so the
// old state is gone from the disk at once and in one atomic step.
func (s *FileStore) Reset() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writable(); err != nil {
		return err
	}
	if len(s.out) == 0 && len(s.in) == 0 {
		return nil // the disk holds the empty state already
	}
	if err := s.compact(true); err != nil {
		return err
	}
	for id := range s.out {
		s.deleteOutbound(id)
	}
	for id := range s.in {
		s.deleteInbound(id)
	}
	return nil
}

// Compact rewrites the log to hold only the live state. The store does this
// by itself as the log grows; calling it is useful before copying the
// directory, or to shrink the file at shutdown.
func (s *FileStore) Compact() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writable(); err != nil {
		return err
	}
	return s.compact(false)
}

// TornTail reports how many bytes OpenFileStore cut off the end of the log:
// an incomplete final record, the trace of a crash during an append whose
// caller never got an answer. It is 0 after a clean shutdown; applications
// may log it.
func (s *FileStore) TornTail() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.torn
}

// Close releases the store and its directory lock. Everything was already
// on disk; further calls fail.
func (s *FileStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var err error
	if s.log != nil {
		err = s.log.Close()
	}
	// Closing the file releases the flock.
	return errors.Join(err, s.lockFile.Close())
}
