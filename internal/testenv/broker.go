package testenv

import (
	"bufio"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BrokerOptions choose the listeners and features of a test broker.
type BrokerOptions struct {
	// Persistence keeps sessions, queued messages and retained messages across
	// Stop and Start. The database is also saved moments after each change, so
	// a Kill loses at most what changed in the last moment: mosquitto, unlike
	// the MQTT ideal, acknowledges before it writes to disk.
	Persistence bool

	// TLS adds a TLS listener (TLSAddr) with a generated PKI (Certs).
	TLS bool
	// RequireClientCert makes the TLS listener reject clients without a
	// certificate signed by the test CA.
	RequireClientCert bool

	// WebSockets adds an MQTT-over-WebSocket listener (WSAddr).
	WebSockets bool
	// WebSocketsTLS adds an MQTT-over-WebSocket listener behind TLS
	// (WSSAddr), with the PKI and client-certificate rule of TLS.
	WebSocketsTLS bool

	// Users, when set, enables a password file with these name/password pairs
	// and turns anonymous access off.
	Users map[string]string

	// Config holds extra mosquitto.conf lines, e.g. "max_inflight_messages 2".
	Config []string

	// Host is the address every listener binds (default 127.0.0.1), e.g.
	// the node's address for clients in a cluster's pods (see FreeAddrOn).
	// The TLS certificates still name only the loopback addresses.
	Host string
}

// Broker is a mosquitto process owned by one test. Both MQTT 3.1.1 and 5.0
// are served on every listener: mosquitto picks the version from CONNECT.
type Broker struct {
	// Addr is host:port of the plain TCP listener.
	Addr string
	// TLSAddr is host:port of the TLS listener, when enabled.
	TLSAddr string
	// WSAddr is host:port of the WebSocket listener, when enabled.
	WSAddr string
	// WSSAddr is host:port of the WebSocket-over-TLS listener, when enabled.
	WSSAddr string
	// Certs is the PKI of the TLS listeners, when enabled.
	Certs *Certs

	bin  string
	conf string
	log  *lineLog

	mu   sync.Mutex
	proc *brokerProcess
}

type brokerProcess struct {
	cmd  *exec.Cmd
	done chan struct{} // closed after the process has been waited for
	err  error         // Wait's result, valid after done
}

// MosquittoPath finds the mosquitto binary, which Debian installs in /usr/sbin.
func MosquittoPath() (string, error) {
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/opt/homebrew/sbin/mosquitto"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("testenv: mosquitto not found; run `make broker`")
}

// StartBroker starts a mosquitto for tb and stops it when tb ends. It fails
// tb when the broker cannot start.
func StartBroker(tb testing.TB, opts BrokerOptions) *Broker {
	tb.Helper()
	b, err := NewBroker(tb.TempDir(), opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := b.Stop(); err != nil {
			tb.Errorf("stop mosquitto: %v", err)
		}
		if tb.Failed() {
			tb.Logf("mosquitto log:\n%s", b.Log())
		}
	})
	return b
}

// NewBroker writes a configuration into dir and starts mosquitto with it.
// The caller must Stop it.
func NewBroker(dir string, opts BrokerOptions) (*Broker, error) {
	bin, err := MosquittoPath()
	if err != nil {
		return nil, err
	}
	b := &Broker{bin: bin, conf: filepath.Join(dir, "mosquitto.conf"), log: newLineLog(200)}
	if opts.TLS || opts.WebSocketsTLS {
		if b.Certs, err = NewCerts(dir); err != nil {
			return nil, err
		}
	}
	// Free ports are picked by binding and releasing them, so another process
	// can take one before mosquitto binds it; a few attempts make that harmless.
	for attempt := 0; ; attempt++ {
		if err := b.configure(dir, opts); err != nil {
			return nil, err
		}
		err = b.Start()
		if err == nil || attempt == 2 || !strings.Contains(b.Log(), "Address already in use") {
			return b, err
		}
	}
}

func (b *Broker) configure(dir string, opts BrokerOptions) error {
	var err error
	if b.Addr, err = FreeAddrOn(opts.Host); err != nil {
		return err
	}
	conf := []string{
		"per_listener_settings false",
		"log_dest stderr",
		"log_type error", "log_type warning", "log_type notice", "log_type information",
		"connection_messages true",
		// Tests open many connections in quick succession.
		"max_connections -1",
		listener(b.Addr),
	}
	// Run as the current user: as root, mosquitto otherwise switches to the
	// "mosquitto" user, which cannot read this test's files.
	if u, err := user.Current(); err == nil {
		conf = append(conf, "user "+u.Username)
	}
	if opts.TLS {
		if b.TLSAddr, err = FreeAddrOn(opts.Host); err != nil {
			return err
		}
		conf = append(conf, listener(b.TLSAddr))
		conf = append(conf, b.tlsSettings(opts)...)
	}
	if opts.WebSockets {
		if b.WSAddr, err = FreeAddrOn(opts.Host); err != nil {
			return err
		}
		conf = append(conf, listener(b.WSAddr), "protocol websockets")
	}
	if opts.WebSocketsTLS {
		if b.WSSAddr, err = FreeAddrOn(opts.Host); err != nil {
			return err
		}
		conf = append(conf, listener(b.WSSAddr), "protocol websockets")
		conf = append(conf, b.tlsSettings(opts)...)
	}
	if len(opts.Users) > 0 {
		pwfile := filepath.Join(dir, "passwd")
		if err := writePasswordFile(pwfile, opts.Users); err != nil {
			return err
		}
		conf = append(conf, "allow_anonymous false", "password_file "+pwfile)
	} else {
		conf = append(conf, "allow_anonymous true")
	}
	if opts.Persistence {
		conf = append(conf, "persistence true",
			"persistence_location "+dir+string(filepath.Separator),
			"autosave_on_changes true", "autosave_interval 1")
	}
	conf = append(conf, opts.Config...)
	return os.WriteFile(b.conf, []byte(strings.Join(conf, "\n")+"\n"), 0o600)
}

// tlsSettings are the lines that put the listener before them behind TLS.
func (b *Broker) tlsSettings(opts BrokerOptions) []string {
	return []string{
		"cafile " + b.Certs.CAFile,
		"certfile " + b.Certs.ServerCertFile,
		"keyfile " + b.Certs.ServerKeyFile,
		fmt.Sprintf("require_certificate %t", opts.RequireClientCert),
	}
}

func listener(addr string) string {
	host, port, _ := net.SplitHostPort(addr)
	return "listener " + port + " " + host
}

// Start starts the broker process; after Stop or Kill it restarts it with
// the same listeners and, with Persistence, the same state.
func (b *Broker) Start() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.proc != nil {
		return errors.New("testenv: mosquitto already running")
	}
	cmd := exec.Command(b.bin, "-c", b.conf)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start mosquitto: %w", err)
	}
	p := &brokerProcess{cmd: cmd, done: make(chan struct{})}
	running := make(chan struct{})
	go func() {
		b.log.follow(stderr, " running", running)
		p.err = cmd.Wait()
		close(p.done)
	}()
	select {
	case <-running:
		b.proc = p
		return nil
	case <-p.done:
		return fmt.Errorf("mosquitto exited at start (%v):\n%s", p.err, b.Log())
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("mosquitto did not report running within 15s:\n%s", b.Log())
	}
}

// Stop ends the broker with SIGTERM, as an operator would, and waits for it.
// It does nothing when the broker is not running.
func (b *Broker) Stop() error { return b.signal(syscall.SIGTERM) }

// Kill ends the broker with SIGKILL, as a crash would, and waits for it.
func (b *Broker) Kill() error { return b.signal(syscall.SIGKILL) }

func (b *Broker) signal(sig os.Signal) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.proc
	if p == nil {
		return nil
	}
	b.proc = nil
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	// mosquitto installs its signal handlers before it sets the flag its
	// main loop runs on, so a SIGTERM just after "running" can be lost;
	// repeating it until the process exits makes Stop reliable.
	resend := time.NewTicker(200 * time.Millisecond)
	defer resend.Stop()
	giveUp := time.After(10 * time.Second)
	for {
		select {
		case <-p.done:
			return nil
		case <-resend.C:
			_ = p.cmd.Process.Signal(sig)
		case <-giveUp:
			_ = p.cmd.Process.Kill()
			<-p.done
			return errors.New("testenv: mosquitto ignored " + sig.String() + " for 10s")
		}
	}
}

// URL is the broker's plain TCP address as a tcp:// URL.
func (b *Broker) URL() string { return "tcp://" + b.Addr }

// TLSURL is the TLS listener's address as a tls:// URL.
func (b *Broker) TLSURL() string { return "tls://" + b.TLSAddr }

// WSURL is the WebSocket listener's address as a ws:// URL.
func (b *Broker) WSURL() string { return "ws://" + b.WSAddr + "/mqtt" }

// WSSURL is the WebSocket-over-TLS listener's address as a wss:// URL.
func (b *Broker) WSSURL() string { return "wss://" + b.WSSAddr + "/mqtt" }

// Log returns the broker's most recent log lines.
func (b *Broker) Log() string { return b.log.String() }

// FreeAddr returns a loopback host:port that was free a moment ago.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// writePasswordFile writes mosquitto 2.0's "$7$" format: PBKDF2-SHA512 with
// 101 iterations, base64 salt and hash, as mosquitto_passwd does.
func writePasswordFile(path string, users map[string]string) error {
	names := make([]string, 0, len(users))
	for name := range users {
		names = append(names, name)
	}
	slices.Sort(names)
	var sb strings.Builder
	for _, name := range names {
		salt := make([]byte, 12)
		if _, err := rand.Read(salt); err != nil {
			return err
		}
		const iterations = 101
		hash, err := pbkdf2.Key(sha512.New, users[name], salt, iterations, sha512.Size)
		if err != nil {
			return err
		}
		fmt.Fprintf(&sb, "%s:$7$%d$%s$%s\n", name, iterations,
			base64.StdEncoding.EncodeToString(salt), base64.StdEncoding.EncodeToString(hash))
	}
	return os.WriteFile(path, []byte(sb.String()), 0o600)
}

// lineLog keeps the last lines of a process's output for failure reports.
type lineLog struct {
	mu    sync.Mutex
	max   int
	lines []string
}

func newLineLog(max int) *lineLog { return &lineLog{max: max} }

// follow reads r to EOF, keeping its lines; it closes seen once a line
// containing marker has been read.
func (l *lineLog) follow(r io.Reader, marker string, seen chan<- struct{}) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		l.mu.Lock()
		l.lines = append(l.lines, line)
		if len(l.lines) > l.max {
			l.lines = l.lines[len(l.lines)-l.max:]
		}
		l.mu.Unlock()
		if seen != nil && strings.Contains(line, marker) {
			close(seen)
			seen = nil
		}
	}
	_, _ = io.Copy(io.Discard, r)
}

func (l *lineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}
