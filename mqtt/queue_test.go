package mqtt

import (
	"testing"
)

func TestHandlerQueueOrderAndBound(t *testing.T) {
	starts := 0
	q := newHandlerQueue(3, func() { starts++ })
	for i := range 3 {
		if !q.tryPush(inbound{id: uint16(i)}) {
			t.Fatalf("push %d refused below the bound", i)
		}
	}
	if q.tryPush(inbound{id: 99}) {
		t.Fatal("push accepted beyond the bound")
	}
	// Interleave pops and pushes so the ring slides.
	for i := range 100 {
		item, ok := q.pop()
		if !ok || item.id != uint16(i) {
			t.Fatalf("pop %d = %d, %v", i, item.id, ok)
		}
		if !q.tryPush(inbound{id: uint16(i + 3)}) {
			t.Fatalf("push %d refused after a pop", i+3)
		}
	}
	if q.len() != 3 {
		t.Fatalf("len %d, want 3", q.len())
	}
	if starts != 1 {
		t.Fatalf("dispatcher started %d times while one was draining, want 1", starts)
	}
	if !q.pushOver(inbound{id: 103}) || q.len() != 4 {
		t.Fatalf("pushOver beyond the bound: len %d, want 4", q.len())
	}
	left := q.close()
	if len(left) != 4 || left[0].id != 100 || left[3].id != 103 {
		t.Fatalf("close returned %v, want the 4 queued items in order", left)
	}
	if q.tryPush(inbound{}) || q.pushOver(inbound{}) {
		t.Fatal("push accepted after close")
	}
	if _, ok := q.pop(); ok {
		t.Fatal("pop returned an item after close")
	}
}

// A pusher waiting for room is signalled by a pop, by wake, and by close.
func TestHandlerQueueRoomSignals(t *testing.T) {
	q := newHandlerQueue(1, func() {})
	q.tryPush(inbound{id: 1})
	room := q.room()
	if q.tryPush(inbound{id: 2}) {
		t.Fatal("push accepted beyond the bound")
	}
	if item, _ := q.pop(); item.id != 1 {
		t.Fatalf("popped %d", item.id)
	}
	<-room
	if !q.tryPush(inbound{id: 2}) {
		t.Fatal("push refused after a pop made room")
	}
	q.wake()
	<-room
	q.unpark()
	q.close()
	<-room
}

// The dispatcher ends when the queue is empty, and the next push starts
// another; an emptied queue lets a burst's array go.
func TestHandlerQueueDispatcherComesAndGoes(t *testing.T) {
	starts := 0
	q := newHandlerQueue(1000, func() { starts++ })
	for i := range 100 {
		q.tryPush(inbound{id: uint16(i)})
	}
	for i := range 100 {
		if item, ok := q.pop(); !ok || item.id != uint16(i) {
			t.Fatalf("pop = %d, %v, want %d", item.id, ok, i)
		}
	}
	if _, ok := q.pop(); ok {
		t.Fatal("pop on an empty queue returned an item")
	}
	if q.items != nil {
		t.Errorf("an emptied queue keeps a %d-item array", cap(q.items))
	}
	q.tryPush(inbound{id: 1})
	if starts != 2 {
		t.Fatalf("push after the dispatcher ended: %d starts, want 2", starts)
	}
}
