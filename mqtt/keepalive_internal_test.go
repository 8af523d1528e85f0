package mqtt

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/heraldiot/herald/mqtt/packet"
)

// keepAliveConn is a connection whose keepalive steps the test takes by
// hand, on a clock it sets: no timer and no writer run, so the pings it
// sends are only counted.
func keepAliveConn(t *testing.T, keepAlive, pingTimeout time.Duration, start time.Time) *conn {
	t.Helper()
	nc, peer := net.Pipe()
	t.Cleanup(func() { nc.Close(); peer.Close() })
	c := &Client{opts: Options{MaxWriteBuffer: 1 << 20}}
	cn := newConn(c, nc, nil)
	cn.keepAlive, cn.pingTimeout = keepAlive, pingTimeout
	cn.early = max(min(keepAlive, pingTimeout)/8, 10*time.Millisecond)
	cn.writing = true // pings stay in the buffer
	cn.lastSend.Store(start.UnixNano())
	cn.lastRecv.Store(start.UnixNano())
	return cn
}

func pingsSent(cn *conn) uint64 {
	return cn.c.stats.sent[packet.TypePingreq].packets.Load()
}

// A ping timeout longer than the keepalive must not hold back the next
// PINGREQ: the server drops a client that sends nothing for 1.5× the
// keepalive, whether or not its last ping was answered. The link is
// declared dead only when the first unanswered ping times out.
func TestLongPingTimeoutKeepsPinging(t *testing.T) {
	const ka, pt = time.Second, 3 * time.Second
	t0 := time.Unix(1_000_000, 0)
	cn := keepAliveConn(t, ka, pt, t0)

	for i := 1; i <= 3; i++ {
		now := t0.Add(time.Duration(i) * ka)
		next, err := cn.keepAliveStep(now)
		if err != nil {
			t.Fatalf("after %v without an answer: %v, want another ping (timeout is %v)", now.Sub(t0), err, pt)
		}
		if got := pingsSent(cn); got != uint64(i) {
			t.Fatalf("after %v of silence %d PINGREQs were sent, want %d (one per keepalive)", now.Sub(t0), got, i)
		}
		if next > ka {
			t.Fatalf("next check in %v, later than the keepalive %v", next, ka)
		}
	}
	// The first ping went out at t0+1s: its timeout ends at t0+4s.
	if _, err := cn.keepAliveStep(t0.Add(ka + pt)); !errors.Is(err, ErrKeepAliveTimeout) {
		t.Fatalf("the first ping unanswered for the whole ping timeout: got %v, want ErrKeepAliveTimeout", err)
	}
}

// An answer clears the outstanding ping, and the clocks start again from
// the last traffic.
func TestPingAnswerRestartsKeepAlive(t *testing.T) {
	const ka, pt = time.Second, 3 * time.Second
	t0 := time.Unix(1_000_000, 0)
	cn := keepAliveConn(t, ka, pt, t0)
	if _, err := cn.keepAliveStep(t0.Add(ka)); err != nil || pingsSent(cn) != 1 {
		t.Fatalf("first keepalive step: err %v, %d pings, want one ping", err, pingsSent(cn))
	}
	cn.lastRecv.Store(t0.Add(1500 * time.Millisecond).UnixNano()) // PINGRESP
	next, err := cn.keepAliveStep(t0.Add(1600 * time.Millisecond))
	if err != nil || pingsSent(cn) != 1 {
		t.Fatalf("step after the answer: err %v, %d pings, want no new ping", err, pingsSent(cn))
	}
	if cn.pingSent.Load() != 0 {
		t.Fatal("the answered ping is still outstanding")
	}
	if want := ka - 600*time.Millisecond - cn.early; next != want {
		t.Fatalf("next check in %v, want %v (a keepalive after the ping was sent)", next, want)
	}
	// Long after the answer, silence is still not death: only a ping's
	// timeout is.
	if _, err := cn.keepAliveStep(t0.Add(10 * ka)); err != nil {
		t.Fatalf("a quiet link with no ping outstanding: %v, want a new ping", err)
	}
	if pingsSent(cn) != 2 {
		t.Fatalf("%d pings, want 2", pingsSent(cn))
	}
}
