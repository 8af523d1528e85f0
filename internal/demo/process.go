package demo

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Process is a program the demo started, its output going to a log file.
type Process struct {
	// Name names the process in messages ("operator", "fleetsim").
	Name string
	// Log is the path of its output.
	Log string

	cmd  *exec.Cmd
	done chan struct{}
	err  error // Wait's result, valid once done is closed
}

// startProcess starts bin with args and env added to the demo's own
// environment, writing stdout and stderr to logPath. The process gets its
// own process group, so that a Ctrl-C in the terminal reaches the demo,
// which stops everything in order, rather than every process at once; on
// Linux it is also killed if the demo dies without cleaning up.
func startProcess(name, logPath string, env []string, bin string, args ...string) (*Process, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	return launch(name, logPath, os.O_TRUNC, cmd)
}

// launch starts cmd with its output going to logPath, which is truncated or
// appended to (logMode os.O_TRUNC or os.O_APPEND).
func launch(name, logPath string, logMode int, cmd *exec.Cmd) (*Process, error) {
	log, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|logMode, 0o644)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{Name: name, Log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		log.Close()
		close(p.done)
	}()
	return p, nil
}

// Restart starts the same program again, with the same arguments and
// environment, once this process has ended; its output is added to the
// same log, so that one file tells the whole story.
func (p *Process) Restart() (*Process, error) {
	select {
	case <-p.done:
	default:
		return nil, fmt.Errorf("restart %s: it is still running", p.Name)
	}
	cmd := exec.Command(p.cmd.Path, p.cmd.Args[1:]...)
	cmd.Env = p.cmd.Env
	return launch(p.Name, p.Log, os.O_APPEND, cmd)
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited describes how the process ended, with the end of its log, once it
// has; it is for error messages.
func (p *Process) Exited() error {
	select {
	case <-p.done:
	default:
		return nil
	}
	how := "exited"
	if p.err != nil {
		how = p.err.Error()
	}
	return fmt.Errorf("%s %s; the end of %s:\n%s", p.Name, how, p.Log, p.Tail(15))
}

// Stop asks the process to end with SIGTERM and kills it (and its process
// group) if it has not ended after grace.
func (p *Process) Stop(grace time.Duration) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	pid := p.cmd.Process.Pid
	if err := syscall.Kill(-pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	<-p.done
	return fmt.Errorf("%s did not stop within %s of SIGTERM and was killed", p.Name, grace)
}

// Kill ends the process and its process group at once with SIGKILL, as a
// crash or the kernel's OOM killer would: nothing gets to clean up. It
// returns once the process has exited.
func (p *Process) Kill() error {
	select {
	case <-p.done:
		return nil
	default:
	}
	if err := syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		// Not a group leader after all: kill the process alone.
		if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			return fmt.Errorf("kill %s: %w", p.Name, err)
		}
	}
	<-p.done
	return nil
}

// Tail returns the last n lines of the process's log.
func (p *Process) Tail(n int) string {
	data, err := os.ReadFile(p.Log)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(string(bytes.TrimRight(data, "\n")), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "    " + strings.Join(lines, "\n    ")
}
