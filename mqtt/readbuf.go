package mqtt

import (
	"io"
	"net"
	"sync"
	"syscall"
)

// readBufferSize is the input buffer of a busy connection. Packets larger
// than this are read into a buffer of their own.
const readBufferSize = 4 << 10

// readBuffers holds the input buffers of connections that are waiting for
// bytes. Most clients are idle most of the time, so sharing the buffers
// among the busy ones is most of what an idle client would otherwise hold.
// Like net/http's bufio pools, this is a cache, not state: any buffer it
// hands out is as good as a new one.
var readBuffers = sync.Pool{New: func() any { return new([readBufferSize]byte) }}

// readBuffer is a connection's input side. It buffers like a bufio.Reader,
// except that it gives its buffer back to readBuffers whenever nothing is
// unread and the next read would wait: an idle connection holds no buffer.
type readBuffer struct {
	nc  net.Conn
	buf *[readBufferSize]byte // nil while idle
	r   int                   // buf[r:w] is unread
	w   int

	// For sockets whose readiness can be awaited without reading (see
	// rawConnOf), a read that would block returns the buffer and parks in
	// the runtime's poller. rawRead is the method value, made once so that
	// each read allocates nothing; n and err carry its result out.
	raw     syscall.RawConn
	rawRead func(fd uintptr) bool
	n       int
	err     error

	// Other connections (TLS, WebSocket, proxied) first read into this
	// while idle, which costs them no system call: they buffer inside.
	first [16]byte
}

func newReadBuffer(nc net.Conn) *readBuffer {
	rb := &readBuffer{nc: nc}
	if raw := rawConnOf(nc); raw != nil {
		rb.raw = raw
		rb.rawRead = rb.readRawFD
	}
	return rb
}

// readByte returns the next byte.
func (rb *readBuffer) readByte() (byte, error) {
	if rb.r == rb.w {
		if err := rb.fill(); err != nil {
			return 0, err
		}
	}
	b := rb.buf[rb.r]
	rb.r++
	return b, nil
}

// next returns the next n bytes, n ≤ readBufferSize. The slice aliases the
// buffer and is valid until the next call.
func (rb *readBuffer) next(n int) ([]byte, error) {
	for rb.w-rb.r < n {
		if err := rb.fill(); err != nil {
			return nil, err
		}
	}
	b := rb.buf[rb.r : rb.r+n]
	rb.r += n
	return b, nil
}

// discard drops the next n bytes, reading them into the buffer a chunk at
// a time: what a packet too large to keep costs is one buffer, not its size.
func (rb *readBuffer) discard(n int) error {
	for n > 0 {
		if rb.r == rb.w {
			if err := rb.fill(); err != nil {
				return err
			}
		}
		k := min(n, rb.w-rb.r)
		rb.r += k
		n -= k
	}
	return nil
}

// readFull fills dst, first from what is buffered, then straight from the
// connection; it is for packets larger than the buffer.
func (rb *readBuffer) readFull(dst []byte) error {
	n := copy(dst, rb.unread())
	rb.r += n
	rb.releaseIfEmpty()
	_, err := io.ReadFull(rb.nc, dst[n:])
	return err
}

func (rb *readBuffer) unread() []byte {
	if rb.buf == nil {
		return nil
	}
	return rb.buf[rb.r:rb.w]
}

// releaseIfEmpty gives the buffer back when it holds nothing unread.
func (rb *readBuffer) releaseIfEmpty() {
	if rb.r == rb.w {
		rb.release()
	}
}

// release gives the buffer back, dropping anything unread: the caller
// knows there is nothing, or the connection has ended.
func (rb *readBuffer) release() {
	if rb.buf != nil {
		readBuffers.Put(rb.buf)
		rb.buf, rb.r, rb.w = nil, 0, 0
	}
}

// fill reads at least one more byte, after moving what is unread to the
// front of the buffer.
func (rb *readBuffer) fill() error {
	if rb.buf != nil && rb.r > 0 {
		rb.w = copy(rb.buf[:], rb.buf[rb.r:rb.w])
		rb.r = 0
	}
	if rb.raw != nil {
		return rb.fillRaw()
	}
	if rb.w == 0 {
		// Nothing unread: wait without a buffer.
		rb.release()
		n, err := rb.nc.Read(rb.first[:])
		if n > 0 {
			rb.buf = readBuffers.Get().(*[readBufferSize]byte)
			rb.w = copy(rb.buf[:], rb.first[:n])
		}
		return readError(n, err)
	}
	n, err := rb.nc.Read(rb.buf[rb.w:])
	rb.w += n
	return readError(n, err)
}

// readError is the outcome of a Read that returned n bytes and err: any
// bytes are progress, and none without an error is a broken reader.
func readError(n int, err error) error {
	switch {
	case n > 0:
		return nil
	case err == nil:
		return io.ErrNoProgress
	}
	return err
}

// fillRaw reads from the socket through its RawConn: readRawFD reads
// straight into the buffer, and when the socket has nothing it hands the
// buffer back before the runtime parks the reader until data arrives.
func (rb *readBuffer) fillRaw() error {
	rb.n, rb.err = 0, nil
	if err := rb.raw.Read(rb.rawRead); err != nil {
		return err // closed or past the read deadline
	}
	if rb.err != nil {
		return &net.OpError{Op: "read", Net: rb.nc.LocalAddr().Network(), Source: rb.nc.LocalAddr(), Addr: rb.nc.RemoteAddr(), Err: rb.err}
	}
	if rb.n == 0 {
		return io.EOF
	}
	rb.w += rb.n
	return nil
}
