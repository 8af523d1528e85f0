package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// NATSCluster is a cluster of nats-server processes (Debian's nats-server
// 2.9) owned by one test: JetStream clustered over routes between the
// nodes, and the MQTT gateway on every node, so that MQTT clients on
// different nodes share sessions, retained messages and QoS 1 delivery.
// It serves MQTT 3.1.1 only, at QoS 0 and 1 (see lacks[NATS]).
type NATSCluster struct {
	// Nodes are the servers, named n1 to nN.
	Nodes []*NATSNode
	// StreamReplicas is the replica count of the MQTT gateway's JetStream
	// streams (sessions, retained messages, QoS 1 messages): the cluster
	// size, at most 3.
	StreamReplicas int
}

// NATSNode is one server of a NATSCluster. Its listeners keep their
// addresses across Kill and Restart, as a node behind a fixed address
// would, so clients and the other nodes find it again.
type NATSNode struct {
	// Name is the node's server_name, n1 to nN.
	Name string
	// MQTTAddr is host:port of the node's MQTT listener.
	MQTTAddr string

	bin  string
	conf string
	// ready is the log line after which the node's listeners are open:
	// nats-server opens the route listener last.
	ready string

	// mu guards the running process and the logs of earlier ones.
	mu   sync.Mutex
	proc *process // nil while killed
	http string   // monitoring listener of proc, for /healthz
	past []string // logs of killed processes, oldest first
}

// natsReadyTimeout bounds how long a cluster, or a restarted node, may
// take to elect a JetStream meta leader, create or catch up the MQTT
// streams and accept MQTT connections. A 3-node cluster was ready in
// 2.3-3.7 s on 2 cores and a restarted node in 1-8 s; machines differ 3×
// in speed.
const natsReadyTimeout = 60 * time.Second

// StartNATSCluster starts an n-node nats-server cluster for tb and stops it
// when tb ends, logging every node's output if tb failed. It returns once
// every node accepts an MQTT connection and answers /healthz (JetStream
// meta leader known, its stream replicas current). One node is a
// standalone JetStream server. A missing nats-server skips tb, or fails it
// when RequiredEnv is set.
func StartNATSCluster(tb testing.TB, n int) *NATSCluster {
	tb.Helper()
	if n < 1 {
		tb.Fatalf("testenv: a NATS cluster needs at least one node, not %d", n)
	}
	bin, err := lookPath("nats-server")
	if err != nil {
		missingBroker(tb, NATS, err)
	}
	c := &NATSCluster{StreamReplicas: min(n, 3)}
	// The directory first: cleanups run last-registered first, and the
	// nodes must be gone before their stores are removed.
	dir := tb.TempDir()
	tb.Cleanup(func() {
		for _, node := range c.Nodes {
			node.Kill()
		}
		if tb.Failed() {
			for _, node := range c.Nodes {
				tb.Logf("nats-server %s log:\n%s", node.Name, node.Log())
			}
		}
	})
	// Routes name every node's cluster port, so all ports are picked
	// before the first node starts. Free ports are picked by binding and
	// releasing them, so another process can take one before its node
	// binds it; starting the whole cluster again on new ports makes that
	// harmless.
	for attempt := 0; ; attempt++ {
		err := c.start(bin, filepath.Join(dir, fmt.Sprintf("attempt-%d", attempt)), n)
		if err == nil {
			break
		}
		for _, node := range c.Nodes {
			node.Kill()
		}
		if attempt == 2 || !addrInUse(err) {
			tb.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), natsReadyTimeout)
	defer cancel()
	for _, node := range c.Nodes {
		if err := node.waitReady(ctx, true); err != nil {
			tb.Fatal(err)
		}
	}
	return c
}

// start writes every node's configuration under dir and starts the nodes.
func (c *NATSCluster) start(bin, dir string, n int) error {
	c.Nodes = make([]*NATSNode, n)
	routes := make([]string, n)
	for i := range n {
		mqttAddr, err := FreeAddr()
		if err != nil {
			return err
		}
		routeAddr, err := FreeAddr()
		if err != nil {
			return err
		}
		c.Nodes[i] = &NATSNode{Name: fmt.Sprintf("n%d", i+1), MQTTAddr: mqttAddr, bin: bin, ready: "Server is ready"}
		routes[i] = routeAddr
	}
	for i, node := range c.Nodes {
		nodeDir := filepath.Join(dir, node.Name)
		if err := os.MkdirAll(nodeDir, 0o700); err != nil {
			return err
		}
		var others []string
		for j, r := range routes {
			if j != i {
				others = append(others, fmt.Sprintf("%q", "nats-route://"+r))
			}
		}
		// JetStream refuses to run clustered without routes, so a
		// one-node cluster is a standalone server.
		clusterConf := ""
		if n > 1 {
			node.ready = "Listening for route connections"
			clusterConf = fmt.Sprintf("cluster {\n  name: herald-test\n  listen: %q\n  routes: [%s]\n}\n", routes[i], strings.Join(others, ", "))
		}
		// The NATS client and monitoring ports are picked by the server
		// (-1); the monitoring address is read back from the log. Only
		// the MQTT and route ports, which clients and the other nodes
		// must know in advance, can be lost to another process.
		// stream_replicas is said explicitly: without it nats-server 2.9
		// takes the number of routes in the configuration, at most 3,
		// which is 2 here since a node names the other nodes alone.
		conf := fmt.Sprintf(`server_name: %s
listen: "127.0.0.1:-1"
http: "127.0.0.1:-1"
jetstream {
  store_dir: %q
}
%smqtt {
  listen: %q
  stream_replicas: %d
}
`, node.Name, filepath.Join(nodeDir, "jetstream"), clusterConf, node.MQTTAddr, c.StreamReplicas)
		node.conf = filepath.Join(nodeDir, "nats.conf")
		if err := os.WriteFile(node.conf, []byte(conf), 0o600); err != nil {
			return err
		}
		if err := node.launch(); err != nil {
			return err
		}
	}
	return nil
}

// URL is the node's MQTT listener as a tcp:// URL.
func (n *NATSNode) URL() string { return "tcp://" + n.MQTTAddr }

// monitorLine is where nats-server says which port it picked for
// monitoring.
var monitorLine = regexp.MustCompile(`Starting http monitor on (\S+)`)

// launch starts the node's process. It returns once every listener is
// open (the route listener, in a cluster, is the last).
func (n *NATSNode) launch() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc != nil {
		return fmt.Errorf("testenv: nats-server %s is already running", n.Name)
	}
	p, err := startProcess("nats-server "+n.Name, exec.Command(n.bin, "-c", n.conf), n.ready)
	if err != nil {
		return err
	}
	m := monitorLine.FindStringSubmatch(p.log.String())
	if m == nil {
		p.stop()
		return fmt.Errorf("nats-server %s did not say where it monitors:\n%s", n.Name, p.log.String())
	}
	n.proc, n.http = p, m[1]
	return nil
}

// Kill ends the node with SIGKILL, as a crash would, and waits for it. It
// does nothing when the node is not running.
func (n *NATSNode) Kill() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil {
		return
	}
	n.proc.stop()
	n.past = append(n.past, n.proc.log.String())
	n.proc = nil
}

// Restart starts a killed node again with its configuration and store, and
// waits until it has rejoined the JetStream cluster (it knows the meta
// leader) and accepts MQTT connections. Its stream replicas may still be
// catching up; see waitReady.
func (n *NATSNode) Restart(ctx context.Context) error {
	if err := n.launch(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, natsReadyTimeout)
	defer cancel()
	return n.waitReady(ctx, false)
}

// Running reports whether the node's process runs.
func (n *NATSNode) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc != nil
}

// Log returns the node's recent log lines, those of killed processes first.
func (n *NATSNode) Log() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	logs := n.past
	if n.proc != nil {
		logs = append(logs[:len(logs):len(logs)], n.proc.log.String())
	}
	return strings.Join(logs, "\n--- killed; restarted ---\n")
}

// waitReady polls the node until it knows the JetStream meta leader, then
// until it accepts an MQTT connection, then, when strict, until /healthz
// is ok. An MQTT CONNECT before the node knows the meta leader waits out
// nats-server's 4 s JetStream request timeout and is refused. The first
// connection to the cluster creates the gateway's streams, and /healthz is
// ok once this node's replicas of them are current.
//
// A restarted node is not held to the last step: nats-server 2.9.10's
// /healthz kept reporting the node's own idle retained-message consumer
// ($MQTT_rmsgs_<node>) "not current" after a restart, for over a minute in
// one run and over 15 s in another of three, while the node served MQTT
// clients, retained messages included.
func (n *NATSNode) waitReady(ctx context.Context, strict bool) error {
	n.mu.Lock()
	p, monitor := n.proc, n.http
	n.mu.Unlock()
	if p == nil {
		return fmt.Errorf("testenv: nats-server %s is not running", n.Name)
	}
	checks := []func(context.Context) error{
		func(ctx context.Context) error {
			err := healthz(ctx, monitor)
			if err != nil && strings.Contains(err.Error(), "is not current") && !strings.Contains(err.Error(), "meta leader") {
				return nil // a stream or consumer catching up: the meta leader is known
			}
			return err
		},
		func(ctx context.Context) error { return mqttConnect(ctx, n.MQTTAddr, "herald-ready-"+n.Name) },
	}
	if strict {
		checks = append(checks, func(ctx context.Context) error { return healthz(ctx, monitor) })
	}
	var last error
	for _, check := range checks {
		for {
			if last = check(ctx); last == nil {
				break
			}
			select {
			case <-p.done:
				p.drain()
				return fmt.Errorf("nats-server %s exited (%v) before it was ready:\n%s", n.Name, p.err, p.log.String())
			case <-ctx.Done():
				return fmt.Errorf("nats-server %s not ready: %w; last: %v:\n%s", n.Name, ctx.Err(), last, p.log.String())
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

// NATSMQTTConn is an MQTT connection a NATS node serves, from its
// monitoring listener (/connz).
type NATSMQTTConn struct {
	// ClientID is the client identifier from the CONNECT packet. The
	// connection is listed from the CONNECT on, before the CONNACK.
	ClientID string
	// InMsgs counts the PUBLISH packets the client has sent: above 0 only
	// once the CONNECT was accepted.
	InMsgs int64
}

// MQTTConnections returns the MQTT connections the node serves now, so a
// test can tell which node a client is connected to.
func (n *NATSNode) MQTTConnections(ctx context.Context) ([]NATSMQTTConn, error) {
	n.mu.Lock()
	running, monitor := n.proc != nil, n.http
	n.mu.Unlock()
	if !running {
		return nil, fmt.Errorf("testenv: nats-server %s is not running", n.Name)
	}
	var connz struct {
		Total       int `json:"total"`
		Connections []struct {
			MQTTClient string `json:"mqtt_client"`
			InMsgs     int64  `json:"in_msgs"`
		} `json:"connections"`
	}
	// /connz pages at 1024 connections by default; tests have fewer
	// than the limit asked for here, which Total checks.
	const limit = 100000
	if err := monitorGet(ctx, monitor, fmt.Sprintf("/connz?limit=%d", limit), &connz); err != nil {
		return nil, err
	}
	if connz.Total > len(connz.Connections) {
		return nil, fmt.Errorf("nats-server %s serves %d connections, more than the %d /connz listed", n.Name, connz.Total, len(connz.Connections))
	}
	var conns []NATSMQTTConn
	for _, c := range connz.Connections {
		if c.MQTTClient != "" {
			conns = append(conns, NATSMQTTConn{ClientID: c.MQTTClient, InMsgs: c.InMsgs})
		}
	}
	return conns, nil
}

// healthz asks a nats-server's monitoring listener whether it is healthy:
// with JetStream clustered, that it knows the meta leader and that its
// replicas of every stream and consumer are current.
func healthz(ctx context.Context, monitor string) error {
	return monitorGet(ctx, monitor, "/healthz", nil)
}

// monitorGet gets path from a nats-server's monitoring listener and, when
// out is not nil, decodes the JSON answer into it.
func monitorGet(ctx context.Context, monitor, path string, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+monitor+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s: %s", path, resp.Status, strings.TrimSpace(string(body)))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// mqttConnect opens an MQTT 3.1.1 connection with a clean session, checks
// that the CONNACK accepts it, and disconnects. The packets are encoded
// here, not with Herald's client, which the tests this package serves
// test.
func mqttConnect(ctx context.Context, addr, clientID string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	// Variable header: protocol name "MQTT", level 4 (3.1.1), flags with
	// Clean Session alone, keep alive 60 s [MQTT-3.1.2]; payload: the
	// client identifier.
	body := []byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, byte(len(clientID) >> 8), byte(len(clientID))}
	body = append(body, clientID...)
	if len(body) > 127 {
		return fmt.Errorf("client ID %q too long for a one-byte remaining length", clientID)
	}
	if _, err := conn.Write(append([]byte{0x10, byte(len(body))}, body...)); err != nil {
		return err
	}
	ack := make([]byte, 4)
	if _, err := io.ReadFull(conn, ack); err != nil {
		return fmt.Errorf("CONNACK: %w", err)
	}
	if ack[0] != 0x20 || ack[1] != 2 {
		return fmt.Errorf("CONNACK expected, got % x", ack)
	}
	if ack[3] != 0 {
		return fmt.Errorf("CONNECT refused with return code %d", ack[3])
	}
	// DISCONNECT, so the server ends the session without a Will; the
	// CONNACK already answered the question.
	_, _ = conn.Write([]byte{0xe0, 0})
	return nil
}
