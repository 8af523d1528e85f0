package mqtt_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldiot/herald/internal/testenv"
	"github.com/heraldiot/herald/internal/testenv/load"
	"github.com/heraldiot/herald/mqtt"
)

// benchPayload is the telemetry-sized payload of the publish benchmarks.
var benchPayload = bytes.Repeat([]byte{0x5A}, 64)

// benchWarmup publishes this many messages before the timer starts, so the
// reported allocations are the steady state's: pending flows, the session
// store, the packet-ID map and the write buffers have all reached their
// working size by then.
const benchWarmup = 20000

// benchParallelism multiplies GOMAXPROCS into the number of publishing
// goroutines of the QoS 1 benchmark. It is chosen so that, even on a
// two-core machine, more publishers wait than mosquitto's default Receive
// Maximum (20) admits, keeping the in-flight window full.
const benchParallelism = 32

// startBenchBroker starts a mosquitto with its default flow-control settings
// for b, or skips b when mosquitto is not installed.
func startBenchBroker(b *testing.B) *testenv.Broker {
	b.Helper()
	if _, err := testenv.MosquittoPath(); err != nil {
		b.Skip(err)
	}
	return testenv.StartBroker(b, testenv.BrokerOptions{})
}

// dialBench connects a client for one benchmark run and disconnects it when
// the run ends.
func dialBench(b *testing.B, broker *testenv.Broker, v mqtt.Version) *mqtt.Client {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := mqtt.Dial(ctx, mqtt.Options{
		Servers:    []string{broker.URL()},
		Version:    v,
		CleanStart: true,
	})
	if err != nil {
		b.Fatalf("connect: %v", err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.Disconnect(ctx); err != nil {
			b.Errorf("disconnect: %v", err)
		}
	})
	return c
}

// BenchmarkPublishQoS0 publishes 64-byte QoS 0 messages from one goroutine
// to a real mosquitto on loopback. The timed region ends with a QoS 1
// publish on the same connection: mosquitto handles a connection's packets
// in order, so its PUBACK means the broker has read every QoS 0 message
// before it, and the figure is what the broker accepted, not what the client
// buffered.
func BenchmarkPublishQoS0(b *testing.B) {
	broker := startBenchBroker(b)
	for _, v := range versions {
		b.Run("v"+v.String(), func(b *testing.B) {
			c := dialBench(b, broker, v)
			ctx := context.Background()
			m := &mqtt.Message{Topic: "bench/qos0", Payload: benchPayload}
			fence := &mqtt.Message{Topic: "bench/qos0", Payload: benchPayload, QoS: mqtt.AtLeastOnce}
			for range benchWarmup {
				if err := c.Publish(ctx, m); err != nil {
					b.Fatal(err)
				}
			}
			if err := c.Publish(ctx, fence); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(benchPayload)))
			b.ReportAllocs()
			mallocs := startMallocs(b)
			for range b.N {
				if err := c.Publish(ctx, m); err != nil {
					b.Fatal(err)
				}
			}
			if err := c.Publish(ctx, fence); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			mallocs.report(b)
		})
	}
}

// BenchmarkPublishQoS1 publishes 64-byte QoS 1 messages from many goroutines
// at once, so the in-flight window the server grants (its Receive Maximum;
// all a 3.1.1 client has is the number of publishers) stays full and
// publishes are pipelined rather than one round trip each. An op is one
// publish acknowledged by PUBACK.
func BenchmarkPublishQoS1(b *testing.B) {
	broker := startBenchBroker(b)
	for _, v := range versions {
		b.Run("v"+v.String(), func(b *testing.B) {
			c := dialBench(b, broker, v)
			ctx := context.Background()
			warm := &mqtt.Message{Topic: "bench/qos1", Payload: benchPayload, QoS: mqtt.AtLeastOnce}
			warmup(b, benchWarmup, benchParallelism*4, func() error { return c.Publish(ctx, warm) })
			b.SetBytes(int64(len(benchPayload)))
			b.SetParallelism(benchParallelism)
			b.ReportAllocs()
			mallocs := startMallocs(b)
			b.RunParallel(func(pb *testing.PB) {
				// One Message per goroutine: Publish only reads it.
				m := &mqtt.Message{Topic: "bench/qos1", Payload: benchPayload, QoS: mqtt.AtLeastOnce}
				for pb.Next() {
					if err := c.Publish(ctx, m); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			mallocs.report(b)
		})
	}
}

// mallocCount reports a benchmark's allocations per op unrounded: the
// standard allocs/op truncates, so a buffer that is regrown now and then
// shows as 0 allocs/op and only B/op gives it away.
type mallocCount uint64

// startMallocs resets the timer and notes the allocation count.
func startMallocs(b *testing.B) mallocCount {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ResetTimer()
	return mallocCount(ms.Mallocs)
}

// report adds the msg/s and exact mallocs/op metrics; the timer must be
// stopped.
func (start mallocCount) report(b *testing.B) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.Mallocs-uint64(start))/float64(b.N), "mallocs/op")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
}

// warmup runs publish total times from workers goroutines, so every
// structure that grows with the number of flows in flight reaches its size.
func warmup(b *testing.B, total, workers int, publish func() error) {
	b.Helper()
	var left atomic.Int64
	left.Store(int64(total))
	errs := make(chan error, workers)
	for range workers {
		go func() {
			for left.Add(-1) >= 0 {
				if err := publish(); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
}

// replayMessages is how many retained messages BenchmarkRetainedReplay
// has the broker replay: enough that a run is a few seconds of steady
// state, not the subscription's round trip.
const replayMessages = 200000

// BenchmarkRetainedReplay measures the receive path the way a fleet's
// rebuild uses it: a new subscriber at QoS 1 takes the broker's retained
// messages as fast as the broker sends them, each costing the client its
// share of a read and a PUBACK. Messages are fleet-sized (a 30-byte topic,
// a 130-byte payload). Sub-benchmarks set the Receive Maximum: the default
// (64) and a fleet session's (4096). An op is the whole replay. On a
// machine the broker shares, msg/s depends on what else runs; the client's
// own cost per message (CPU, and read and write system calls: how well it
// batches) is the steadier figure to compare.
func BenchmarkRetainedReplay(b *testing.B) {
	if _, err := testenv.MosquittoPath(); err != nil {
		b.Skip(err)
	}
	broker, err := testenv.NewBroker(b.TempDir(), testenv.BrokerOptions{Config: []string{"max_queued_messages 0"}})
	if err != nil {
		b.Fatal(err)
	}
	defer broker.Stop()
	payload := bytes.Repeat([]byte("x"), 130)
	err = load.Publish(context.Background(), broker.URL(), replayMessages, func(i int) mqtt.Message {
		return mqtt.Message{Topic: fmt.Sprintf("replay/dev-%07d/inventory", i), Payload: payload, Retain: true, QoS: mqtt.AtLeastOnce}
	})
	if err != nil {
		b.Fatal(err)
	}
	for _, window := range []uint16{64, 4096} {
		b.Run(fmt.Sprintf("window=%d", window), func(b *testing.B) {
			var received time.Duration
			before, counted := processUsage()
			for b.Loop() {
				received += replayOnce(b, broker, window)
			}
			messages := float64(b.N * replayMessages)
			b.ReportMetric(messages/received.Seconds(), "msg/s")
			if after, ok := processUsage(); ok && counted {
				b.ReportMetric(float64(after.cpu-before.cpu)/float64(time.Microsecond)/messages, "cpu-µs/msg")
				b.ReportMetric(float64(after.reads-before.reads)/messages, "reads/msg")
				b.ReportMetric(float64(after.writes-before.writes)/messages, "writes/msg")
			}
		})
	}
}

// replayOnce subscribes a new clean session to the replay's retained
// messages and returns how long they took to arrive.
func replayOnce(b *testing.B, broker *testenv.Broker, window uint16) time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var got atomic.Int64
	all := make(chan struct{})
	c, err := mqtt.Dial(ctx, mqtt.Options{
		Servers:        []string{broker.URL()},
		CleanStart:     true,
		ReceiveMaximum: window,
		HandlerQueue:   int(window) + int(window)/8,
	})
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	err = c.Subscribe(ctx, func(*mqtt.Message) {
		if got.Add(1) == replayMessages {
			close(all)
		}
	}, mqtt.Subscription{Filter: "replay/#", QoS: mqtt.AtLeastOnce})
	if err != nil {
		b.Fatal(err)
	}
	select {
	case <-all:
	case <-ctx.Done():
		b.Fatalf("%d of %d retained messages arrived", got.Load(), replayMessages)
	}
	d := time.Since(start)
	if err := c.Disconnect(ctx); err != nil {
		b.Fatal(err)
	}
	return d
}

// usage is what the process has used so far: CPU time, user and system,
// and read and write system calls.
type usage struct {
	cpu           time.Duration
	reads, writes uint64
}

// processUsage reads the process's usage from Linux's /proc; ok is false
// elsewhere. Once the loader has disconnected, the replaying client is all
// that runs in the process, so the difference over a replay is its own.
func processUsage() (u usage, ok bool) {
	stat, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return u, false
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces: utime and stime are the 12th and 13th, in clock ticks of
	// 10 ms (USER_HZ).
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	if len(fields) < 13 {
		return u, false
	}
	for _, f := range fields[11:13] {
		ticks, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return u, false
		}
		u.cpu += time.Duration(ticks) * 10 * time.Millisecond
	}
	io, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return u, false
	}
	var found int
	for _, line := range strings.Split(string(io), "\n") {
		name, value, _ := strings.Cut(line, ": ")
		n, err := strconv.ParseUint(value, 10, 64)
		switch {
		case err != nil:
		case name == "syscr":
			u.reads, found = n, found+1
		case name == "syscw":
			u.writes, found = n, found+1
		}
	}
	return u, found == 2
}
