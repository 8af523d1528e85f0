package mqtt_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/heraldiot/herald/mqtt"
	"github.com/heraldiot/herald/mqtt/packet"
)

// TestWriteBufferBoundedWhenServerStopsReading has a scripted server flood
// the client with packets that each make it owe an answer, and never read
// a byte. The answers pile up in the write buffer until the bound, where
// the client must close the connection with ErrWriteBufferFull instead of
// growing its memory until the flood ends. Keepalive is off, so no write
// deadline ends the wait: the bound is the only way out.
func TestWriteBufferBoundedWhenServerStopsReading(t *testing.T) {
	const (
		bound = 256 << 10
		// How much the server sends at most: far more than the bound
		// and the kernels' socket buffers together, so a client that
		// never closes is seen to take it all.
		flood = 8 << 20
	)
	tests := []struct {
		name   string
		v      packet.Version
		flood  packet.Packet // sent in batches, numbered from 1 in each
		answer int           // size of the client's answer to each
	}{
		{"PUBREL, 3.1.1", packet.V311, &packet.Ack{PacketType: packet.TypePubrel}, 4},
		// Under 5.0 the PUBCOMP says the identifier was not found.
		{"PUBREL, 5.0", packet.V5, &packet.Ack{PacketType: packet.TypePubrel}, 5},
		// Under 5.0 a flood of QoS 1 messages ends at our Receive Maximum.
		{"QoS 1 PUBLISH, 3.1.1", packet.V311, &packet.Publish{QoS: 1, Topic: []byte("t"), Payload: []byte("x")}, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var batch []byte
			for id := uint16(1); len(batch) < 64<<10; id++ {
				switch p := tt.flood.(type) {
				case *packet.Ack:
					p.PacketID = id
				case *packet.Publish:
					p.PacketID = id
				}
				var err error
				if batch, err = tt.flood.Append(batch, tt.v); err != nil {
					t.Fatal(err)
				}
			}
			exhausted := make(chan int, 1)
			url := startPeer(t, tt.v, func(p *peer) {
				sent := 0
				for sent < flood {
					if _, err := p.nc.Write(batch); err != nil {
						return // the client closed the connection
					}
					sent += len(batch)
				}
				exhausted <- sent
			})
			c, lost := connectToPeer(t, url, mqtt.Options{Version: tt.v, ClientID: "x", KeepAlive: -1, MaxWriteBuffer: bound,
				// A small socket buffer on our side too, so the kernel
				// takes little of what piles up.
				Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
					var d net.Dialer
					nc, err := d.DialContext(ctx, network, addr)
					if tc, ok := nc.(*net.TCPConn); ok {
						_ = tc.SetWriteBuffer(4 << 10)
					}
					return nc, err
				},
				DefaultHandler: func(*mqtt.Message) {}})
			select {
			case err := <-lost:
				if !errors.Is(err, mqtt.ErrWriteBufferFull) {
					t.Fatalf("connection lost with %v, want ErrWriteBufferFull", err)
				}
			case n := <-exhausted:
				t.Fatalf("the client took all %d bytes the server sent and is still connected: its writes pile up", n)
			case <-time.After(30 * time.Second):
				t.Fatal("connection neither lost nor the flood over")
			}
			s := c.Stats()
			if s.WriteBufferFull != 1 || s.ConnectionsLost != 1 {
				t.Errorf("stats: WriteBufferFull %d, ConnectionsLost %d; want 1 and 1", s.WriteBufferFull, s.ConnectionsLost)
			}
			// Full up to the last answer that fit, and not one beyond.
			if s.WriteBufferPeak > bound || s.WriteBufferPeak <= bound-uint64(tt.answer) {
				t.Errorf("write buffer peak %d bytes, want within one %d-byte answer below the bound %d", s.WriteBufferPeak, tt.answer, bound)
			}
		})
	}
}
