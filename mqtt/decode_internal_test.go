package mqtt

import (
	"bytes"
	"testing"

	"github.com/heraldiot/herald/mqtt/packet"
)

// TestDecodeTargetsLetGoOfLargeSlices decodes into a pooled decode target
// packets whose slices grow small and large: trim must drop the large
// ones, so one hostile packet is not held by the pool for good, and keep
// the small ones, whose reuse is what makes decoding allocation-free.
func TestDecodeTargetsLetGoOfLargeSlices(t *testing.T) {
	pair := []byte{0x26, 0x00, 0x00, 0x00, 0x00} // an empty user property
	subID := []byte{0x0B, 0x01}                  // subscription identifier 1
	publish := func(props ...[]byte) []byte {
		p := bytes.Join(props, nil)
		return append(append(append([]byte{0x00, 0x01, 'a'}, packet.AppendVarInt(nil, uint32(len(p)))...), p...), "payload"...)
	}
	suback := func(codes int) []byte {
		return append([]byte{0x00, 0x01, 0x00}, make([]byte, codes)...)
	}
	tests := map[string]struct {
		typ      packet.Type
		body     []byte
		capacity func(*inboundPackets) int
		kept     bool
	}{
		"few user properties": {packet.TypePublish, publish(bytes.Repeat(pair, 2)),
			func(in *inboundPackets) int { return cap(in.publish.Properties.User) }, true},
		"thousands of user properties": {packet.TypePublish, publish(bytes.Repeat(pair, 5000)),
			func(in *inboundPackets) int { return cap(in.publish.Properties.User) }, false},
		"thousands of subscription identifiers": {packet.TypePublish, publish(bytes.Repeat(subID, 5000)),
			func(in *inboundPackets) int { return cap(in.publish.Properties.SubscriptionIDs) }, false},
		"SUBACK with a few codes": {packet.TypeSuback, suback(3),
			func(in *inboundPackets) int { return cap(in.suback.ReasonCodes) }, true},
		"SUBACK with thousands of codes": {packet.TypeSuback, suback(5000),
			func(in *inboundPackets) int { return cap(in.suback.ReasonCodes) }, false},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			in := new(inboundPackets)
			var err error
			switch tt.typ {
			case packet.TypePublish:
				err = in.publish.Unmarshal(V5, 0, tt.body)
			case packet.TypeSuback:
				err = in.suback.Unmarshal(V5, 0, tt.body)
			}
			if err != nil {
				t.Fatal(err)
			}
			grown := tt.capacity(in)
			in.trim()
			switch got := tt.capacity(in); {
			case tt.kept && got != grown:
				t.Fatalf("capacity %d after trim, %d before: a small slice was dropped", got, grown)
			case !tt.kept && got > maxPooledElems:
				t.Fatalf("capacity %d after trim: the pool keeps a slice grown by one packet", got)
			}
		})
	}
}
