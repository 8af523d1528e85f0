package mqtt

import "sync"

// handlerQueue is the bounded FIFO between the connection's reader and the
// dispatcher. Unlike a buffered channel it takes memory only for what it
// holds, which matters for the many clients that are mostly idle.
type handlerQueue struct {
	mu    sync.Mutex
	items []inbound // items[head:] are queued
	head  int
	max   int

	notEmpty chan struct{} // a push happened
	notFull  chan struct{} // a pop happened
}

func newHandlerQueue(max int) *handlerQueue {
	return &handlerQueue{max: max, notEmpty: make(chan struct{}, 1), notFull: make(chan struct{}, 1)}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// tryPush queues item unless the queue is full.
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
	q.mu.Unlock()
	signal(q.notEmpty)
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

// pop takes the oldest item, waiting until there is one or stop is closed.
func (q *handlerQueue) pop(stop <-chan struct{}) (inbound, bool) {
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
			return item, true
		}
		q.mu.Unlock()
		select {
		case <-q.notEmpty:
		case <-stop:
			return inbound{}, false
		}
	}
}

// len is the number of queued items.
func (q *handlerQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) - q.head
}
