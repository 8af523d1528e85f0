package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/heraldiot/herald/mqtt"
	"github.com/heraldiot/herald/mqtt/packet"
)

// subscriber decides what to do with each received message: print it,
// skip it, clear it, or end the run. The client calls handle on one
// goroutine in arrival order, so output order is arrival order.
type subscriber struct {
	e *env
	f *subFlags
	p *printer

	ready chan struct{} // closed once s is set
	s     *session

	// removals are the --remove-retained publishes in flight; they run
	// beside the handler, which must not wait for a PUBACK (the reader
	// that would deliver it may be waiting for the handler).
	removals      sync.WaitGroup
	removeCtx     context.Context
	cancelRemoves context.CancelFunc

	mu       sync.Mutex
	stopped  bool
	done     chan struct{} // closed when the run has what it came for
	printed  int
	last     wireMessage // the last message handled, whose ack settle awaits
	lastQoS  mqtt.QoS
	buf      []byte
	finished sync.Once
}

func newSubscriber(e *env, f *subFlags, p *printer) *subscriber {
	ctx, cancel := context.WithCancel(context.Background())
	return &subscriber{e: e, f: f, p: p, ready: make(chan struct{}), done: make(chan struct{}),
		removeCtx: ctx, cancelRemoves: cancel}
}

// start hands over the session; until then handle waits, since a resumed
// session's messages can arrive before Connect returns.
func (s *subscriber) start(sess *session) {
	s.s = sess
	close(s.ready)
}

func (s *subscriber) handle(m *mqtt.Message) {
	<-s.ready
	wire := s.s.tap.next(m.Topic)
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	s.last, s.lastQoS = wire, m.QoS
	if s.f.retainedOnly && !m.Retain {
		s.finishLocked()
		return
	}
	filtered := s.filteredOut(m.Topic)
	if s.f.removeRetained && m.Retain && !filtered {
		s.removeRetained(m.Topic)
	}
	if filtered || (s.f.noStale && m.Retain) {
		return
	}
	var warnings []string
	s.buf, warnings = s.p.appendMessage(s.buf[:0], &delivery{msg: m, wire: wire, at: now})
	if len(s.buf) > 0 {
		_, _ = s.e.stdout.Write(s.buf)
	}
	if len(warnings) > 0 && !s.e.quiet {
		fmt.Fprintln(s.e.stderr, strings.Join(warnings, "\n"))
	}
	s.printed++
	if s.f.count > 0 && s.printed >= s.f.count {
		s.finishLocked()
	}
}

func (s *subscriber) filteredOut(topic string) bool {
	for _, f := range s.f.filterOut {
		if packet.MatchTopic(f, topic) {
			return true
		}
	}
	return false
}

// removeRetained clears a retained message with an empty retained one, at
// QoS 1 as mosquitto_sub sends it.
func (s *subscriber) removeRetained(topic string) {
	s.removals.Go(func() {
		err := s.s.client.Publish(s.removeCtx, &mqtt.Message{Topic: topic, QoS: mqtt.AtLeastOnce, Retain: true})
		if err != nil && s.removeCtx.Err() == nil && !s.e.quiet {
			fmt.Fprintf(s.e.stderr, "Warning: clearing the retained message of %s failed: %v\n", topic, err)
		}
	})
}

func (s *subscriber) finishLocked() {
	s.stopped = true
	s.finished.Do(func() { close(s.done) })
}

// stop ends message processing; later messages are acknowledged by the
// client but not printed.
func (s *subscriber) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
}

// settle waits, within disconnectTimeout, for the retained-message
// removals and for our acknowledgement of the last message handled to be
// written, so that DISCONNECT does not overtake them: a persistent session
// would otherwise get that message again.
func (s *subscriber) settle() {
	ctx, cancel := context.WithTimeout(context.Background(), disconnectTimeout)
	defer cancel()
	removed := make(chan struct{})
	go func() {
		s.removals.Wait()
		close(removed)
	}()
	select {
	case <-removed:
	case <-ctx.Done():
		s.cancelRemoves()
		<-removed
	}
	s.mu.Lock()
	last, qos := s.last, s.lastQoS
	s.mu.Unlock()
	if qos > 0 {
		_ = s.s.tap.awaitAcked(ctx, last.mid)
	}
	s.cancelRemoves()
}
