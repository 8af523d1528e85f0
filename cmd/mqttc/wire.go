package main

import (
	"errors"
	"net"
	"sync"

	"github.com/heraldiot/herald/mqtt"
	"github.com/heraldiot/herald/mqtt/packet"
)

// packetObserver is told about every whole packet crossing a tapped
// connection. body aliases a buffer that is reused after the call.
type packetObserver interface {
	sent(h packet.Header, body []byte)
	received(h packet.Header, body []byte)
	closed()
}

// tapConn is a network connection whose plaintext MQTT byte stream is
// split into packets for an observer. It sits above TLS, so the observer
// sees MQTT, not records.
type tapConn struct {
	net.Conn
	obs packetObserver
	in  packetStream // used by the client's single reader only
	// wmu makes the observer see writes in wire order (the client's writer
	// and Disconnect write from different goroutines), and makes a write
	// the observer has seen finish before the next one starts.
	wmu       sync.Mutex
	out       packetStream
	closeOnce sync.Once
}

func newTapConn(c net.Conn, v mqtt.Version, obs packetObserver) *tapConn {
	return &tapConn{Conn: c, obs: obs, in: packetStream{version: v}, out: packetStream{version: v}}
}

func (c *tapConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.in.feed(p[:n], c.obs.received)
	}
	return n, err
}

// Write shows p to the observer before writing it: the answer to a packet
// can be read before a write returns, and -d must print the packet first.
// Holding wmu through the write, whoever acts on what the observer saw (the
// DISCONNECT after a QoS 0 PUBLISH) writes after it.
func (c *tapConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.out.feed(p, c.obs.sent)
	return c.Conn.Write(p)
}

func (c *tapConn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(c.obs.closed)
	return err
}

// packetStream reassembles packets from the chunks of one direction of a
// connection.
type packetStream struct {
	version mqtt.Version
	buf     []byte // the start of a packet not yet whole
	broken  bool   // the stream stopped making sense; stop watching it
}

// feed takes the next chunk and calls each for every packet it completes.
func (s *packetStream) feed(chunk []byte, each func(packet.Header, []byte)) {
	if s.broken {
		return
	}
	data := chunk
	if len(s.buf) > 0 {
		data = append(s.buf, chunk...)
	}
	off := 0
	for off < len(data) {
		h, n, err := packet.DecodeHeader(data[off:], s.version, 0)
		if errors.Is(err, packet.ErrShortBuffer) {
			break
		}
		if err != nil {
			// The client will fail on this too; there is nothing left to
			// follow.
			s.broken, s.buf = true, nil
			return
		}
		if len(data)-off-n < h.Remaining {
			break
		}
		each(h, data[off+n:off+n+h.Remaining])
		off += n + h.Remaining
	}
	// Keep the incomplete tail; copy handles the overlap when data is buf.
	s.buf = append(s.buf[:0], data[off:]...)
}
