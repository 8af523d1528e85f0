package demo

import "syscall"

// sysProcAttr puts a child in its own process group and has the kernel
// kill it when the demo dies, so that nothing outlives a crashed demo.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
