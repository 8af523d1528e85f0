//go:build unix

package mqtt

import (
	"net"
	"syscall"
)

// rawConnOf returns the RawConn of a plain TCP or Unix socket. Through it a
// reader can wait for data without holding a buffer, which net.Conn's
// Read, needing one to read into, cannot do.
func rawConnOf(nc net.Conn) syscall.RawConn {
	var sc syscall.Conn
	switch c := nc.(type) {
	case *net.TCPConn:
		sc = c
	case *net.UnixConn:
		sc = c
	default:
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return raw
}

// readRawFD is the RawConn read function. It returns false, which makes
// the runtime wait for the socket to become readable and call it again,
// when the read would block; the buffer goes back to the pool first if
// nothing in it is unread.
func (rb *readBuffer) readRawFD(fd uintptr) bool {
	if rb.buf == nil {
		rb.buf = readBuffers.Get().(*[readBufferSize]byte)
	}
	for {
		n, err := syscall.Read(int(fd), rb.buf[rb.w:])
		switch err {
		case nil:
			rb.n = n
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			rb.releaseIfEmpty()
			return false
		default:
			rb.err = err
			return true
		}
	}
}
