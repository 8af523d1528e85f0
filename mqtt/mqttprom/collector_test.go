package mqttprom_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/heraldiot/herald/internal/testenv"
	"github.com/heraldiot/herald/mqtt"
	"github.com/heraldiot/herald/mqtt/mqttprom"
	"github.com/heraldiot/herald/mqtt/packet"
)

// TestCollectorCountsAgainstBroker publishes a known number of messages
// through mosquitto and checks the exported packet counts match the
// protocol exchange exactly.
func TestCollectorCountsAgainstBroker(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := mqtt.Dial(ctx, mqtt.Options{Servers: []string{b.URL()}, ClientID: "metrics"})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(mqttprom.NewCollector(c, prometheus.Labels{"client": "metrics"})); err != nil {
		t.Fatal(err)
	}
	got := make(chan struct{}, 10)
	if err := c.Subscribe(ctx, func(*mqtt.Message) { got <- struct{}{} }, mqtt.Subscription{Filter: "m/#", QoS: mqtt.AtLeastOnce}); err != nil {
		t.Fatal(err)
	}
	const n = 5
	for range n {
		if err := c.Publish(ctx, &mqtt.Message{Topic: "m/x", QoS: mqtt.AtLeastOnce, Payload: []byte("p")}); err != nil {
			t.Fatal(err)
		}
		<-got
	}
	// Our PUBACKs for the received copies go out after the handler
	// returns; wait until all of them are on their way.
	deadline := time.Now().Add(5 * time.Second)
	for c.Stats().Sent[packet.TypePuback].Packets < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	want := `
# HELP mqtt_client_packets_total MQTT packets by direction (sent, received) and type.
# TYPE mqtt_client_packets_total counter
mqtt_client_packets_total{client="metrics",direction="received",type="connack"} 1
mqtt_client_packets_total{client="metrics",direction="received",type="puback"} 5
mqtt_client_packets_total{client="metrics",direction="received",type="publish"} 5
mqtt_client_packets_total{client="metrics",direction="received",type="suback"} 1
mqtt_client_packets_total{client="metrics",direction="sent",type="connect"} 1
mqtt_client_packets_total{client="metrics",direction="sent",type="puback"} 5
mqtt_client_packets_total{client="metrics",direction="sent",type="publish"} 5
mqtt_client_packets_total{client="metrics",direction="sent",type="subscribe"} 1
# HELP mqtt_client_connected 1 while a connection is up.
# TYPE mqtt_client_connected gauge
mqtt_client_connected{client="metrics"} 1
# HELP mqtt_client_inflight QoS 1 and 2 publishes awaiting acknowledgement.
# TYPE mqtt_client_inflight gauge
mqtt_client_inflight{client="metrics"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "mqtt_client_packets_total", "mqtt_client_connected", "mqtt_client_inflight"); err != nil {
		t.Fatal(err)
	}
	// Bytes: each v5 PUBLISH here is 2 (fixed header) + 2+3 (topic) +
	// 2 (packet id) + 1 (empty properties) + 1 (payload) = 11 bytes.
	if n, err := testutil.GatherAndCount(reg, "mqtt_client_packet_bytes_total"); err != nil || n != 8 {
		t.Fatalf("%d byte series (%v), want one per packet series", n, err)
	}
	if s := c.Stats(); s.Sent[packet.TypePublish].Bytes != 5*11 {
		t.Fatalf("PUBLISH bytes sent %d, want %d", s.Sent[packet.TypePublish].Bytes, 5*11)
	}
	if err := c.Disconnect(ctx); err != nil {
		t.Fatal(err)
	}
}
