package mqtt

import (
	"testing"
)

func TestHandlerQueueOrderAndBound(t *testing.T) {
	q := newHandlerQueue(3)
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
		item, ok := q.pop(stop)
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
	close(stop)
	if q.push(inbound{}, stop) {
		t.Fatal("push into a full queue succeeded after stop")
	}
}

func TestHandlerQueuePushWaitsForRoom(t *testing.T) {
	q := newHandlerQueue(1)
	stop := make(chan struct{})
	q.tryPush(inbound{id: 1})
	done := make(chan bool)
	go func() { done <- q.push(inbound{id: 2}, stop) }()
	if item, _ := q.pop(stop); item.id != 1 {
		t.Fatalf("popped %d", item.id)
	}
	if !<-done {
		t.Fatal("waiting push failed after room appeared")
	}
	if item, _ := q.pop(stop); item.id != 2 {
		t.Fatalf("popped %d", item.id)
	}
}
