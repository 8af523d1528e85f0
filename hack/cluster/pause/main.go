// Command pause is the process that holds a pod's namespaces, as
// registry.k8s.io/pause does: it sleeps until SIGINT or SIGTERM and, being
// PID 1 of the sandbox, reaps the zombies it inherits. The cluster tier builds
// it locally and tags it with the sandbox image name containerd is configured
// with, so starting a pod pulls nothing.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
