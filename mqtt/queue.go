package mqtt

import "sync"

// handlerQueue is the bounded FIFO between the connection's reader and the
// dispatcher. Unlike a buffered channel it takes memory only for what it
// holds, and a dispatcher runs only while it holds something, which
// matters for the many clients that are mostly idle.
type handlerQueue struct {
	mu      sync.Mutex
	items   []inbound // items[head:] are queued
	head    int
	max     int
	running bool   // a dispatcher is draining the queue
	start   func() // starts a dispatcher

	notFull chan struct{} // a pop happened; made by the first push to wait
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

// tryPush queues item unless the queue is full, starting a dispatcher
// when none runs.
func (q *handlerQueue) tryPush(item inbound) bool {
	q.mu.Lock()
	if len(q.items)-q.head >= q.max {
		q.mu.Unlock()
		return false
	}
	if q.head > 0 && q.head >= len(q.items)/2 {
		// Slide the live part down instead of growing forever.
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	q.items = append(q.items, item)
	start := !q.running
	q.running = true
	q.mu.Unlock()
	if start {
		q.start()
	}
	return true
}

// push queues item, waiting for room until stop is closed. It reports
// whether the item was queued.
func (q *handlerQueue) push(item inbound, stop <-chan struct{}) bool {
	for {
		if q.tryPush(item) {
			return true
		}
		q.mu.Lock()
		notFull := signalChan(&q.notFull)
		q.mu.Unlock()
		select {
		case <-notFull:
		case <-stop:
			return false
		}
	}
}

// pop takes the oldest item. When there is none it reports false, and the
// dispatcher calling it must end: the next push starts another. Like the
// writer, a dispatcher does not wait for work; see writeLoop for why.
func (q *handlerQueue) pop() (inbound, bool) {
	q.mu.Lock()
	if q.head == len(q.items) {
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

// len is the number of queued items.
func (q *handlerQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) - q.head
}
