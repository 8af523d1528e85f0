package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// mqttcBin is the mqttc binary TestMain builds, for tests that run it as a
// process beside mosquitto's tools.
var mqttcBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mqttc-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	mqttcBin = dir + "/mqttc"
	if out, err := exec.Command("go", "build", "-o", mqttcBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building mqttc: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// commandTimeout bounds every command a test runs.
const commandTimeout = 20 * time.Second

// result is how a command ended.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
}

// mqttc runs the CLI in-process.
func mqttc(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(args, strings.NewReader(stdin), &stdout, &stderr)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// needTools skips the test when mosquitto's clients are not installed.
func needTools(t *testing.T, names ...string) {
	t.Helper()
	for _, name := range names {
		if _, err := exec.LookPath(name); err != nil {
			t.Skipf("%s not installed", name)
		}
	}
}

// tool runs a program (mosquitto_pub, mosquitto_sub or mqttcBin) to its end.
func tool(t *testing.T, stdin string, name string, args ...string) result {
	t.Helper()
	needTools(t, name)
	ctx, cancel := context.WithTimeout(t.Context(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("%s %v: %v", name, args, err)
	}
	return r
}

// watchedOutput collects a subscriber's stdout and reports when the
// "Subscribed (mid: ...)" line of -d has appeared, which both mosquitto_sub
// and mqttc print on SUBACK: the moment it is safe to publish.
type watchedOutput struct {
	mu         sync.Mutex
	buf        bytes.Buffer
	subscribed chan struct{}
	once       sync.Once
}

func newWatchedOutput() *watchedOutput {
	return &watchedOutput{subscribed: make(chan struct{})}
}

func (w *watchedOutput) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if debugSubscribed.Match(w.buf.Bytes()) {
		w.once.Do(func() { close(w.subscribed) })
	}
	return len(p), nil
}

func (w *watchedOutput) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

var (
	debugSubscribed = regexp.MustCompile(`(?m)^Subscribed \(mid: \d+\): `)
	// debugLine matches the -d lines of both tools, also where a message
	// printed with -N leaves one in mid-line.
	debugLine = regexp.MustCompile(`(Client \S+ (sending|received) [^\n]*|Subscribed \(mid: \d+\): [^\n]*)\n`)
)

// stripDebug removes -d lines, leaving the printed messages.
func stripDebug(s string) string { return debugLine.ReplaceAllString(s, "") }

// liveSub is a subscriber running in the background with -d.
type liveSub struct {
	name   string
	out    *watchedOutput
	stderr *watchedOutput
	done   chan int
	cmd    *exec.Cmd // nil in-process
}

// startSub starts a subscriber with -d added: mosquitto_sub (line-buffered
// through stdbuf, or its debug lines would sit in a pipe buffer), the mqttc
// binary, or, for name "", mqttc in-process. It returns once the
// subscriber has its SUBACK.
func startSub(t *testing.T, name string, args ...string) *liveSub {
	t.Helper()
	s := &liveSub{name: name, out: newWatchedOutput(), stderr: newWatchedOutput(), done: make(chan int, 1)}
	args = append([]string{"-d"}, args...)
	if name == "" {
		s.name = "mqttc (in-process)"
		go func() {
			s.done <- runContext(t.Context(), append([]string{"sub"}, args...), strings.NewReader(""), s.out, s.stderr)
		}()
	} else {
		switch name {
		case "mosquitto_sub":
			needTools(t, "stdbuf", name)
			args = append([]string{"-oL", name}, args...)
			name = "stdbuf"
		case mqttcBin:
			args = append([]string{"sub"}, args...)
		}
		ctx, cancel := context.WithTimeout(t.Context(), commandTimeout)
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Stdout, cmd.Stderr = s.out, s.stderr
		s.cmd = cmd
		if err := cmd.Start(); err != nil {
			cancel()
			t.Fatal(err)
		}
		go func() {
			defer cancel()
			_ = cmd.Wait()
			s.done <- cmd.ProcessState.ExitCode()
		}()
	}
	select {
	case <-s.out.subscribed:
	case code := <-s.done:
		t.Fatalf("%s ended before subscribing: exit %d, stdout %q, stderr %q", s.name, code, s.out, s.stderr)
	case <-time.After(commandTimeout):
		t.Fatalf("%s did not subscribe: stdout %q", s.name, s.out)
	}
	return s
}

// wait returns how the subscriber ended, with the -d lines removed from
// its stdout.
func (s *liveSub) wait(t *testing.T) result {
	t.Helper()
	select {
	case code := <-s.done:
		return result{code: code, stdout: stripDebug(s.out.String()), stderr: s.stderr.String()}
	case <-time.After(commandTimeout):
		t.Fatalf("%s did not end: stdout %q", s.name, s.out)
		return result{}
	}
}
