package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/heraldiot/herald/mqtt/packet"
)

// suite is what the driver was asked to run.
type suite struct {
	n          int
	size       int
	window     int
	rounds     int
	idle       int
	qos        []byte
	clients    []string
	pahoAsync  bool
	qos0Accept string // acceptFence or acceptSubscriber
	// maxInflight overrides mosquitto's max_inflight_messages when > 0.
	maxInflight int
	profileDir  string
	log         io.Writer // progress, one line per measurement
}

// How a QoS 0 run learns that the broker has taken every message.
const (
	acceptFence      = "fence"
	acceptSubscriber = "subscriber"
)

// measurement is one throughput run of one client.
type measurement struct {
	client    string
	version   packet.Version
	qos       byte
	elapsed   time.Duration // from go to acceptance of the last message
	child     childResult
	brokerCPU time.Duration
	err       error
}

// report is everything a suite produced.
type report struct {
	suite     *suite
	broker    *broker
	cpus      int
	runs      []measurement
	idle      map[string]idleResult // by client and version, see idleKey
	idleErrs  map[string]error
	startedAt time.Time
}

func idleKey(client string, v packet.Version) string { return client + " " + v.String() }

// run starts one mosquitto and measures every client against it.
func (s *suite) run(dir string) (*report, error) {
	if err := raiseFileLimit(uint64(s.idle) + 256); err != nil {
		return nil, err
	}
	var extra []string
	if s.maxInflight > 0 {
		extra = append(extra, "max_inflight_messages "+strconv.Itoa(s.maxInflight))
	}
	b, err := startBroker(dir, extra...)
	if err != nil {
		return nil, err
	}
	defer b.stop()
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	r := &report{suite: s, broker: b, idle: map[string]idleResult{}, idleErrs: map[string]error{}, startedAt: time.Now()}
	type target struct {
		lib *library
		v   packet.Version
	}
	var targets []target
	for _, name := range s.clients {
		lib, err := findLibrary(name)
		if err != nil {
			return nil, err
		}
		for _, v := range lib.versions {
			targets = append(targets, target{lib, v})
		}
	}
	// Rounds interleave the clients, and each round starts one client
	// later, so drift in the machine's speed spreads over all of them.
	for round := range s.rounds {
		for _, qos := range s.qos {
			for i := range targets {
				t := targets[(i+round)%len(targets)]
				m := s.throughput(self, b, t.lib.name, t.v, qos, round)
				r.runs = append(r.runs, m)
				if m.err != nil {
					fmt.Fprintf(s.log, "round %d  QoS %d  %-17s %-6s  FAILED: %v\n", round+1, qos, t.lib.name, t.v, m.err)
					continue
				}
				fmt.Fprintf(s.log, "round %d  QoS %d  %-17s %-6s %10.0f msg/s %7.2f µs/msg CPU\n", round+1, qos,
					t.lib.name, t.v, m.rate(s.n), micros(m.child.CPU())/float64(s.n))
			}
		}
	}
	if s.idle > 0 {
		for _, t := range targets {
			if !t.lib.idle {
				continue
			}
			res, err := s.idleMemory(self, b, t.lib.name, t.v)
			key := idleKey(t.lib.name, t.v)
			if err != nil {
				r.idleErrs[key] = err
				fmt.Fprintf(s.log, "idle %-17s %-6s FAILED: %v\n", t.lib.name, t.v, err)
				continue
			}
			r.idle[key] = res
			fmt.Fprintf(s.log, "idle %-17s %-6s %8.1f KiB heap per client\n", t.lib.name, t.v, float64(res.HeapInuse)/float64(res.Clients)/1024)
		}
	}
	return r, nil
}

func (m *measurement) rate(n int) float64 { return float64(n) / m.elapsed.Seconds() }

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// child is a client process and its line protocol.
type child struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	stderr bytes.Buffer
}

func startChild(self string, args ...string) (*child, error) {
	c := &child{cmd: exec.Command(self, args...), lines: make(chan string, 16)}
	c.cmd.Stderr = &c.stderr
	var err error
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := c.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
	}()
	return c, nil
}

// expect waits for a line starting with word and returns the rest of it.
func (c *child) expect(word string, timeout time.Duration) (string, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case line, ok := <-c.lines:
		if !ok {
			return "", fmt.Errorf("client exited before %q", word)
		}
		if rest, found := strings.CutPrefix(line, word); found {
			return strings.TrimSpace(rest), nil
		}
		if msg, found := strings.CutPrefix(line, "error "); found {
			return "", errors.New(msg)
		}
		return "", fmt.Errorf("client said %q, want %q", line, word)
	case <-t.C:
		return "", fmt.Errorf("no %q from the client within %s", word, timeout)
	}
}

func (c *child) send(line string) error {
	_, err := io.WriteString(c.stdin, line+"\n")
	return err
}

// finish closes the child's input and waits for it, killing it if it
// lingers.
func (c *child) finish() error {
	c.stdin.Close()
	for range c.lines {
	}
	done := make(chan error, 1)
	go func() { done <- c.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("%w: %s", err, strings.TrimSpace(c.stderr.String()))
		}
		return nil
	case <-time.After(15 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
		return errors.New("client did not exit within 15s of its run")
	}
}

// runTimeout bounds one measurement, connects and all.
const runTimeout = 3 * time.Minute

// throughput runs one client process for one QoS and measures it.
func (s *suite) throughput(self string, b *broker, client string, v packet.Version, qos byte, round int) measurement {
	m := measurement{client: client, version: v, qos: qos}
	topic := fmt.Sprintf("bench/%s/%s/qos%d/%d", client, v, qos, round)
	var sub *subscriber
	if qos == 0 && s.qos0Accept == acceptSubscriber {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var err error
		sub, err = subscribe(ctx, b.addr, topic, s.n)
		cancel()
		if err != nil {
			m.err = fmt.Errorf("counting subscriber: %w", err)
			return m
		}
		defer sub.close()
	}
	args := []string{"-child",
		"-client", client, "-proto", v.String(), "-qos", strconv.Itoa(int(qos)),
		"-n", strconv.Itoa(s.n), "-size", strconv.Itoa(s.size), "-window", strconv.Itoa(s.window),
		"-broker", b.addr, "-topic", topic, "-id", clientID(client, v, round)}
	if s.pahoAsync {
		args = append(args, "-paho-async")
	}
	if qos == 0 && s.qos0Accept == acceptFence {
		args = append(args, "-fence")
	}
	if s.profileDir != "" {
		args = append(args, "-profile", s.profileDir)
	}
	c, err := startChild(self, args...)
	if err != nil {
		m.err = err
		return m
	}
	m.err = errors.Join(s.drive(c, b, sub, &m), c.finish())
	return m
}

func (s *suite) drive(c *child, b *broker, sub *subscriber, m *measurement) error {
	if _, err := c.expect("ready", 30*time.Second); err != nil {
		return err
	}
	cpu0, err := b.cpuTime()
	if err != nil {
		return err
	}
	start := time.Now()
	if err := c.send("go"); err != nil {
		return err
	}
	if sub != nil {
		if _, err := c.expect("sent", runTimeout); err != nil {
			return err
		}
		if err := sub.wait(10 * time.Second); err != nil {
			return err
		}
		m.elapsed = sub.doneAt.Sub(start)
		if err := c.send("stop"); err != nil {
			return err
		}
	} else {
		if _, err := c.expect("acked", runTimeout); err != nil {
			return err
		}
		m.elapsed = time.Since(start)
	}
	cpu1, err := b.cpuTime()
	if err != nil {
		return err
	}
	m.brokerCPU = cpu1 - cpu0
	res, err := c.expect("result", 30*time.Second)
	if err != nil {
		return err
	}
	return json.Unmarshal([]byte(res), &m.child)
}

// idleMemory runs one process holding s.idle idle clients.
func (s *suite) idleMemory(self string, b *broker, client string, v packet.Version) (idleResult, error) {
	var res idleResult
	args := []string{"-idle-child", "-client", client, "-proto", v.String(),
		"-broker", b.addr, "-count", strconv.Itoa(s.idle)}
	if s.profileDir != "" {
		args = append(args, "-profile", s.profileDir)
	}
	c, err := startChild(self, args...)
	if err != nil {
		return res, err
	}
	out, err := c.expect("result", runTimeout)
	if err == nil {
		err = json.Unmarshal([]byte(out), &res)
	}
	return res, errors.Join(err, c.finish())
}
