//go:build !unix

package mqtt

import (
	"net"
	"syscall"
)

// rawConnOf reports no RawConn: outside Unix the reader waits in Read,
// with a small first read while idle (see readBuffer.fill).
func rawConnOf(net.Conn) syscall.RawConn { return nil }

func (rb *readBuffer) readRawFD(uintptr) bool { return true }
