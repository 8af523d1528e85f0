package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// process is a server process other than mosquitto owned by one test: its
// output is kept for failure reports, and stop kills it together with
// whatever it started.
type process struct {
	name string
	cmd  *exec.Cmd
	log  *lineLog
	out  *os.File      // read end of the pipe the process writes stdout and stderr to
	read chan struct{} // closed when the output has been read to its end
	done chan struct{} // closed after the process has been waited for
	err  error         // Wait's result, valid after done
}

// startTimeout bounds how long a server may take to say it is ready.
// RabbitMQ, the slowest, needs about 8 s on a 2-core machine, and machines
// differ 3× in speed.
const startTimeout = 60 * time.Second

// startProcess starts cmd in a process group of its own, merging its stdout
// and stderr into one log, and returns once a line of that output contains
// ready. It fails when the process exits first or stays silent about being
// ready for startTimeout.
func startProcess(name string, cmd *exec.Cmd, ready string) (*process, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.SysProcAttr = processAttr()
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	// Only the children hold the write end now, so the read end sees EOF
	// once every process that inherited it has exited.
	pw.Close()
	p := &process{name: name, cmd: cmd, log: newLineLog(300), out: pr,
		read: make(chan struct{}), done: make(chan struct{})}
	seen := make(chan struct{})
	go func() {
		defer close(p.read)
		p.log.follow(pr, ready, seen)
	}()
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	select {
	case <-seen:
		return p, nil
	case <-p.done:
		// The last lines, often the reason, may still be in the pipe.
		p.drain()
		return nil, fmt.Errorf("%s exited at start (%v):\n%s", name, p.err, p.log.String())
	case <-time.After(startTimeout):
		p.stop()
		return nil, fmt.Errorf("%s did not report %q within %v:\n%s", name, ready, startTimeout, p.log.String())
	}
}

// stop kills the process group, so helpers the server started (RabbitMQ's
// Erlang VM behind its start script) go too, and waits for the process.
// State lives in the test's temporary directory, so nothing is lost that a
// graceful shutdown would have saved.
func (p *process) stop() {
	if err := syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		_ = p.cmd.Process.Kill()
	}
	<-p.done
	p.drain()
}

// drain waits for the output to be read to its end, then closes the pipe.
// A grandchild that left the process group could keep the pipe open for
// ever; the bound only costs such a report its last lines.
func (p *process) drain() {
	select {
	case <-p.read:
	case <-time.After(5 * time.Second):
	}
	p.out.Close()
	<-p.read
}

// addrInUse reports whether a failed start lost its port to another process
// between FreeAddr and the bind, which a retry on a new port fixes.
func addrInUse(err error) bool {
	if err == nil {
		return false
	}
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "address already in use") || strings.Contains(msg, "eaddrinuse")
}
