//go:build !linux

package testenv

import "syscall"

// processAttr puts a test server in a process group of its own, so stop can
// kill everything it started. Only Linux can also tie its life to the test
// binary's.
func processAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
