package main

import (
	"fmt"
	"io"
	"sync"
)

// Exit codes shared with mosquitto_pub and mosquitto_sub. A broker's refusal
// of CONNECT exits with its CONNACK code instead (1–5 under 3.1.1, 128 and
// up under 5.0).
const (
	exitOK = 0
	// exitFailure is libmosquitto's generic failure and every usage error.
	exitFailure = 1
	// mosqErrConnLost is MOSQ_ERR_CONN_LOST: the connection ended during
	// the MQTT handshake.
	mosqErrConnLost = 7
	// mosqErrTLS is MOSQ_ERR_TLS: the TLS handshake failed.
	mosqErrTLS = 8
	// exitTimeout is MOSQ_ERR_TIMEOUT: -W elapsed before -C messages arrived.
	exitTimeout = 27
)

// usageError is a bad command line. It is printed even with --quiet, as
// mosquitto prints "invalid user input", followed by a hint at --help.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// exitError ends the program with code after printing lines to stderr,
// unless --quiet.
type exitError struct {
	code  int
	lines []string
}

func (e *exitError) Error() string {
	if len(e.lines) == 0 {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.lines[0]
}

func exitErrorf(code int, format string, args ...any) error {
	return &exitError{code: code, lines: []string{fmt.Sprintf(format, args...)}}
}

// lockedWriter serialises writes so that lines from different goroutines
// never interleave within a line.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
