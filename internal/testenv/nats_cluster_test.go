package testenv_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/heraldiot/herald/internal/testenv"
)

// TestInteropNATSCluster starts a 3-node nats-server cluster and checks,
// with hand-encoded packets, that every node accepts MQTT 3.1.1 and lists
// the connection it serves, and that a killed node refuses connections
// until Restart brings it back. The controllers' NATS cluster test uses
// every part of the helper already, so this runs with HERALD_INTEROP=full
// (`make interop`) only.
func TestInteropNATSCluster(t *testing.T) {
	if os.Getenv("HERALD_INTEROP") != "full" {
		t.Skip("HERALD_INTEROP=full (make interop) runs it")
	}
	c := testenv.StartNATSCluster(t, 3)
	if len(c.Nodes) != 3 || c.StreamReplicas != 3 {
		t.Fatalf("%d nodes, %d stream replicas; want 3 and 3", len(c.Nodes), c.StreamReplicas)
	}
	// Each connection has a client ID of its own: nats-server refuses a
	// CONNECT whose ID another node has just served, while it still
	// deletes that session.
	connects := 0
	accepts := func(node *testenv.NATSNode) {
		t.Helper()
		connects++
		id := fmt.Sprintf("proof-%s-%d", node.Name, connects)
		conn, err := net.Dial("tcp", node.MQTTAddr)
		if err != nil {
			t.Fatalf("%s: %v", node.Name, err)
		}
		defer conn.Close()
		if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
			t.Fatal(err)
		}
		ack := make([]byte, 4)
		if _, err := conn.Write(connectPacket(4, id, "", "")); err != nil {
			t.Fatalf("%s: %v", node.Name, err)
		}
		if _, err := io.ReadFull(conn, ack); err != nil || ack[0] != 0x20 || ack[3] != 0 {
			t.Fatalf("%s: CONNACK % x, err %v; want success", node.Name, ack, err)
		}
		conns, err := node.MQTTConnections(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(conns, func(c testenv.NATSMQTTConn) bool { return c.ClientID == id }) {
			t.Fatalf("%s lists %+v, not the connection it accepted", node.Name, conns)
		}
	}
	for _, node := range c.Nodes {
		accepts(node)
	}

	n3 := c.Nodes[2]
	n3.Kill()
	if n3.Running() {
		t.Fatal("killed node still running")
	}
	if conn, err := net.DialTimeout("tcp", n3.MQTTAddr, time.Second); err == nil {
		conn.Close()
		t.Fatal("killed node still accepts connections")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := n3.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	for _, node := range c.Nodes {
		accepts(node)
	}
}
