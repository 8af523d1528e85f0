//go:build unix && !aix && !solaris

package mqtt_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/heraldiot/herald/internal/testenv"
	"github.com/heraldiot/herald/mqtt"
	"github.com/heraldiot/herald/mqtt/packet"
)

// crashPublisherEnv carries the configuration of a publisher process; the
// test binary re-executed with it runs TestHelperPublisherProcess.
const crashPublisherEnv = "HERALD_CRASH_PUBLISHER"

// crashPublisherConfig is what the parent test tells a publisher process.
type crashPublisherConfig struct {
	Broker   string
	Version  mqtt.Version
	QoS      mqtt.QoS
	ClientID string
	Topic    string
	Dir      string // the FileStore and the progress file live here
	Total    int    // messages 0..Total-1
	Window   int    // publishes in flight at once
}

// TestCrashFileStorePublisherKilledMidStream is the fault test "client
// process killed and restarted with the file store mid-stream: 0 lost, 0
// duplicated at QoS 2, order kept". A publisher process streams numbered
// messages through a FileStore with several in flight; the test kills it
// with SIGKILL at random points and starts it again on the same directory
// and client identifier, while a subscriber in this process checks that
// every number arrives, that first deliveries come in order, and that QoS 2
// delivers none twice. The broker stays up, so the publisher's session at
// the broker survives each kill and only the client side is on trial.
func TestCrashFileStorePublisherKilledMidStream(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	for _, v := range versions {
		for _, qos := range []mqtt.QoS{mqtt.AtLeastOnce, mqtt.ExactlyOnce} {
			t.Run(fmt.Sprintf("v%s/qos%d", v, qos), func(t *testing.T) {
				testCrashPublisher(t, b, v, qos)
			})
		}
	}
}

func testCrashPublisher(t *testing.T, b *testenv.Broker, v mqtt.Version, qos mqtt.QoS) {
	const total, kills, window = 1000, 4, 8
	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, 0))
	// One kill in the second half of each of the first segments, so every
	// restarted process has time to resume before the next kill.
	seg := total / (kills + 1)
	killAt := make([]int, kills)
	for k := range killAt {
		killAt[k] = k*seg + seg/2 + rng.IntN(seg/2)
	}
	t.Logf("seed %d: kills after %v messages received", seed, killAt)

	name := fmt.Sprintf("crash-v%d-qos%d", v, qos)
	cfg := crashPublisherConfig{
		Broker: b.URL(), Version: v, QoS: qos, ClientID: name + "-pub", Topic: name,
		Dir: t.TempDir(), Total: total, Window: window,
	}
	got := newCollector()
	sub := dial(t, b, mqtt.Options{Version: v, ClientID: name + "-sub", CleanStart: true})
	if err := sub.Subscribe(testContext(t), got.handle, mqtt.Subscription{Filter: cfg.Topic, QoS: qos}); err != nil {
		t.Fatal(err)
	}

	var starts []crashStart
	proc := startCrashPublisher(t, cfg)
	exited := proc.done
	seen := make(map[int]int)
	var order []int
	killed := 0
	for len(seen) < total {
		var m *mqtt.Message
		select {
		case m = <-got.ch:
		case <-exited:
			// Finishing early is no failure by itself: its last messages
			// may still be on their way. Failing is.
			if proc.err != nil {
				t.Fatalf("publisher process failed (%v):\n%s", proc.err, proc.out.String())
			}
			exited = nil
			continue
		case <-time.After(10 * time.Second):
			t.Fatalf("nothing received for 10s after %d kills: lost %s; publisher output:\n%s", killed, missing(seen, total), proc.stop())
		}
		i, err := strconv.Atoi(string(m.Payload))
		if err != nil || i < 0 || i >= total {
			t.Fatalf("payload %q is not a number of the stream", m.Payload)
		}
		if seen[i] == 0 {
			order = append(order, i)
		}
		seen[i]++
		if killed < kills && len(seen) >= killAt[killed] {
			starts = append(starts, proc.kill(t)...)
			killed++
			proc = startCrashPublisher(t, cfg)
			exited = proc.done
		}
	}
	starts = append(starts, proc.finish(t)...)
	// A duplicate may still be on its way: the process ended after its
	// last flow completed at the broker, so a marker published now reaches
	// this subscriber after anything the process sent (mosquitto forwards
	// to a subscriber in the order it accepted the messages).
	if err := sub.Publish(testContext(t), &mqtt.Message{Topic: cfg.Topic, QoS: qos, Payload: []byte(endMarker)}); err != nil {
		t.Fatal(err)
	}
	for drained := false; !drained; {
		select {
		case m := <-got.ch:
			if string(m.Payload) == endMarker {
				drained = true
				continue
			}
			i, err := strconv.Atoi(string(m.Payload))
			if err != nil || seen[i] == 0 {
				t.Fatalf("payload %q after all numbers were received", m.Payload)
			}
			seen[i]++
		case <-time.After(10 * time.Second):
			t.Fatal("the end marker did not arrive within 10s")
		}
	}

	for i, n := range order {
		if n != i {
			t.Fatalf("first deliveries out of order at position %d: got %d, then %v", i, n, order[i:min(i+5, len(order))])
		}
	}
	dup := 0
	for _, n := range seen {
		dup += n - 1
	}
	if qos == mqtt.ExactlyOnce && dup > 0 {
		t.Fatalf("QoS 2: %d duplicates", dup)
	}
	if len(starts) != kills+1 {
		t.Fatalf("%d publisher processes reported starting, want %d", len(starts), kills+1)
	}
	adopted, torn := 0, int64(0)
	for _, s := range starts[1:] {
		adopted += s.stored
		torn += s.torn
	}
	// Resuming flows from the store is what is on trial; a run that
	// never found any in flight proves nothing.
	if adopted == 0 {
		t.Fatalf("no restarted publisher found a flow in flight in its store: %+v", starts)
	}
	t.Logf("v%s QoS %d: kills=%d received=%d lost=%d dup=%d; flows resumed from the store=%d, torn bytes cut=%d",
		v, qos, killed, len(seen), total-len(seen), dup, adopted, torn)
}

// endMarker follows the stream, to catch late duplicates.
const endMarker = "end"

// missing describes the numbers below total not in seen.
func missing(seen map[int]int, total int) string {
	var lost []int
	for i := range total {
		if seen[i] == 0 {
			lost = append(lost, i)
		}
	}
	if len(lost) > 20 {
		return fmt.Sprintf("%d of %d, the first %v", len(lost), total, lost[:20])
	}
	return fmt.Sprintf("%d of %d: %v", len(lost), total, lost)
}

// crashStart is what a publisher process reported as it started.
type crashStart struct {
	next, stored int
	torn         int64
}

// crashProcess is one run of the publisher process.
type crashProcess struct {
	cmd  *exec.Cmd
	out  *bytes.Buffer // stdout and stderr; read only after done
	done chan struct{}
	err  error // Wait's result, valid after done
}

func startCrashPublisher(t *testing.T, cfg crashPublisherConfig) *crashProcess {
	t.Helper()
	env, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperPublisherProcess$", "-test.count=1", "-test.timeout=60s")
	cmd.Env = append(os.Environ(), crashPublisherEnv+"="+string(env))
	p := &crashProcess{cmd: cmd, out: &bytes.Buffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := p.done
	go func() {
		p.err = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	return p
}

// kill ends the process with SIGKILL, as a crash would, checks that the
// signal, not anything else, ended it, and returns its start report.
func (p *crashProcess) kill(t *testing.T) []crashStart {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatal(err)
	}
	<-p.done
	ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("publisher process ended before the kill (%v):\n%s", p.err, p.out.String())
	}
	return p.starts(t)
}

// finish waits for the process to end by itself and checks it succeeded.
func (p *crashProcess) finish(t *testing.T) []crashStart {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("publisher process still running 20s after its last message arrived:\n%s", p.stop())
	}
	if p.err != nil {
		t.Fatalf("publisher process failed (%v):\n%s", p.err, p.out.String())
	}
	return p.starts(t)
}

// stop kills the process for a failure report and returns its output,
// which can be read only once it has ended.
func (p *crashProcess) stop() string {
	_ = p.cmd.Process.Kill()
	<-p.done
	return p.out.String()
}

// starts parses the start reports of an ended process.
func (p *crashProcess) starts(t *testing.T) []crashStart {
	t.Helper()
	var out []crashStart
	sc := bufio.NewScanner(bytes.NewReader(p.out.Bytes()))
	for sc.Scan() {
		var s crashStart
		if _, err := fmt.Sscanf(sc.Text(), crashStartFormat, &s.next, &s.stored, &s.torn); err == nil {
			out = append(out, s)
		}
	}
	return out
}

const crashStartFormat = "crash-publisher: start next=%d stored=%d torn=%d"

// TestHelperPublisherProcess is the publisher process of
// TestCrashFileStorePublisherKilledMidStream; run directly, it skips.
//
// It must never publish a number twice as a new message (a QoS 2
// duplicate) nor skip one (a loss), though it can die between any two
// instructions. Its own progress and the store cannot be written in one
// step, so it derives where to resume from both:
//
//   - A wrapper around the FileStore sees each PUBLISH the client stores
//     and, after the store has made it durable but before the client can
//     send it, writes its number to a progress file. A number thus reaches
//     the progress file before its PUBLISH can be acknowledged, replaced by
//     a PUBREL or deleted from the store.
//   - The next number is one past the larger of the progress file and the
//     numbers of the PUBLISH packets in the store. A crash between the two
//     writes leaves the PUBLISH in the store, which the restarted client
//     resends as part of its session; a crash before the store write leaves
//     neither, and the number is published again, for the first time.
//
// Publishes are pipelined, Window at a time, but each waits for the one
// before it to be stored, so the store, and the wire, hold them in order.
// The store is compacted every compactEvery messages.
func TestHelperPublisherProcess(t *testing.T) {
	raw := os.Getenv(crashPublisherEnv)
	if raw == "" {
		t.Skip("the publisher process of TestCrashFileStorePublisherKilledMidStream")
	}
	var cfg crashPublisherConfig
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()

	store, err := mqtt.OpenFileStore(filepath.Join(cfg.Dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	progress, last, err := openProgress(filepath.Join(cfg.Dir, "progress"))
	if err != nil {
		t.Fatal(err)
	}
	defer progress.Close()
	stored := 0
	if err := store.Outbound(func(_ uint16, encoded []byte) bool {
		stored++
		if n, ok := publishedNumber(encoded, cfg.Version); ok {
			last = max(last, n)
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	fmt.Printf(crashStartFormat+"\n", last+1, stored, store.TornTail())

	ps := &progressStore{Store: store, fs: store, version: cfg.Version, file: progress, kick: make(chan struct{}, 1)}
	ps.stored.Store(int64(last))
	c, err := mqtt.Dial(ctx, mqtt.Options{
		Servers: []string{cfg.Broker}, Version: cfg.Version, ClientID: cfg.ClientID,
		// The session must outlive each kill at the broker; Clean Start
		// stays off under both versions.
		SessionExpiry: time.Hour,
		Store:         ps,
		Backoff:       mqtt.Backoff{Min: 10 * time.Millisecond, Max: 100 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	errs := make(chan error, 1)
	fail := func(err error) {
		cancel()
		wg.Wait()
		_ = c.Disconnect(context.Background())
		t.Fatal(err)
	}
	slots := make(chan struct{}, cfg.Window)
	for i := last + 1; i < cfg.Total; i++ {
		select {
		case slots <- struct{}{}:
		case err := <-errs:
			fail(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			m := &mqtt.Message{Topic: cfg.Topic, QoS: cfg.QoS, Payload: strconv.AppendInt(nil, int64(i), 10)}
			if err := c.Publish(ctx, m); err != nil {
				select {
				case errs <- fmt.Errorf("publish %d: %w", i, err):
				default:
				}
			}
		}()
		for ps.stored.Load() < int64(i) {
			select {
			case <-ps.kick:
			case err := <-errs:
				fail(err)
			case <-ctx.Done():
				fail(fmt.Errorf("message %d never reached the store: %w", i, ctx.Err()))
			}
		}
	}
	wg.Wait()
	select {
	case err := <-errs:
		fail(err)
	default:
	}
	if err := c.Disconnect(ctx); err != nil {
		t.Fatal(err)
	}
}

// progressStore is a Store that records, in the progress file, the number
// of each PUBLISH once the store underneath has it.
type progressStore struct {
	mqtt.Store
	fs      *mqtt.FileStore // the same store, for Compact
	version mqtt.Version
	file    *os.File
	stored  atomic.Int64  // the highest number stored and in the progress file
	kick    chan struct{} // a number was stored
}

// PutOutbound stores the packet, then records its number if it is a new
// PUBLISH. The client sends the packet only after this returns.
func (p *progressStore) PutOutbound(id uint16, encoded []byte) error {
	if err := p.Store.PutOutbound(id, encoded); err != nil {
		return err
	}
	n, ok := publishedNumber(encoded, p.version)
	if !ok || int64(n) <= p.stored.Load() {
		return nil // a PUBREL, or a packet stored again
	}
	if err := writeProgress(p.file, n); err != nil {
		return err
	}
	p.stored.Store(int64(n))
	if n%compactEvery == 0 {
		// The stream is too short to reach the automatic threshold;
		// compacting now and then lets some kills land mid-compaction.
		if err := p.fs.Compact(); err != nil {
			return err
		}
	}
	select {
	case p.kick <- struct{}{}:
	default:
	}
	return nil
}

// compactEvery is how many messages the publisher process publishes
// between compactions of its store.
const compactEvery = 20

// publishedNumber returns the number a stored PUBLISH carries.
func publishedNumber(encoded []byte, v mqtt.Version) (int, bool) {
	pk, _, err := packet.Decode(encoded, v, 0)
	if err != nil {
		return 0, false
	}
	pub, ok := pk.(*packet.Publish)
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(string(pub.Payload))
	return n, err == nil
}

// openProgress opens the progress file and returns the number it holds,
// -1 if none yet.
func openProgress(path string) (*os.File, int, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, 0, err
	}
	var b [8]byte
	switch _, err := f.ReadAt(b[:], 0); {
	case errors.Is(err, io.EOF):
		return f, -1, nil
	case err != nil:
		f.Close()
		return nil, 0, err
	}
	return f, int(binary.BigEndian.Uint64(b[:])), nil
}

// writeProgress overwrites the number in place and syncs it. The test
// models process crashes, which cannot tear an 8-byte write within one
// page, not power loss.
func writeProgress(f *os.File, n int) error {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(n))
	if _, err := f.WriteAt(b[:], 0); err != nil {
		return err
	}
	return f.Sync()
}
