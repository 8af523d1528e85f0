package mqtt

import (
	"testing"
	"time"
)

// stoppedTimer is a dispatcher's idle timer as dispatch makes it.
func stoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}

func TestHandlerQueueOrderAndBound(t *testing.T) {
	starts := 0
	q := newHandlerQueue(3, func() { starts++ })
	idle, stop := stoppedTimer(), make(chan struct{})
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
		item, ok := q.pop(idle, time.Hour, stop)
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
	// Stopping drains what is queued before the dispatcher ends.
	for i := range 3 {
		if item, ok := q.pop(idle, time.Hour, stop); !ok || item.id != uint16(100+i) {
			t.Fatalf("pop after stop = %d, %v, want %d", item.id, ok, 100+i)
		}
	}
	if _, ok := q.pop(idle, time.Hour, stop); ok {
		t.Fatal("pop on an empty, stopped queue did not end the dispatcher")
	}
}

func TestHandlerQueuePushWaitsForRoom(t *testing.T) {
	q := newHandlerQueue(1, func() {})
	idle, stop := stoppedTimer(), make(chan struct{})
	q.tryPush(inbound{id: 1})
	done := make(chan bool)
	go func() { done <- q.push(inbound{id: 2}, stop) }()
	if item, _ := q.pop(idle, time.Hour, stop); item.id != 1 {
		t.Fatalf("popped %d", item.id)
	}
	if !<-done {
		t.Fatal("waiting push failed after room appeared")
	}
	if item, _ := q.pop(idle, time.Hour, stop); item.id != 2 {
		t.Fatalf("popped %d", item.id)
	}
}

// An idle dispatcher ends after its linger, and the next push starts a new
// one; a push during the linger reaches the waiting one instead.
func TestHandlerQueueDispatcherComesAndGoes(t *testing.T) {
	starts := 0
	q := newHandlerQueue(10, func() { starts++ })
	idle, stop := stoppedTimer(), make(chan struct{})
	q.tryPush(inbound{id: 1})
	if item, ok := q.pop(idle, time.Hour, stop); !ok || item.id != 1 {
		t.Fatalf("pop = %d, %v", item.id, ok)
	}
	pushed := make(chan struct{})
	go func() {
		q.tryPush(inbound{id: 2})
		close(pushed)
	}()
	if item, ok := q.pop(idle, time.Hour, stop); !ok || item.id != 2 {
		t.Fatalf("pop while lingering = %d, %v", item.id, ok)
	}
	<-pushed
	if starts != 1 {
		t.Fatalf("a push during the linger started a dispatcher (%d starts)", starts)
	}
	if _, ok := q.pop(idle, time.Millisecond, stop); ok {
		t.Fatal("pop on an empty queue returned an item")
	}
	if q.items != nil {
		t.Error("an ended dispatcher's queue keeps its array")
	}
	q.tryPush(inbound{id: 3})
	if starts != 2 {
		t.Fatalf("push after the dispatcher ended: %d starts, want 2", starts)
	}
}
