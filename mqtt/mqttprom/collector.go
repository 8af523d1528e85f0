// Package mqttprom exports the counters of Herald's MQTT client as
// Prometheus metrics. The client counts with atomics as it works; the
// collector reads them only when Prometheus scrapes, so metrics add
// nothing to the publish path.
package mqttprom

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldiot/herald/mqtt"
	"github.com/heraldiot/herald/mqtt/packet"
)

// StatsSource is what the collector reads; *mqtt.Client implements it.
type StatsSource interface {
	Stats() mqtt.Stats
}

// Collector is a prometheus.Collector for one client. Register one per
// client, told apart by constant labels (e.g. {"fleet": "lab"}).
type Collector struct {
	src StatsSource

	packets, bytes, reconnects, lost, dropped, overshoot  *prometheus.Desc
	oversized, writeBufferFull, writeBufferPeak, unlisted *prometheus.Desc
	inflight, queued, connected                           *prometheus.Desc
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a collector of src's counters, with labels added to
// every metric.
func NewCollector(src StatsSource, labels prometheus.Labels) *Collector {
	desc := func(name, help string, variable ...string) *prometheus.Desc {
		return prometheus.NewDesc("mqtt_client_"+name, help, variable, labels)
	}
	return &Collector{
		src:             src,
		packets:         desc("packets_total", "MQTT packets by direction (sent, received) and type.", "direction", "type"),
		bytes:           desc("packet_bytes_total", "Bytes of MQTT packets on the wire by direction and type.", "direction", "type"),
		reconnects:      desc("reconnects_total", "Successful reconnects after a lost connection."),
		lost:            desc("connections_lost_total", "Connections that ended other than by Disconnect."),
		dropped:         desc("dropped_qos0_total", "QoS 0 messages dropped because the handler queue was full."),
		unlisted:        desc("unlisted_ack_reasons_total", "Acknowledgements with a success reason code their packet type does not list, taken as success."),
		overshoot:       desc("receive_maximum_overshoot_total", "Messages the server sent beyond our Receive Maximum."),
		oversized:       desc("dropped_oversized_total", "Received messages larger than the maximum packet size, skipped without delivery."),
		writeBufferFull: desc("write_buffer_full_total", "Connections closed because the server stopped reading what we wrote."),
		writeBufferPeak: desc("write_buffer_peak_bytes", "The most bytes a connection has had waiting to be written."),
		inflight:        desc("inflight", "QoS 1 and 2 publishes awaiting acknowledgement."),
		queued:          desc("handler_queue", "Received messages waiting for handlers."),
		connected:       desc("connected", "1 while a connection is up."),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.packets, c.bytes, c.reconnects, c.lost, c.dropped, c.overshoot,
		c.oversized, c.writeBufferFull, c.writeBufferPeak, c.unlisted, c.inflight, c.queued, c.connected} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.Stats()
	for _, dir := range []struct {
		name   string
		counts *[16]mqtt.PacketCounts
	}{{"sent", &s.Sent}, {"received", &s.Received}} {
		for t := packet.TypeConnect; t <= packet.TypeAuth; t++ {
			pc := dir.counts[t]
			if pc.Packets == 0 {
				// Types never seen stay out, which keeps a 3.1.1
				// client's series free of AUTH and the like.
				continue
			}
			name := strings.ToLower(t.String())
			ch <- prometheus.MustNewConstMetric(c.packets, prometheus.CounterValue, float64(pc.Packets), dir.name, name)
			ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(pc.Bytes), dir.name, name)
		}
	}
	ch <- prometheus.MustNewConstMetric(c.reconnects, prometheus.CounterValue, float64(s.Reconnects))
	ch <- prometheus.MustNewConstMetric(c.lost, prometheus.CounterValue, float64(s.ConnectionsLost))
	ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(s.DroppedQoS0))
	ch <- prometheus.MustNewConstMetric(c.overshoot, prometheus.CounterValue, float64(s.ReceiveMaximumOvershoot))
	ch <- prometheus.MustNewConstMetric(c.oversized, prometheus.CounterValue, float64(s.DroppedOversized))
	ch <- prometheus.MustNewConstMetric(c.writeBufferFull, prometheus.CounterValue, float64(s.WriteBufferFull))
	ch <- prometheus.MustNewConstMetric(c.writeBufferPeak, prometheus.GaugeValue, float64(s.WriteBufferPeak))
	ch <- prometheus.MustNewConstMetric(c.unlisted, prometheus.CounterValue, float64(s.UnlistedAckReasons))
	ch <- prometheus.MustNewConstMetric(c.inflight, prometheus.GaugeValue, float64(s.InFlight))
	ch <- prometheus.MustNewConstMetric(c.queued, prometheus.GaugeValue, float64(s.Queued))
	connected := 0.0
	if s.Connected {
		connected = 1
	}
	ch <- prometheus.MustNewConstMetric(c.connected, prometheus.GaugeValue, connected)
}
