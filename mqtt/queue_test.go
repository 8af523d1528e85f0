package mqtt

import (
	"testing"
)

func TestHandlerQueueOrderAndBound(t *testing.T) {
	starts := 0
	q := newHandlerQueue(3, func() { starts++ })
	stop := make(chan struct{})
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
	close(stop)
	if q.push(inbound{}, stop) {
		t.Fatal("push into a full queue succeeded after stop")
	}
}

func TestHandlerQueuePushWaitsForRoom(t *testing.T) {
	q := newHandlerQueue(1, func() {})
	stop := make(chan struct{})
	q.tryPush(inbound{id: 1})
	done := make(chan bool)
	go func() { done <- q.push(inbound{id: 2}, stop) }()
	if item, _ := q.pop(); item.id != 1 {
		t.Fatalf("popped %d", item.id)
	}
	if !<-done {
		t.Fatal("waiting push failed after room appeared")
	}
	if item, _ := q.pop(); item.id != 2 {
		t.Fatalf("popped %d", item.id)
	}
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
