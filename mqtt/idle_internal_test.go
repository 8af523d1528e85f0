package mqtt

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/heraldiot/herald/internal/testenv"
	"github.com/heraldiot/herald/mqtt/packet"
)

// writeBufferCapacity is what cn's write buffers hold, and whether a
// writer runs.
func writeBufferCapacity(cn *conn) (int, bool) {
	cn.wmu.Lock()
	defer cn.wmu.Unlock()
	return cap(cn.wbuf) + cap(cn.spare), cn.writing
}

// Buffers a burst grew are let go once the link has been quiet for a
// keepalive interval.
func TestQuietConnectionReleasesWriteBuffers(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Dial(ctx, Options{Servers: []string{b.URL()}, Version: V5, ClientID: "quiet", KeepAlive: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(ctx)
	payload := bytes.Repeat([]byte{'x'}, 16<<10)
	for range 64 {
		if err := c.Publish(ctx, &Message{Topic: "test/quiet", Payload: payload}); err != nil {
			t.Fatal(err)
		}
	}
	c.mu.Lock()
	cn := c.conn
	c.mu.Unlock()
	await := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting until %s", what)
			}
		}
	}
	var grown int
	await("the burst is written", func() bool {
		n, writing := writeBufferCapacity(cn)
		grown = n
		return !writing
	})
	if grown < len(payload) {
		t.Fatalf("after a 1 MiB burst the write buffers hold %d bytes; the test needs them grown", grown)
	}
	await("a keepalive ping is answered", func() bool {
		return c.Stats().Received[packet.TypePingresp].Packets > 0
	})
	if n, _ := writeBufferCapacity(cn); n > 64 {
		t.Fatalf("after a quiet keepalive interval the write buffers hold %d bytes, want at most the ping's", n)
	}
}
