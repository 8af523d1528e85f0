package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// A child process runs one client library, so that the CPU time and memory
// it reports are that library's alone. It talks to the driver in lines:
//
//	child: ready            connected, waiting to start
//	driver: go              start publishing
//	child: acked            QoS 1: every PUBACK has arrived; QoS 0 with
//	                        a fence: the fence's PUBACK has arrived
//	child: sent             QoS 0 counted by a subscriber: every message
//	                        handed to the library
//	driver: stop            the subscriber has counted every message
//	child: result {json}    CPU and allocations between go and stop/acked
//
// A child that fails prints "error <text>" and exits with status 1.

// childResult is what a throughput child measured about itself.
type childResult struct {
	User       time.Duration `json:"user_ns"`
	Sys        time.Duration `json:"sys_ns"`
	Mallocs    uint64        `json:"mallocs"`
	AllocBytes uint64        `json:"alloc_bytes"`
	GCs        uint32        `json:"gcs"`
}

// CPU is the user plus system time of the child.
func (r childResult) CPU() time.Duration { return r.User + r.Sys }

func rusage() (user, sys time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err) // cannot fail for RUSAGE_SELF
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}

// runThroughputChild connects, waits for the driver's go, publishes and
// reports.
func runThroughputChild(cfg *runConfig, fence bool, profileDir string) error {
	lib, err := findLibrary(cfg.client)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	p, err := lib.dial(ctx, cfg)
	cancel()
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer p.close()
	if pr, ok := p.(preparer); ok {
		if err := pr.prepare(cfg.n); err != nil {
			return err
		}
	}
	// Start from a collected heap, so a GC the setup owes is not charged
	// to the measurement.
	runtime.GC()
	in := bufio.NewScanner(os.Stdin)
	fmt.Println("ready")
	if err := expectLine(in, "go"); err != nil {
		return err
	}
	if profileDir != "" {
		f, err := os.Create(filepath.Join(profileDir, fmt.Sprintf("%s-%s-qos%d.cpu.pprof", cfg.client, cfg.version, cfg.qos)))
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
	}
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	u0, s0 := rusage()

	if err := p.publish(cfg.n); err != nil {
		return err
	}
	switch {
	case cfg.qos > 0:
		fmt.Println("acked")
	case fence:
		if err := p.fence(); err != nil {
			return fmt.Errorf("fence: %w", err)
		}
		fmt.Println("acked")
	default:
		fmt.Println("sent")
		if err := expectLine(in, "stop"); err != nil {
			return err
		}
	}

	u1, s1 := rusage()
	runtime.ReadMemStats(&m1)
	if profileDir != "" {
		pprof.StopCPUProfile()
	}
	out, err := json.Marshal(childResult{
		User:       u1 - u0,
		Sys:        s1 - s0,
		Mallocs:    m1.Mallocs - m0.Mallocs,
		AllocBytes: m1.TotalAlloc - m0.TotalAlloc,
		GCs:        m1.NumGC - m0.NumGC,
	})
	if err != nil {
		return err
	}
	fmt.Printf("result %s\n", out)
	return nil
}

func expectLine(in *bufio.Scanner, want string) error {
	if !in.Scan() {
		if err := in.Err(); err != nil {
			return err
		}
		return io.ErrUnexpectedEOF
	}
	if got := strings.TrimSpace(in.Text()); got != want {
		return fmt.Errorf("driver said %q, want %q", got, want)
	}
	return nil
}

// idleResult is what an idle-memory child measured: the growth of its Go
// runtime's memory from before the first connect to after the last, both
// after a full collection.
type idleResult struct {
	Clients    int   `json:"clients"`
	HeapInuse  int64 `json:"heap_inuse"`
	StackInuse int64 `json:"stack_inuse"`
	Goroutines int   `json:"goroutines"`
}

// idleConnectors is how many clients connect at once; more would only
// queue in mosquitto's accept loop.
const idleConnectors = 16

// runIdleChild connects count clients with a 60s keepalive, lets them
// settle, and reports what they hold.
func runIdleChild(cfg *runConfig, count int, profileDir string) error {
	lib, err := findLibrary(cfg.client)
	if err != nil {
		return err
	}
	if profileDir != "" {
		// Record every allocation: at the default sampling rate a
		// profile of a few MiB names only the largest few sites.
		runtime.MemProfileRate = 1
	}
	var before, after runtime.MemStats
	settle(&before)
	goroutines := runtime.NumGoroutine()

	clients := make([]publisher, count)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, idleConnectors)
	for w := range idleConnectors {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < count; i = int(next.Add(1)) - 1 {
				c := *cfg
				c.clientID = clientID(cfg.client+"-idle", cfg.version, i)
				c.topic = "bench/idle/" + c.clientID
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				p, err := lib.dial(ctx, &c)
				if err == nil {
					clients[i] = p
					err = p.echo(ctx)
				}
				cancel()
				if err != nil {
					errs[w] = fmt.Errorf("client %d: %w", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	err = errors.Join(errs...)
	if err == nil {
		// Idle means past the connect: let every client's goroutines
		// reach the state they keep between keepalives.
		time.Sleep(2 * time.Second)
		settle(&after)
		if profileDir != "" {
			err = writeHeapProfile(filepath.Join(profileDir, fmt.Sprintf("%s-%s-idle.heap.pprof", cfg.client, cfg.version)))
		}
		out, jerr := json.Marshal(idleResult{
			Clients:    count,
			HeapInuse:  int64(after.HeapInuse) - int64(before.HeapInuse),
			StackInuse: int64(after.StackInuse) - int64(before.StackInuse),
			Goroutines: runtime.NumGoroutine() - goroutines,
		})
		switch {
		case jerr != nil:
			err = jerr
		case err == nil:
			fmt.Printf("result %s\n", out)
		}
	}
	for _, p := range clients {
		if p != nil {
			wg.Go(func() { _ = p.close() })
		}
	}
	wg.Wait()
	return err
}

// settle collects garbage until the heap is what is live and reads the
// memory statistics.
func settle(m *runtime.MemStats) {
	runtime.GC()
	runtime.GC()
	debug.FreeOSMemory()
	runtime.ReadMemStats(m)
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	return errors.Join(pprof.Lookup("heap").WriteTo(f, 0), f.Close())
}
