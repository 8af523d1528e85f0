package mqtt

import (
	"sync"
	"sync/atomic"
)

// handlerQueue is the FIFO between the connection's reader and the
// dispatcher. Unlike a buffered channel it takes memory only for what it
// holds, and a dispatcher runs only while it holds something, which
// matters for the many clients that are mostly idle.
//
// Its bound, max, is what tryPush respects; whether the reader then waits
// for room, drops the message or queues it anyway is the client's policy
// (Client.enqueueFull), which pushOver serves.
type handlerQueue struct {
	mu      sync.Mutex
	items   []inbound // items[head:] are queued
	head    int
	max     int
	running bool   // a dispatcher is draining the queue
	closed  bool   // Disconnect: nothing is queued or popped any more
	start   func() // starts a dispatcher; called under mu (see tryPush)

	notFull chan struct{} // a pop happened, or wake; made by the first pusher to wait
	// parked is set while a pusher waits on notFull, so wake costs the
	// many callers that never meet a waiting pusher one atomic load. There
	// is one pusher at a time: a connection's reader, and a new connection
	// is made only once the last one's reader has ended (Client.supervise).
	parked atomic.Bool
}

// keptQueueCapacity is the largest array an emptied queue keeps for the
// next message.
const keptQueueCapacity = 16

func newHandlerQueue(max int, start func()) *handlerQueue {
	return &handlerQueue{max: max, start: start}
}

// signalChan returns the signal channel *ch, making it first: signal
// channels that only a rare wait needs are made by that wait. The caller
// holds the lock that guards *ch.
func signalChan(ch *chan struct{}) chan struct{} {
	if *ch == nil {
		*ch = make(chan struct{}, 1)
	}
	return *ch
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// tryPush queues item unless the queue is full or closed.
func (q *handlerQueue) tryPush(item inbound) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || len(q.items)-q.head >= q.max {
		return false
	}
	q.appendLocked(item)
	return true
}

// pushOver queues item whatever the bound, unless the queue is closed.
func (q *handlerQueue) pushOver(item inbound) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false
	}
	q.appendLocked(item)
	return true
}

// appendLocked queues item and starts a dispatcher when none runs. The
// start happens under mu, so close, which Disconnect calls before it waits
// for the dispatcher, orders every start before that wait.
func (q *handlerQueue) appendLocked(item inbound) {
	if q.head > 0 && q.head >= len(q.items)/2 {
		// Slide the live part down instead of growing forever.
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	q.items = append(q.items, item)
	if !q.running {
		q.running = true
		q.start()
	}
}

// room marks the caller as a pusher waiting for room and returns the
// channel that is signalled by the next pop, wake or close. The caller
// tries to push again after taking it, so a pop in between is not missed,
// and calls unpark when it stops waiting.
func (q *handlerQueue) room() <-chan struct{} {
	q.parked.Store(true)
	q.mu.Lock()
	defer q.mu.Unlock()
	return signalChan(&q.notFull)
}

func (q *handlerQueue) unpark() { q.parked.Store(false) }

// wake signals a waiting pusher, if there is one, to look again at what
// it waits for.
func (q *handlerQueue) wake() {
	if !q.parked.Load() {
		return
	}
	q.mu.Lock()
	if q.notFull != nil {
		signal(q.notFull)
	}
	q.mu.Unlock()
}

// pop takes the oldest item. When there is none, or the queue is closed,
// it reports false, and the dispatcher calling it must end: the next push
// starts another. Like the writer, a dispatcher does not wait for work;
// see writeLoop for why.
func (q *handlerQueue) pop() (inbound, bool) {
	q.mu.Lock()
	if q.closed || q.head == len(q.items) {
		q.running = false
		q.items, q.head = q.items[:0], 0
		if cap(q.items) > keptQueueCapacity {
			// A burst should not pin its size on a client that has
			// gone quiet.
			q.items = nil
		}
		q.mu.Unlock()
		return inbound{}, false
	}
	item := q.items[q.head]
	q.items[q.head] = inbound{}
	q.head++
	notFull := q.notFull
	q.mu.Unlock()
	if notFull != nil {
		signal(notFull)
	}
	return item, true
}

// close stops the queue for good and returns what it held: no dispatcher
// starts from now on, and one that runs ends at its next pop.
func (q *handlerQueue) close() []inbound {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	left := q.items[q.head:]
	q.items, q.head = nil, 0
	if q.notFull != nil {
		signal(q.notFull)
	}
	return left
}

// reopen undoes close, for a client started again after Disconnect. A
// dispatcher of the earlier start that still runs a handler (Disconnect
// stopped waiting for it) serves the new items when it returns, so there
// is still one dispatcher at a time.
func (q *handlerQueue) reopen() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = false
}

// len is the number of queued items.
func (q *handlerQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) - q.head
}
