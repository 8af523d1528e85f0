package mqtt_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldiot/herald/internal/testenv"
	"github.com/heraldiot/herald/mqtt"
	"github.com/heraldiot/herald/mqtt/packet"
)

// brokerLossWindow is how long before a SIGKILL the broker may have
// acknowledged a message that the kill then loses. mosquitto acknowledges a
// QoS 1 PUBLISH in the pass of its event loop that writes the message to
// the connected subscriber or, when it cannot, queues it; a queued message
// is a change, and the test broker saves its database at the end of every
// pass with one (autosave_on_changes with autosave_interval 1). At QoS 2 it
// forwards at our PUBREL, one round trip after its PUBREC. So an
// acknowledged message is on the subscriber's socket or on disk a pass or
// two later: over some 40 runs the longest gap measured between such an
// acknowledgement and the kill that lost the message was 3 ms. The window
// allows for a loaded two-core CI runner; a loss outside it is not the
// broker's save policy and fails the test.
const brokerLossWindow = 100 * time.Millisecond

// TestFaultBrokerKilled streams QoS 1 and QoS 2 messages between Herald
// clients, under MQTT 3.1.1 and 5.0 at once, while the broker (with
// persistence) is killed with SIGKILL and restarted 50 times.
//
// mosquitto acknowledges before it writes its database, and writes it only
// after changes it counts (a queued message, a subscription, a connect),
// not when a delivery completes. So a kill can lose a message it has
// acknowledged, and the restart can resend a message whose exchange had
// completed, even as new under another packet identifier, or send a new
// one under an identifier whose QoS 2 exchange the client still holds open.
// The client can prevent none of that, so the test records every packet on
// the clients' connections and holds the client to what it can be held to:
//
//   - the subscriber delivers exactly what it owes for what it read: every
//     QoS 1 PUBLISH, and every QoS 2 PUBLISH except those under a packet
//     identifier still awaiting PUBREL, which it must suppress;
//   - the publisher never sends a QoS 2 message again after its PUBREC;
//   - every Publish that returned nil was acknowledged by the broker;
//   - a message that never reached the subscriber was acknowledged by the
//     broker within brokerLossWindow before a kill;
//   - first deliveries keep each publisher's order.
//
// What the broker lost or duplicated is counted and reported. Asserting
// none of it fails on every run: with 50 kills mosquitto 2.0.11 loses
// 7–25 acknowledged messages (nearly all QoS 2 killed between PUBREC and
// PUBREL; some runs a few more that reused packet identifiers) and sends
// 15–45 QoS 2 messages a second time.
func TestFaultBrokerKilled(t *testing.T) {
	const kills = 50
	b := testenv.StartBroker(t, testenv.BrokerOptions{Persistence: true, Config: []string{
		// Each kill can leave behind, restored from the database, a QoS 2
		// message from the publisher awaiting a PUBREL that already came:
		// mosquitto counts it against the publisher's receive quota
		// forever. At the default (20) the quota runs out within the 50
		// kills, and mosquitto then refuses publishes, under 3.1.1 with a
		// PUBACK or PUBREC that says success.
		"max_inflight_messages 200",
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	var streams []*faultStream
	notify := make(chan struct{}, 1)
	for _, v := range versions {
		pubTap, subTap := &wireTap{v: v}, &wireTap{v: v}
		opts := func(id string, tap *wireTap) mqtt.Options {
			return mqtt.Options{
				// Clean Start stays off: mosquitto 2.0.11 does not restore,
				// after a restart, a v5 session that began with Clean Start
				// (eclipse-mosquitto/mosquitto#2265).
				Version: v, ClientID: fmt.Sprintf("%s-v%s", id, v), SessionExpiry: time.Hour,
				Dialer:  tap.dial,
				Backoff: mqtt.Backoff{Min: 5 * time.Millisecond, Max: 50 * time.Millisecond},
			}
		}
		sub := dial(t, b, opts("fault-sub", subTap))
		pub := dial(t, b, opts("fault-pub", pubTap))
		for _, qos := range []mqtt.QoS{mqtt.AtLeastOnce, mqtt.ExactlyOnce} {
			s := newFaultStream(fmt.Sprintf("fault/v%s/q%d", v, qos), qos, pub, pubTap, subTap)
			handler := func(m *mqtt.Message) {
				s.handle(t, m)
				select {
				case notify <- struct{}{}:
				default:
				}
			}
			if err := sub.Subscribe(ctx, handler, mqtt.Subscription{Filter: s.topic, QoS: qos}); err != nil {
				t.Fatal(err)
			}
			streams = append(streams, s)
		}
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for _, s := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.publish(ctx, stop)
		}()
	}

	// await waits until cond holds, re-checking after every delivery.
	await := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.After(15 * time.Second)
		for !cond() {
			select {
			case <-notify:
			case <-deadline:
				for _, s := range streams {
					t.Logf("%s: %s; publisher connected %t", s.topic, s.progressString(), s.pub.IsConnected())
				}
				t.Fatalf("%s: not reached within 15s", what)
			}
		}
	}
	// advance waits until every stream has delivered n more messages.
	advance := func(what string, n int) {
		t.Helper()
		base := make([]int, len(streams))
		for i, s := range streams {
			base[i] = s.distinct()
		}
		await(what, func() bool {
			for i, s := range streams {
				if s.distinct() < base[i]+n {
					return false
				}
			}
			return true
		})
	}

	began := time.Now()
	var killed []killTime
	for k := range kills {
		// A random amount of traffic between kills lands them at
		// different points of the QoS flows.
		advance(fmt.Sprintf("before kill %d", k+1), 1+rand.IntN(40))
		var kt killTime
		kt.start = time.Now()
		if err := b.Kill(); err != nil {
			t.Fatal(err)
		}
		kt.end = time.Now()
		killed = append(killed, kt)
		if err := b.Start(); err != nil {
			t.Fatal(err)
		}
	}
	advance("after the last restart", 20)
	close(stop)
	// The end markers travel behind every message on their topics, so once
	// they are in, whatever else was going to arrive has.
	await("end markers", func() bool {
		for _, s := range streams {
			if !s.isEnded() {
				return false
			}
		}
		return true
	})
	cancel()
	wg.Wait()
	elapsed := time.Since(began)

	var total faultReport
	for _, s := range streams {
		r := s.check(killed)
		for _, f := range r.failures {
			t.Errorf("%s: %s", s.topic, f)
		}
		t.Logf("%s: %v", s.topic, r)
		total.add(r)
	}
	t.Logf("kills=%d in %v: %v", kills, elapsed.Round(time.Millisecond), total)
}

type killTime struct{ start, end time.Time }

// faultStream is one publisher's sequence of messages on one topic at one
// QoS, and what the subscriber received of it.
type faultStream struct {
	topic string
	qos   mqtt.QoS
	pub   *mqtt.Client
	ptap  *wireTap // the publisher's connections
	stap  *wireTap // the subscriber's connections
	moved chan struct{}

	mu        sync.Mutex
	sent      []error     // Publish's result, by sequence number
	delivered map[int]int // deliveries by sequence number
	order     []int       // first deliveries, in order
	highest   int         // the highest sequence number delivered
	ended     bool
}

func newFaultStream(topic string, qos mqtt.QoS, pub *mqtt.Client, ptap, stap *wireTap) *faultStream {
	return &faultStream{
		topic: topic, qos: qos, pub: pub, ptap: ptap, stap: stap,
		moved: make(chan struct{}, 1), delivered: make(map[int]int), highest: -1,
	}
}

// publishWindow bounds how many messages a stream has published but not seen
// delivered. Without it the publisher outruns the subscriber, mosquitto's
// queue for the subscriber overflows (max_queued_messages) and it drops
// messages, silently under 3.1.1.
const publishWindow = 20

func (s *faultStream) publish(ctx context.Context, stop <-chan struct{}) {
	for seq := 0; ; seq++ {
		payload := strconv.Itoa(seq)
		select {
		case <-stop:
			payload = "end"
		default:
		}
		if !s.waitRoom(ctx, seq) {
			return
		}
		err := s.pub.Publish(ctx, &mqtt.Message{Topic: s.topic, QoS: s.qos, Payload: []byte(payload)})
		if payload == "end" || ctx.Err() != nil {
			return
		}
		s.mu.Lock()
		s.sent = append(s.sent, err)
		s.mu.Unlock()
	}
}

// waitRoom waits until seq is within publishWindow of the highest delivery.
// The highest, not the count, so that a message the broker lost does not
// hold the stream up.
func (s *faultStream) waitRoom(ctx context.Context, seq int) bool {
	for {
		s.mu.Lock()
		ok := seq-s.highest <= publishWindow
		s.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-s.moved:
		case <-ctx.Done():
			return false
		}
	}
}

func (s *faultStream) handle(t *testing.T, m *mqtt.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if string(m.Payload) == "end" {
		s.ended = true
		return
	}
	seq, err := strconv.Atoi(string(m.Payload))
	if err != nil {
		t.Errorf("%s: payload %q", s.topic, m.Payload)
		return
	}
	if s.delivered[seq] == 0 {
		s.order = append(s.order, seq)
	}
	s.delivered[seq]++
	if seq > s.highest {
		s.highest = seq
		select {
		case s.moved <- struct{}{}:
		default:
		}
	}
}

func (s *faultStream) distinct() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.order)
}

func (s *faultStream) isEnded() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ended
}

func (s *faultStream) progressString() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("%d published, %d delivered, end marker %t", len(s.sent), len(s.order), s.ended)
}

// faultReport counts what happened to a stream.
type faultReport struct {
	published, delivered int
	lost                 int
	lostAcked            int           // acknowledged by the broker within brokerLossWindow before a kill
	lostReusedID         int           // sent by the broker under a QoS 2 packet identifier the client still held
	longestAckToKill     time.Duration // among lostAcked
	dupQoS1, dupQoS2     int           // extra deliveries; at QoS 2 each is a message the broker sent again as new
	clientFailures       int
	failures             []string // the first few client failures, described
}

func (r faultReport) String() string {
	return fmt.Sprintf("published=%d delivered=%d lost=%d [broker: %d acknowledged ≤%v before a kill (longest %v), %d under a packet identifier the client held] dupQoS1=%d dupQoS2=%d [broker resends] clientFailures=%d",
		r.published, r.delivered, r.lost, r.lostAcked, brokerLossWindow, r.longestAckToKill.Round(10*time.Microsecond),
		r.lostReusedID, r.dupQoS1, r.dupQoS2, r.clientFailures)
}

func (r *faultReport) add(o faultReport) {
	r.published += o.published
	r.delivered += o.delivered
	r.lost += o.lost
	r.lostAcked += o.lostAcked
	r.lostReusedID += o.lostReusedID
	r.longestAckToKill = max(r.longestAckToKill, o.longestAckToKill)
	r.dupQoS1 += o.dupQoS1
	r.dupQoS2 += o.dupQoS2
	r.clientFailures += o.clientFailures
}

// check holds the stream against the wire records; see TestFaultBrokerKilled.
func (s *faultStream) check(killed []killTime) faultReport {
	s.mu.Lock()
	defer s.mu.Unlock()
	var r faultReport
	fail := func(format string, args ...any) {
		r.clientFailures++
		if len(r.failures) < 10 {
			r.failures = append(r.failures, fmt.Sprintf(format, args...))
		}
	}
	owed, reused := s.stap.owedDeliveries()
	acks, resent := s.ptap.acknowledgements()
	for _, key := range resent {
		if topic, payload, _ := strings.Cut(key, "\x00"); topic == s.topic {
			// PUBREC acknowledged the PUBLISH [MQTT-4.3.3-3]; from then
			// on only the PUBREL goes out again [MQTT-4.3.3-6].
			fail("message %s published again after its PUBREC", payload)
		}
	}

	r.published = len(s.sent)
	for seq, err := range s.sent {
		if err != nil {
			fail("publish %d: %v", seq, err)
		}
	}
	for seq := range s.delivered {
		if seq >= len(s.sent) {
			fail("message %d delivered but never published", seq)
		}
	}
	for seq := range len(s.sent) {
		key := s.topic + "\x00" + strconv.Itoa(seq)
		got, want := s.delivered[seq], owed[key]
		switch {
		case got != want:
			fail("message %d delivered %d times, but the subscriber owed %d deliveries for what it read", seq, got, want)
		case got > 1 && s.qos == mqtt.AtLeastOnce:
			r.dupQoS1 += got - 1
		case got > 1:
			// Each was read under an identifier with no exchange open
			// at the client: the broker resent a message whose
			// exchange had completed, or released it a second time.
			r.dupQoS2 += got - 1
		case got == 0:
			r.lost++
			if reused[key] > 0 {
				r.lostReusedID++
				continue
			}
			ack, ok := acks[key]
			if !ok {
				fail("message %d lost: Publish returned, but the broker never acknowledged it", seq)
				continue
			}
			gap, ok := killAfter(killed, ack)
			switch {
			case !ok:
				fail("message %d lost: the broker acknowledged it after the last kill", seq)
				continue
			case gap > brokerLossWindow:
				fail("message %d lost: the broker acknowledged it %v before the next kill", seq, gap)
				continue
			}
			r.lostAcked++
			r.longestAckToKill = max(r.longestAckToKill, gap)
		}
	}
	r.delivered = len(s.order)
	for i := 1; i < len(s.order); i++ {
		if s.order[i] < s.order[i-1] {
			fail("first deliveries out of order: %d after %d", s.order[i], s.order[i-1])
		}
	}
	return r
}

// killAfter returns how long after at the first kill that can have lost
// what the broker acknowledged at at began: an acknowledgement read after
// a kill began was sent before it, so a kill still under way counts, with
// a gap of zero. ok is false when no kill followed.
func killAfter(killed []killTime, at time.Time) (gap time.Duration, ok bool) {
	for _, k := range killed {
		if !k.end.Before(at) {
			return max(k.start.Sub(at), 0), true
		}
	}
	return 0, false
}

// wireTap is a Dialer that records the MQTT packets crossing a client's
// connections, in the order the client read or wrote them.
type wireTap struct {
	v mqtt.Version

	mu     sync.Mutex
	conns  int
	events []wireEvent
}

type wireEvent struct {
	at      time.Time
	conn    int  // which of the client's connections
	out     bool // written by the client
	typ     packet.Type
	id      uint16
	qos     byte
	key     string // PUBLISH: topic NUL payload
	session bool   // CONNACK: session present
}

func (w *wireTap) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	w.conns++
	n := w.conns
	w.mu.Unlock()
	return &tappedConn{Conn: nc, tap: w, n: n}, nil
}

// record records the whole packets at the start of buf and returns the
// partial one left over, in buf's memory. ok is false when buf holds
// something that is not MQTT: the client's own decoder judges that, and
// the tap stops following that direction of the connection.
func (w *wireTap) record(buf []byte, conn int, out bool) (rest []byte, ok bool) {
	rest = buf
	for len(rest) > 0 {
		p, n, err := packet.Decode(rest, w.v, 0)
		if errors.Is(err, packet.ErrShortBuffer) {
			break
		}
		if err != nil {
			return nil, false
		}
		e := wireEvent{at: time.Now(), conn: conn, out: out, typ: p.Type()}
		switch p := p.(type) {
		case *packet.Publish:
			e.id, e.qos, e.key = p.PacketID, p.QoS, string(p.Topic)+"\x00"+string(p.Payload)
		case *packet.Ack:
			e.id = p.PacketID
		case *packet.Connack:
			e.session = p.SessionPresent
		}
		w.mu.Lock()
		w.events = append(w.events, e)
		w.mu.Unlock()
		rest = rest[n:]
	}
	return append(buf[:0], rest...), true
}

// owedDeliveries returns, for each topic and payload, how many times a
// subscriber must have delivered it given what it read: every QoS 1
// PUBLISH, and every QoS 2 PUBLISH but those under a packet identifier the
// client still holds from an earlier one, awaiting PUBREL, which it must
// suppress [MQTT-4.3.3-10]. It also counts the suppressed ones that carried
// a different message than the one held: the broker reused an identifier
// whose exchange it had forgotten.
func (w *wireTap) owedDeliveries() (owed, reused map[string]int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	owed, reused = make(map[string]int), make(map[string]int)
	awaitingPubrel := make(map[uint16]string)
	for _, e := range w.events {
		if e.out {
			continue
		}
		switch e.typ {
		case packet.TypeConnack:
			if !e.session {
				clear(awaitingPubrel)
			}
		case packet.TypePublish:
			if e.qos == 2 {
				if held, ok := awaitingPubrel[e.id]; ok {
					if held != e.key {
						reused[e.key]++
					}
					continue
				}
				awaitingPubrel[e.id] = e.key
			}
			owed[e.key]++
		case packet.TypePubrel:
			delete(awaitingPubrel, e.id)
		}
	}
	return owed, reused
}

// acknowledgements returns when the broker first acknowledged each message
// a publisher sent (PUBACK, or PUBREC for QoS 2: from then on the broker
// owns it), and the messages sent again after their PUBREC.
func (w *wireTap) acknowledgements() (acked map[string]time.Time, resent []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	acked = make(map[string]time.Time)
	type flow struct {
		conn int
		id   uint16
	}
	sent := make(map[flow]wireEvent)
	pubrec := make(map[string]bool)
	for _, e := range w.events {
		switch {
		case e.out && e.typ == packet.TypePublish && e.qos > 0:
			if pubrec[e.key] {
				resent = append(resent, e.key)
			}
			sent[flow{e.conn, e.id}] = e
		case !e.out && (e.typ == packet.TypePuback || e.typ == packet.TypePubrec):
			p, ok := sent[flow{e.conn, e.id}]
			if !ok {
				continue
			}
			if _, seen := acked[p.key]; !seen {
				acked[p.key] = e.at
			}
			if e.typ == packet.TypePubrec {
				pubrec[p.key] = true
			}
		}
	}
	return acked, resent
}

// tappedConn passes a connection's bytes to its wireTap.
type tappedConn struct {
	net.Conn
	tap *wireTap
	n   int

	in       []byte // the client reads from one goroutine at a time
	inBroken bool

	wmu       sync.Mutex
	out       []byte
	outBroken bool
}

func (c *tappedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 && !c.inBroken {
		var ok bool
		c.in, ok = c.tap.record(append(c.in, b[:n]...), c.n, false)
		c.inBroken = !ok
	}
	return n, err
}

// Write records before writing: the broker's answer can be read before
// Write returns.
func (c *tappedConn) Write(b []byte) (int, error) {
	c.wmu.Lock()
	if !c.outBroken {
		var ok bool
		c.out, ok = c.tap.record(append(c.out, b...), c.n, true)
		c.outBroken = !ok
	}
	c.wmu.Unlock()
	return c.Conn.Write(b)
}
