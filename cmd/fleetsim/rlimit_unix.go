//go:build unix

package main

import (
	"fmt"
	"syscall"
)

// raiseOpenFiles makes sure the process may hold need open files: every
// device is a socket. It raises the soft limit up to the hard one, and the
// hard one too when the process is privileged enough.
func raiseOpenFiles(need uint64) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("read the open files limit: %w", err)
	}
	if lim.Cur >= need {
		return nil
	}
	if lim.Max >= need {
		lim.Cur = need
		return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: need, Max: need}); err == nil {
		return nil
	}
	return fmt.Errorf("this many devices need about %d open files, but the hard limit is %d: raise it (ulimit -Hn, LimitNOFILE= in a systemd unit) or run fewer devices", need, lim.Max)
}
