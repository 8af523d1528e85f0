package mqtt

import (
	"slices"
	"sync"
)

// Store keeps the session state that must outlive a connection: outbound
// PUBLISH and PUBREL packets not yet acknowledged, and the identifiers of
// inbound QoS 2 messages received but not yet released. A Store that
// survives the process (a file store) lets a restarted client resume its
// session without loss or QoS 2 duplicates.
//
// The client serialises its calls; implementations need not be safe for
// concurrent use by several clients.
type Store interface {
	// PutOutbound records the encoded packet (PUBLISH or PUBREL) in flight
	// under id, replacing any earlier packet with that id. The store must
	// copy the bytes. Outbound lists packets in the order of the Put calls.
	PutOutbound(id uint16, encoded []byte) error
	// DeleteOutbound forgets the packet in flight under id.
	DeleteOutbound(id uint16) error
	// Outbound calls fn for each packet in flight, oldest first, until fn
	// returns false. encoded is valid only during the call. fn takes the
	// connection's write lock, so an implementation must not hold a lock
	// of its own while it calls fn (both stores here copy the list first).
	Outbound(fn func(id uint16, encoded []byte) bool) error

	// PutInbound records that the QoS 2 message id was received and
	// delivered; DeleteInbound forgets it at PUBREL.
	PutInbound(id uint16) error
	DeleteInbound(id uint16) error
	// Inbound calls fn for each recorded inbound id.
	Inbound(fn func(id uint16) bool) error

	// Reset forgets everything: the server has no session for us.
	Reset() error
}

// MemoryStore is a Store in memory: the session survives reconnects but not
// the process. Its zero value is ready to use. After warm-up it allocates
// nothing: buffers of deleted packets are reused.
type MemoryStore struct {
	mu      sync.Mutex
	seq     uint64
	out     map[uint16]*storedPacket
	free    []*storedPacket
	inbound map[uint16]struct{}
}

type storedPacket struct {
	seq     uint64
	encoded []byte
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore { return &MemoryStore{} }

// PutOutbound implements Store.
func (s *MemoryStore) PutOutbound(id uint16, encoded []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.out == nil {
		s.out = make(map[uint16]*storedPacket)
	}
	sp := s.out[id]
	if sp == nil {
		if n := len(s.free); n > 0 {
			sp, s.free = s.free[n-1], s.free[:n-1]
		} else {
			sp = &storedPacket{}
		}
		s.out[id] = sp
	}
	s.seq++
	sp.seq = s.seq
	sp.encoded = append(sp.encoded[:0], encoded...)
	return nil
}

// DeleteOutbound implements Store.
func (s *MemoryStore) DeleteOutbound(id uint16) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sp, ok := s.out[id]; ok {
		delete(s.out, id)
		s.free = append(s.free, sp)
	}
	return nil
}

// Outbound implements Store.
func (s *MemoryStore) Outbound(fn func(id uint16, encoded []byte) bool) error {
	s.mu.Lock()
	type entry struct {
		id uint16
		sp *storedPacket
	}
	entries := make([]entry, 0, len(s.out))
	for id, sp := range s.out {
		entries = append(entries, entry{id, &storedPacket{seq: sp.seq, encoded: slices.Clone(sp.encoded)}})
	}
	s.mu.Unlock()
	slices.SortFunc(entries, func(a, b entry) int {
		switch {
		case a.sp.seq < b.sp.seq:
			return -1
		case a.sp.seq > b.sp.seq:
			return 1
		}
		return 0
	})
	for _, e := range entries {
		if !fn(e.id, e.sp.encoded) {
			break
		}
	}
	return nil
}

// PutInbound implements Store.
func (s *MemoryStore) PutInbound(id uint16) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inbound == nil {
		s.inbound = make(map[uint16]struct{})
	}
	s.inbound[id] = struct{}{}
	return nil
}

// DeleteInbound implements Store.
func (s *MemoryStore) DeleteInbound(id uint16) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.inbound, id)
	return nil
}

// Inbound implements Store.
func (s *MemoryStore) Inbound(fn func(id uint16) bool) error {
	s.mu.Lock()
	ids := sortedIDs(s.inbound)
	s.mu.Unlock()
	eachID(ids, fn)
	return nil
}

// sortedIDs returns the packet identifiers in set in increasing order, a
// copy the caller can walk without holding the store's lock (the client
// deletes from the store while it walks).
func sortedIDs(set map[uint16]struct{}) []uint16 {
	ids := make([]uint16, 0, len(set))
	for id := range set {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// eachID calls fn for each id until it returns false.
func eachID(ids []uint16, fn func(id uint16) bool) {
	for _, id := range ids {
		if !fn(id) {
			return
		}
	}
}

// Reset implements Store.
func (s *MemoryStore) Reset() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, sp := range s.out {
		delete(s.out, id)
		s.free = append(s.free, sp)
	}
	clear(s.inbound)
	return nil
}
