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
# HELP mqtt_client_dropped_oversized_total Received messages larger than the maximum packet size, skipped without delivery.
# TYPE mqtt_client_dropped_oversized_total counter
mqtt_client_dropped_oversized_total{client="metrics"} 0
# HELP mqtt_client_write_buffer_full_total Connections closed because the server stopped reading what we wrote.
# TYPE mqtt_client_write_buffer_full_total counter
mqtt_client_write_buffer_full_total{client="metrics"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "mqtt_client_packets_total", "mqtt_client_connected",
		"mqtt_client_inflight", "mqtt_client_dropped_oversized_total", "mqtt_client_write_buffer_full_total"); err != nil {
		t.Fatal(err)
	}
	// How writes batch decides the peak; it held at least one packet and
	// never more than all that went out.
	if s := c.Stats(); s.WriteBufferPeak == 0 || s.WriteBufferPeak > s.BytesOut {
		t.Fatalf("write buffer peak %d with %d bytes sent", s.WriteBufferPeak, s.BytesOut)
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

// fixedStats is a StatsSource with set values.
type fixedStats mqtt.Stats

func (s fixedStats) Stats() mqtt.Stats { return mqtt.Stats(s) }

// TestCollectorExportsEveryCounter checks the name, type and value of each
// exported series against a snapshot whose counters all differ, so a field
// exported under another's name or not at all shows.
func TestCollectorExportsEveryCounter(t *testing.T) {
	var src fixedStats
	src.Sent[packet.TypePublish] = mqtt.PacketCounts{Packets: 1, Bytes: 2}
	src.Reconnects, src.ConnectionsLost, src.DroppedQoS0, src.ReceiveMaximumOvershoot = 3, 4, 5, 6
	src.DroppedOversized, src.WriteBufferFull, src.WriteBufferPeak = 7, 8, 9
	src.InFlight, src.Queued, src.Connected, src.UnlistedAckReasons = 10, 11, true, 12
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(mqttprom.NewCollector(src, prometheus.Labels{"client": "c"})); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP mqtt_client_packets_total MQTT packets by direction (sent, received) and type.
# TYPE mqtt_client_packets_total counter
mqtt_client_packets_total{client="c",direction="sent",type="publish"} 1
# HELP mqtt_client_packet_bytes_total Bytes of MQTT packets on the wire by direction and type.
# TYPE mqtt_client_packet_bytes_total counter
mqtt_client_packet_bytes_total{client="c",direction="sent",type="publish"} 2
# HELP mqtt_client_reconnects_total Successful reconnects after a lost connection.
# TYPE mqtt_client_reconnects_total counter
mqtt_client_reconnects_total{client="c"} 3
# HELP mqtt_client_connections_lost_total Connections that ended other than by Disconnect.
# TYPE mqtt_client_connections_lost_total counter
mqtt_client_connections_lost_total{client="c"} 4
# HELP mqtt_client_dropped_qos0_total QoS 0 messages dropped because the handler queue was full.
# TYPE mqtt_client_dropped_qos0_total counter
mqtt_client_dropped_qos0_total{client="c"} 5
# HELP mqtt_client_receive_maximum_overshoot_total Messages the server sent beyond our Receive Maximum.
# TYPE mqtt_client_receive_maximum_overshoot_total counter
mqtt_client_receive_maximum_overshoot_total{client="c"} 6
# HELP mqtt_client_dropped_oversized_total Received messages larger than the maximum packet size, skipped without delivery.
# TYPE mqtt_client_dropped_oversized_total counter
mqtt_client_dropped_oversized_total{client="c"} 7
# HELP mqtt_client_write_buffer_full_total Connections closed because the server stopped reading what we wrote.
# TYPE mqtt_client_write_buffer_full_total counter
mqtt_client_write_buffer_full_total{client="c"} 8
# HELP mqtt_client_write_buffer_peak_bytes The most bytes a connection has had waiting to be written.
# TYPE mqtt_client_write_buffer_peak_bytes gauge
mqtt_client_write_buffer_peak_bytes{client="c"} 9
# HELP mqtt_client_unlisted_ack_reasons_total Acknowledgements with a success reason code their packet type does not list, taken as success.
# TYPE mqtt_client_unlisted_ack_reasons_total counter
mqtt_client_unlisted_ack_reasons_total{client="c"} 12
# HELP mqtt_client_inflight QoS 1 and 2 publishes awaiting acknowledgement.
# TYPE mqtt_client_inflight gauge
mqtt_client_inflight{client="c"} 10
# HELP mqtt_client_handler_queue Received messages waiting for handlers.
# TYPE mqtt_client_handler_queue gauge
mqtt_client_handler_queue{client="c"} 11
# HELP mqtt_client_connected 1 while a connection is up.
# TYPE mqtt_client_connected gauge
mqtt_client_connected{client="c"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}
