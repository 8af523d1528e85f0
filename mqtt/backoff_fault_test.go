package mqtt_test

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/heraldiot/herald/internal/testenv"
	"github.com/heraldiot/herald/mqtt"
)

// TestFaultKeepAliveBusyLink blackholes a link that carries traffic both
// ways up to the moment it dies, the worst case for detection: the last
// PINGREQ is due a whole keepalive after the blackhole, its answer half of
// one later. (TestKeepAliveDetectsSilentLink covers an idle link.) Outbound
// QoS 0 traffic must not hide the silence inbound, and once the link works
// again the client reconnects and completes a QoS 1 publish it had in flight.
func TestFaultKeepAliveBusyLink(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	for _, v := range versions {
		t.Run("v"+v.String(), func(t *testing.T) {
			ctx := testContext(t)
			proxy := testenv.StartProxy(t, b.Addr)
			const ka = time.Second
			lost := make(chan error, 1)
			connected := make(chan struct{}, 1)
			got := newCollector()
			c := dial(t, b, mqtt.Options{
				Version: v, ClientID: "busy-" + v.String(), Servers: []string{proxy.URL()},
				// The session, with our subscription, outlives the link.
				SessionExpiry: time.Minute,
				KeepAlive:     ka,
				Backoff:       mqtt.Backoff{Min: 20 * time.Millisecond, Max: 100 * time.Millisecond},
				OnConnectionLost: func(_ *mqtt.Client, err error) {
					// Mend the link before the supervisor redials, so the
					// reconnect does not wait out a swallowed CONNECT.
					proxy.Restore()
					lost <- err
				},
				OnConnect: func(*mqtt.Client, *mqtt.Connack) {
					select {
					case connected <- struct{}{}:
					default:
					}
				},
			})
			<-connected
			topic := "busy/" + v.String()
			if err := c.Subscribe(ctx, got.handle, mqtt.Subscription{Filter: topic + "/#", QoS: mqtt.AtLeastOnce}); err != nil {
				t.Fatal(err)
			}

			// A steady QoS 0 stream to ourselves: traffic out and in.
			stop := make(chan struct{})
			var wg sync.WaitGroup
			defer wg.Wait()
			defer close(stop)
			wg.Add(1)
			go func() {
				defer wg.Done()
				tick := time.NewTicker(10 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
						// Fails while disconnected; the stream resumes after.
						_ = c.Publish(ctx, &mqtt.Message{Topic: topic + "/stream", Payload: []byte("x")})
					}
				}
			}()
			for range 5 {
				got.next(t)
			}

			proxy.Blackhole()
			blackholed := time.Now()
			published := make(chan error, 1)
			go func() {
				published <- c.Publish(ctx, &mqtt.Message{Topic: topic + "/inflight", QoS: mqtt.AtLeastOnce, Payload: []byte("kept")})
			}()
			select {
			case err := <-lost:
				d := time.Since(blackholed)
				if !errors.Is(err, mqtt.ErrKeepAliveTimeout) {
					t.Fatalf("connection lost with %v, want keepalive timeout", err)
				}
				// The margin covers the check's tick and scheduling; the
				// lower bound catches a client that gives up on a link
				// before it has had a keepalive to answer.
				if d > ka*3/2+300*time.Millisecond || d < ka/2 {
					t.Fatalf("dead busy link detected after %v, want within 1.5×%v", d, ka)
				}
				t.Logf("dead link detected after %v", d.Round(time.Millisecond))
			case <-time.After(10 * time.Second):
				t.Fatal("dead link never detected")
			}

			select {
			case <-connected:
			case <-time.After(10 * time.Second):
				t.Fatal("no reconnect after the link came back")
			}
			select {
			case err := <-published:
				if err != nil {
					t.Fatalf("publish in flight across the dead link: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("publish in flight across the dead link never completed")
			}
			deadline := time.After(10 * time.Second)
			for inflight := false; !inflight; {
				select {
				case m := <-got.ch:
					inflight = m.Topic == topic+"/inflight"
				case <-deadline:
					t.Fatal("the publish in flight across the dead link never arrived")
				}
			}
		})
	}
}

// TestBackoffGrowsWithJitterAndResets observes the waits the supervisor
// chooses before its reconnect attempts (Options.OnReconnectWait) while
// Options.Dialer refuses or drops connections as scripted: the wait before
// the n-th attempt since the last healthy connection is drawn from
// [0, min(Max, Min·2ⁿ⁻¹)] (full jitter); connections dropped straight
// after CONNACK do not reset n; one that stays up (longer than the
// keepalive, at least a second) does. The waits checked are the ones
// chosen, not time measured, so a slow or loaded machine changes nothing.
func TestBackoffGrowsWithJitterAndResets(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	// Short waits keep the test quick; nothing checked depends on them
	// being long.
	backoff := mqtt.Backoff{Min: time.Millisecond, Max: 32 * time.Millisecond}
	ceiling := func(attempt int) time.Duration { return min(backoff.Max, backoff.Min<<(attempt-1)) }

	type wait struct {
		attempt int
		d       time.Duration
	}
	waits := make(chan wait, 100)
	d := &attemptDialer{addr: b.Addr}
	connects := make(chan struct{}, 100)
	dial(t, b, mqtt.Options{
		ClientID: "backoff", Dialer: d.dial, Backoff: backoff, KeepAlive: time.Second,
		OnConnect:       func(*mqtt.Client, *mqtt.Connack) { connects <- struct{}{} },
		OnReconnectWait: func(attempt int, d time.Duration) { waits <- wait{attempt, d} },
	})
	<-connects

	await := func(ch <-chan struct{}, what string) {
		t.Helper()
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s within 10s", what)
		}
	}
	// next cuts the connection and returns the waits chosen before the
	// next n attempts, checking that they are numbered from 1 on.
	next := func(n int) []time.Duration {
		t.Helper()
		d.cut()
		ds := make([]time.Duration, n)
		for i := range ds {
			select {
			case w := <-waits:
				if w.attempt != i+1 {
					t.Fatalf("wait %d is for attempt %d, want %d: the attempts since a healthy connection are miscounted", i, w.attempt, i+1)
				}
				if w.d < 0 || w.d > ceiling(w.attempt) {
					t.Errorf("wait before attempt %d: %v, outside [0, %v]", w.attempt, w.d, ceiling(w.attempt))
				}
				ds[i] = w.d
			case <-time.After(10 * time.Second):
				t.Fatalf("no reconnect attempt %d within 10s", i+1)
			}
		}
		return ds
	}

	// 12 refused attempts, 6 connections dropped after CONNACK, then one
	// that stays up. Attempt 13 is the first that connects; the waits
	// before attempts 14 to 19 follow dropped connections, and their
	// numbers (checked by next) show that those did not reset the count.
	d.script(slices.Repeat([]dialMode{dialRefuse}, 12), slices.Repeat([]dialMode{dialFlap}, 6))
	ds := next(19)
	for range 7 {
		await(connects, "connect")
	}
	refused, flapping := ds[:12], ds[13:]
	t.Logf("waits before refused attempts: %v", refused)
	t.Logf("waits after dropped connections: %v", flapping)
	// From attempt 6 the waits are drawn from [0, 32ms]: that none of
	// seven exceeds the ceiling of attempt 3 has probability (1/8)⁷; that
	// they span less than 2ms, about 7·(2/32)⁶. Either means the backoff
	// does not grow, or has no jitter.
	late := refused[5:]
	if slices.Max(late) <= ceiling(3) {
		t.Errorf("waits from attempt 6 on never exceed %v: the backoff does not grow", ceiling(3))
	}
	if slices.Max(late)-slices.Min(late) < 2*time.Millisecond {
		t.Errorf("waits from attempt 6 on all within 2ms of each other: no jitter")
	}
	// Likewise after connections that drop at once, the waits stay drawn
	// from the top range.
	if slices.Max(flapping) <= ceiling(3) {
		t.Errorf("waits after dropped connections never exceed %v: the backoff was reset", ceiling(3))
	}

	// Staying up is the behaviour under test: only time can pass, and
	// more of it only makes the connection healthier.
	time.Sleep(1200 * time.Millisecond)
	d.script(slices.Repeat([]dialMode{dialRefuse}, 4))
	reset := next(5) // numbered from 1 again: the count was reset
	await(connects, "reconnect after the refusals")
	t.Logf("waits after a healthy connection: %v", reset)
}

type dialMode int

const (
	dialPass   dialMode = iota // connect to the broker
	dialRefuse                 // fail at once, as a closed port does
	dialFlap                   // connect, then drop the connection after CONNACK
)

// attemptDialer is a Dialer that makes each attempt succeed, fail or flap
// as scripted.
type attemptDialer struct {
	addr string

	mu    sync.Mutex
	plan  []dialMode // for the next attempts; connect after
	conns []net.Conn
}

// script sets what the next attempts do.
func (d *attemptDialer) script(modes ...[]dialMode) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.plan = slices.Concat(modes...)
}

func (d *attemptDialer) dial(ctx context.Context, network, _ string) (net.Conn, error) {
	d.mu.Lock()
	mode := dialPass
	if len(d.plan) > 0 {
		mode, d.plan = d.plan[0], d.plan[1:]
	}
	d.mu.Unlock()
	if mode == dialRefuse {
		return nil, &net.OpError{Op: "dial", Net: network, Err: syscall.ECONNREFUSED}
	}
	nc, err := (&net.Dialer{}).DialContext(ctx, network, d.addr)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.conns = append(d.conns, nc)
	d.mu.Unlock()
	if mode == dialFlap {
		return &dropAfterConnack{Conn: nc}, nil
	}
	return nc, nil
}

// cut closes every connection the client has opened.
func (d *attemptDialer) cut() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.conns {
		c.Close()
	}
	d.conns = nil
}

// dropAfterConnack lets the client read a whole CONNACK (shorter than 128
// bytes, as mosquitto's are) and then ends the connection, as a broker
// that accepts and then fails would.
type dropAfterConnack struct {
	net.Conn
	seen []byte // what the client has read so far
}

func (c *dropAfterConnack) Read(b []byte) (int, error) {
	if len(c.seen) >= 2 && len(c.seen) >= 2+int(c.seen[1]) {
		c.Conn.Close()
		return 0, io.EOF
	}
	n, err := c.Conn.Read(b)
	c.seen = append(c.seen, b[:n]...)
	return n, err
}
