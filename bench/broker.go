package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// broker is the one mosquitto every measurement of a run talks to.
type broker struct {
	addr    string // host:port of the listener
	version string // as mosquitto -h reports it
	config  []string
	cmd     *exec.Cmd
	exited  chan struct{}
	logPath string
}

// mosquittoPath finds mosquitto, which Debian installs outside PATH.
func mosquittoPath() (string, error) {
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/opt/homebrew/sbin/mosquitto"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("mosquitto not found (Debian: apt-get install mosquitto)")
}

// startBroker writes a configuration into dir and starts mosquitto on a free
// loopback port. Everything not listed keeps mosquitto's default; in
// particular max_inflight_messages stays 20, which a v5 client learns as
// the server's Receive Maximum, unless extra lines say otherwise.
func startBroker(dir string, extra ...string) (*broker, error) {
	bin, err := mosquittoPath()
	if err != nil {
		return nil, err
	}
	b := &broker{exited: make(chan struct{}), logPath: filepath.Join(dir, "mosquitto.log")}
	b.version = mosquittoVersion(bin)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b.addr = l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(b.addr)
	b.config = []string{
		"listener " + port + " 127.0.0.1",
		"allow_anonymous true",
		// 1,000 idle clients plus the publishers of a run.
		"max_connections -1",
		"persistence false",
		// Logging each connection would cost the broker time in the
		// middle of a measurement.
		"connection_messages false",
		"log_dest stderr",
		"log_type error",
		"log_type warning",
	}
	// As root, mosquitto would otherwise switch to the "mosquitto" user.
	if u, err := user.Current(); err == nil {
		b.config = append(b.config, "user "+u.Username)
	}
	b.config = append(b.config, extra...)
	conf := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(conf, []byte(strings.Join(b.config, "\n")+"\n"), 0o600); err != nil {
		return nil, err
	}
	logFile, err := os.Create(b.logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	b.cmd = exec.Command(bin, "-c", conf)
	b.cmd.Stdout, b.cmd.Stderr = logFile, logFile
	if err := b.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start mosquitto: %w", err)
	}
	go func() {
		_ = b.cmd.Wait()
		close(b.exited)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", b.addr, time.Second)
		if err == nil {
			c.Close()
			return b, nil
		}
		select {
		case <-b.exited:
			return nil, fmt.Errorf("mosquitto exited at start: %s", b.log())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b.stop()
			return nil, fmt.Errorf("mosquitto not listening on %s within 10s: %s", b.addr, b.log())
		}
	}
}

func mosquittoVersion(bin string) string {
	// mosquitto -h prints its version first and exits with status 3.
	out, _ := exec.Command(bin, "-h").CombinedOutput()
	first, _, _ := bytes.Cut(out, []byte("\n"))
	return strings.TrimPrefix(strings.TrimSpace(string(first)), "mosquitto version ")
}

func (b *broker) log() string {
	out, _ := os.ReadFile(b.logPath)
	return strings.TrimSpace(string(out))
}

// stop ends mosquitto with SIGTERM and waits for it.
func (b *broker) stop() {
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.exited:
	case <-time.After(10 * time.Second):
		_ = b.cmd.Process.Kill()
		<-b.exited
	}
}

// cpuTime is the CPU time mosquitto has used so far, from /proc. Linux
// counts it in clock ticks of 10ms, which is fine over runs of a second.
func (b *broker) cpuTime() (time.Duration, error) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(b.cmd.Process.Pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name in parentheses may hold spaces; fields after it
	// are space-separated: utime and stime are fields 14 and 15.
	_, rest, ok := bytes.Cut(raw, []byte(") "))
	if !ok {
		return 0, errors.New("unexpected /proc stat format")
	}
	fields := strings.Fields(string(rest))
	if len(fields) < 13 {
		return 0, errors.New("unexpected /proc stat format")
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	const ticksPerSecond = 100 // USER_HZ on every Linux architecture Go supports
	return time.Duration(utime+stime) * time.Second / ticksPerSecond, nil
}

// raiseFileLimit lifts the soft limit on open files to the hard limit. The
// children and mosquitto inherit it: 1,000 idle clients need 1,000
// descriptors in the client process and as many in the broker. Calling
// Setrlimit ourselves also stops the Go runtime from restoring the original
// limit for the processes we start.
func raiseFileLimit(need uint64) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	if lim.Cur < need {
		return fmt.Errorf("open-file limit %d is below the %d this run needs; raise the hard limit (ulimit -Hn)", lim.Cur, need)
	}
	return nil
}
