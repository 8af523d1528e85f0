package testenv

import "syscall"

// processAttr puts a test server in a process group of its own, so stop can
// kill everything it started, and has the kernel kill it should the test
// binary die without cleaning up (a panic, go test's timeout).
func processAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
