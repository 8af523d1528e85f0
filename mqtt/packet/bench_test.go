package packet_test

import (
	"bytes"
	"testing"

	"github.com/heraldiot/herald/mqtt/packet"
)

type benchCase struct {
	name string
	v    packet.Version
	pkt  packet.Packet
}

// benchCases are the packets of a broker's hot path: telemetry PUBLISH in
// its common shapes and the PUBACK that answers QoS 1.
func benchCases() []benchCase {
	payload := bytes.Repeat([]byte{0x5A}, 64)
	topic := []byte("site/7/line/3/temperature")
	withProps := &packet.Publish{
		QoS: 1, PacketID: 0x1234, Topic: topic, Payload: payload,
		Properties: packet.Properties{
			MessageExpiry: 3600,
			ContentType:   []byte("application/json"),
			User: []packet.UserProperty{
				{Key: []byte("trace-id"), Value: []byte("4bf92f3577b34da6")},
				{Key: []byte("tenant"), Value: []byte("acme")},
			},
		},
	}
	return []benchCase{
		{"PublishQoS0/64B/v3.1.1", packet.V311, &packet.Publish{Topic: topic, Payload: payload}},
		{"PublishQoS0/64B/v5", packet.V5, &packet.Publish{Topic: topic, Payload: payload}},
		{"PublishQoS1/v3.1.1", packet.V311, &packet.Publish{QoS: 1, PacketID: 0x1234, Topic: topic, Payload: payload}},
		{"PublishQoS1/v5", packet.V5, &packet.Publish{QoS: 1, PacketID: 0x1234, Topic: topic, Payload: payload}},
		{"PublishProperties/v5", packet.V5, withProps},
		{"Puback/v3.1.1", packet.V311, &packet.Ack{PacketType: packet.TypePuback, PacketID: 0x1234}},
		{"Puback/v5", packet.V5, &packet.Ack{PacketType: packet.TypePuback, PacketID: 0x1234}},
	}
}

// BenchmarkEncode appends into one reused buffer, as a connection's writer
// does; the steady state must not allocate.
func BenchmarkEncode(b *testing.B) {
	for _, bc := range benchCases() {
		b.Run(bc.name, func(b *testing.B) {
			buf, err := bc.pkt.Append(nil, bc.v)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			for b.Loop() {
				if buf, err = bc.pkt.Append(buf[:0], bc.v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecode reads the fixed header and unmarshals the body into one
// reused packet value, as a connection's reader does; the steady state must
// not allocate.
func BenchmarkDecode(b *testing.B) {
	for _, bc := range benchCases() {
		b.Run(bc.name, func(b *testing.B) {
			raw, err := bc.pkt.Append(nil, bc.v)
			if err != nil {
				b.Fatal(err)
			}
			p, err := packet.New(bc.pkt.Type())
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				h, n, err := packet.DecodeHeader(raw, bc.v, 1<<20)
				if err != nil {
					b.Fatal(err)
				}
				if err := p.Unmarshal(bc.v, h.Flags, raw[n:n+h.Remaining]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestHotPathAllocations turns the benchmarks' zero-allocation target into
// a test, so a regression fails `go test` and not only a benchmark run.
func TestHotPathAllocations(t *testing.T) {
	for _, bc := range benchCases() {
		t.Run(bc.name, func(t *testing.T) {
			buf, err := bc.pkt.Append(nil, bc.v)
			if err != nil {
				t.Fatal(err)
			}
			raw := append([]byte(nil), buf...)
			p, err := packet.New(bc.pkt.Type())
			if err != nil {
				t.Fatal(err)
			}
			var encErr, decErr error
			if n := testing.AllocsPerRun(100, func() { buf, encErr = bc.pkt.Append(buf[:0], bc.v) }); n != 0 || encErr != nil {
				t.Errorf("Append: %.1f allocations per call (err %v), want 0", n, encErr)
			}
			if n := testing.AllocsPerRun(100, func() {
				h, hn, err := packet.DecodeHeader(raw, bc.v, 0)
				if err != nil {
					decErr = err
					return
				}
				decErr = p.Unmarshal(bc.v, h.Flags, raw[hn:hn+h.Remaining])
			}); n != 0 || decErr != nil {
				t.Errorf("DecodeHeader + Unmarshal: %.1f allocations per call (err %v), want 0", n, decErr)
			}
			if got, err := p.Append(nil, bc.v); err != nil || !bytes.Equal(got, raw) {
				t.Errorf("decoded value encodes to % X (err %v), want % X", got, err, raw)
			}
		})
	}
}
