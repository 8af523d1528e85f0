package mqtt

import (
	"sync"
	"time"
)

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

	notEmpty chan struct{} // a push happened while a dispatcher runs
	notFull  chan struct{} // a pop happened
}

func newHandlerQueue(max int, start func()) *handlerQueue {
	return &handlerQueue{max: max, start: start, notEmpty: make(chan struct{}, 1), notFull: make(chan struct{}, 1)}
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
	} else {
		signal(q.notEmpty)
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
		select {
		case <-q.notFull:
		case <-stop:
			return false
		}
	}
}

// pop takes the oldest item, waiting up to linger for one. When none comes,
// or stop is closed and the queue is empty, it reports false and the
// dispatcher calling it must end: the next push starts another. idle is
// the caller's timer, stopped.
func (q *handlerQueue) pop(idle *time.Timer, linger time.Duration, stop <-chan struct{}) (inbound, bool) {
	armed := false
	for {
		q.mu.Lock()
		if q.head < len(q.items) {
			item := q.items[q.head]
			q.items[q.head] = inbound{}
			q.head++
			if q.head == len(q.items) {
				q.items, q.head = q.items[:0], 0
			}
			q.mu.Unlock()
			signal(q.notFull)
			if armed {
				idle.Stop()
			}
			return item, true
		}
		q.mu.Unlock()
		if !armed {
			idle.Reset(linger)
			armed = true
		}
		select {
		case <-q.notEmpty:
			continue
		case <-idle.C:
		case <-stop:
			idle.Stop()
		}
		armed = false
		q.mu.Lock()
		if q.head < len(q.items) {
			q.mu.Unlock()
			continue // pushed as the wait ended
		}
		q.running = false
		// Let the array go: a burst should not pin its size on a client
		// that has gone quiet.
		q.items, q.head = nil, 0
		q.mu.Unlock()
		return inbound{}, false
	}
}

// len is the number of queued items.
func (q *handlerQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) - q.head
}
