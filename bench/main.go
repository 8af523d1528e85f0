// Command bench compares Herald's MQTT client with the Eclipse Paho Go
// clients and with the raw limit of the socket, against one mosquitto on
// loopback.
//
// Run without -child or -idle-child it is the driver: it starts mosquitto,
// runs every client in a process of its own (this binary again, with
// -child), so that each one's CPU time and memory are its own, and prints
// the tables. See docs/benchmarks.md for the method.
//
//	bench                                   the whole comparison
//	bench -child -client herald -qos 1 ...  one client process (driver use)
//
// The module is separate from Herald's so that Paho never enters Herald's
// dependency graph.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/heraldiot/herald/mqtt/packet"
)

func main() {
	var (
		n          = flag.Int("n", 200000, "messages per run")
		size       = flag.Int("size", 64, "payload bytes")
		window     = flag.Int("window", 20, "QoS 1 publishes in flight at most (mosquitto's max_inflight_messages default)")
		maxInfl    = flag.Int("max-inflight", 0, "set mosquitto's max_inflight_messages (and -window) to this instead of keeping the default")
		rounds     = flag.Int("rounds", 5, "rounds per client and QoS; the tables show medians")
		idle       = flag.Int("idle", 1000, "idle clients per process for the memory test (0 skips it)")
		qosList    = flag.String("qos", "0,1", "QoS levels to measure, or '' for none (a child takes one)")
		clientList = flag.String("clients", "raw,herald,paho.golang,paho.mqtt.golang", "clients to measure")
		pahoAsync  = flag.Bool("paho-async", false, "publish paho.golang QoS 1 with AsyncSend from one goroutine instead of -window goroutines")
		qos0Accept = flag.String("qos0-accept", "fence", "how a QoS 0 run learns the broker took every message: fence (a QoS 1 publish after them on the same connection) or subscriber (a subscriber counts them)")
		profileDir = flag.String("profile", "", "write each client's CPU profile of its measured window into this directory")

		asChild     = flag.Bool("child", false, "run one client's throughput measurement (used by the driver)")
		fence       = flag.Bool("fence", false, "child: end a QoS 0 run with a QoS 1 fence")
		asIdleChild = flag.Bool("idle-child", false, "run one client's idle-memory measurement (used by the driver)")
		client      = flag.String("client", "", "child: client library")
		proto       = flag.String("proto", "5.0", "child: MQTT version, 5.0 or 3.1.1")
		addr        = flag.String("broker", "", "child: broker host:port")
		topic       = flag.String("topic", "bench", "child: topic to publish to")
		id          = flag.String("id", "bench", "child: client identifier")
		count       = flag.Int("count", 1000, "idle child: clients to connect")
	)
	flag.Parse()

	var err error
	switch {
	case *asChild || *asIdleChild:
		cfg := &runConfig{
			client: *client, n: *n, size: *size, window: *window,
			addr: *addr, topic: *topic, clientID: *id, keepAlive: clientKeepAlive, pahoAsync: *pahoAsync,
		}
		err = runChild(cfg, *asChild, *fence, *proto, *qosList, *profileDir, *count)
		if err != nil {
			// The driver reads the reason from our output.
			fmt.Printf("error %v\n", err)
		}
	default:
		if *maxInfl > 0 {
			*window = *maxInfl
		}
		err = runDriver(&suite{
			n: *n, size: *size, window: *window, rounds: *rounds, idle: *idle,
			clients: strings.Split(*clientList, ","), pahoAsync: *pahoAsync, profileDir: *profileDir,
			qos0Accept: *qos0Accept, maxInflight: *maxInfl,
			log: os.Stderr,
		}, *qosList)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func runChild(cfg *runConfig, throughput, fence bool, proto, qos, profileDir string, clients int) error {
	var err error
	if cfg.version, err = parseVersion(proto); err != nil {
		return err
	}
	if !throughput {
		return runIdleChild(cfg, clients, profileDir)
	}
	switch qos {
	case "0", "1":
		cfg.qos = qos[0] - '0'
	default:
		return fmt.Errorf("child QoS %q: want 0 or 1", qos)
	}
	return runThroughputChild(cfg, fence, profileDir)
}

func parseVersion(s string) (packet.Version, error) {
	switch s {
	case "5", "5.0":
		return packet.V5, nil
	case "3.1.1", "4":
		return packet.V311, nil
	}
	return 0, fmt.Errorf("unknown MQTT version %q", s)
}

func runDriver(s *suite, qosList string) error {
	for _, q := range strings.Split(qosList, ",") {
		if q == "" {
			continue // -qos '' measures idle memory alone
		}
		l, err := strconv.Atoi(strings.TrimSpace(q))
		if err != nil || l < 0 || l > 1 {
			return fmt.Errorf("QoS %q: only 0 and 1 are measured", q)
		}
		s.qos = append(s.qos, byte(l))
	}
	if s.qos0Accept != acceptFence && s.qos0Accept != acceptSubscriber {
		return fmt.Errorf("-qos0-accept %q: want %s or %s", s.qos0Accept, acceptFence, acceptSubscriber)
	}
	if s.n < 1 || s.window < 1 || s.rounds < 1 {
		return fmt.Errorf("-n, -window and -rounds must be positive")
	}
	dir, err := os.MkdirTemp("", "herald-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if s.profileDir != "" {
		if err := os.MkdirAll(s.profileDir, 0o755); err != nil {
			return err
		}
	}
	start := time.Now()
	r, err := s.run(dir)
	if err != nil {
		return err
	}
	r.cpus = runtime.NumCPU()
	r.print(os.Stdout)
	fmt.Fprintf(os.Stderr, "\nbench: done in %s\n", time.Since(start).Round(time.Second))
	return nil
}
