package mqtt

import (
	"bytes"
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// readBufferPairs are the two ways a readBuffer reads: through the RawConn
// of a TCP socket, and through Read on any other net.Conn.
var readBufferPairs = []struct {
	name string
	pair func(t *testing.T) (client, server net.Conn)
	raw  bool
}{
	{"tcp", tcpPair, true},
	{"pipe", func(*testing.T) (net.Conn, net.Conn) { return net.Pipe() }, false},
}

func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	if s == nil {
		t.Fatal("accept failed")
	}
	return c, s
}

// write sends b from a goroutine, since a net.Pipe write waits for the
// reader; wrote waits for it to finish.
func write(t *testing.T, nc net.Conn, b []byte) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := nc.Write(b)
		done <- err
	}()
	return done
}

func wrote(t *testing.T, sent <-chan error) {
	t.Helper()
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
}

// openReadBuffer returns a readBuffer on one end of a pair of connections
// and the other end to write to, both closed when the test ends.
func openReadBuffer(t *testing.T, pair func(*testing.T) (net.Conn, net.Conn)) (*readBuffer, net.Conn) {
	t.Helper()
	client, server := pair(t)
	t.Cleanup(func() {
		client.Close()
		server.Close()
	})
	return newReadBuffer(client), server
}

// expectNext reads n bytes and checks they are want.
func expectNext(t *testing.T, rb *readBuffer, want string) {
	t.Helper()
	if b, err := rb.next(len(want)); err != nil || string(b) != want {
		t.Fatalf("next(%d) = %q, %v; want %q", len(want), b, err, want)
	}
}

func TestReadBufferReleasedWhileWaiting(t *testing.T) {
	for _, tc := range readBufferPairs {
		t.Run(tc.name, func(t *testing.T) {
			rb, server := openReadBuffer(t, tc.pair)
			if (rb.raw != nil) != tc.raw {
				t.Fatalf("raw path = %v, want %v", rb.raw != nil, tc.raw)
			}
			sent := write(t, server, []byte("ab"))
			expectNext(t, rb, "ab")
			wrote(t, sent)
			if rb.buf == nil {
				t.Fatal("buffer released before the bytes were consumed by a wait")
			}
			// Nothing unread and nothing coming: the read waits until the
			// deadline, and the buffer must not be held meanwhile.
			_ = rb.nc.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
			if _, err := rb.readByte(); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("readByte on a silent link = %v, want a deadline error", err)
			}
			if rb.buf != nil {
				t.Error("an idle readBuffer holds its buffer")
			}
			_ = rb.nc.SetReadDeadline(time.Time{})
			sent = write(t, server, []byte("cd"))
			expectNext(t, rb, "cd")
			wrote(t, sent)
		})
	}
}

func TestReadBufferKeepsUnreadBytesAcrossWaits(t *testing.T) {
	for _, tc := range readBufferPairs {
		t.Run(tc.name, func(t *testing.T) {
			rb, server := openReadBuffer(t, tc.pair)
			sent := write(t, server, []byte("ab"))
			// Half a packet arrives, then the link goes quiet: the wait for
			// the rest must keep the half.
			_ = rb.nc.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
			if _, err := rb.next(4); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("next(4) with 2 bytes sent = %v, want a deadline error", err)
			}
			if got := string(rb.unread()); got != "ab" {
				t.Fatalf("unread after the wait = %q, want \"ab\"", got)
			}
			wrote(t, sent)
			_ = rb.nc.SetReadDeadline(time.Time{})
			sent = write(t, server, []byte("cd"))
			expectNext(t, rb, "abcd")
			wrote(t, sent)
		})
	}
}

func TestReadBufferLargePacket(t *testing.T) {
	for _, tc := range readBufferPairs {
		t.Run(tc.name, func(t *testing.T) {
			rb, server := openReadBuffer(t, tc.pair)
			big := bytes.Repeat([]byte("0123456789abcdef"), readBufferSize/4) // 4 buffers' worth
			stream := append([]byte{0x30}, big...)
			stream = append(stream, 0xC0)
			sent := write(t, server, stream)
			if b, err := rb.readByte(); err != nil || b != 0x30 {
				t.Fatalf("readByte = %#x, %v", b, err)
			}
			got := make([]byte, len(big))
			if err := rb.readFull(got); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, big) {
				t.Fatal("readFull returned different bytes")
			}
			if b, err := rb.readByte(); err != nil || b != 0xC0 {
				t.Fatalf("byte after the large packet = %#x, %v", b, err)
			}
			wrote(t, sent)
		})
	}
}

func TestReadBufferEOF(t *testing.T) {
	for _, tc := range readBufferPairs {
		t.Run(tc.name, func(t *testing.T) {
			rb, server := openReadBuffer(t, tc.pair)
			server.Close()
			if _, err := rb.readByte(); err == nil {
				t.Fatal("readByte after the peer closed returned no error")
			}
		})
	}
}
