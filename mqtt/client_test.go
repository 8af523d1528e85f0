package mqtt_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/heraldiot/herald/internal/testenv"
	"github.com/heraldiot/herald/mqtt"
)

func TestPublishSubscribeEveryQoS(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	for _, v := range versions {
		for pubQoS := mqtt.AtMostOnce; pubQoS <= mqtt.ExactlyOnce; pubQoS++ {
			for subQoS := mqtt.AtMostOnce; subQoS <= mqtt.ExactlyOnce; subQoS++ {
				t.Run(fmt.Sprintf("v%s/pub%d/sub%d", v, pubQoS, subQoS), func(t *testing.T) {
					ctx := testContext(t)
					got := newCollector()
					sub := dial(t, b, mqtt.Options{Version: v, ClientID: "sub-" + t.Name()})
					topic := "test/" + t.Name()
					if err := sub.Subscribe(ctx, got.handle, mqtt.Subscription{Filter: topic, QoS: subQoS}); err != nil {
						t.Fatal(err)
					}
					pub := dial(t, b, mqtt.Options{Version: v, ClientID: "pub-" + t.Name()})
					const n = 50
					for i := range n {
						if err := pub.Publish(ctx, &mqtt.Message{Topic: topic, QoS: pubQoS, Payload: fmt.Appendf(nil, "m%d", i)}); err != nil {
							t.Fatalf("publish %d: %v", i, err)
						}
					}
					want := min(pubQoS, subQoS)
					for i := range n {
						m := got.next(t)
						if !bytes.Equal(m.Payload, fmt.Appendf(nil, "m%d", i)) {
							t.Fatalf("message %d = %q, out of order or corrupt", i, m.Payload)
						}
						if m.QoS != want {
							t.Fatalf("message %d QoS = %d, want %d", i, m.QoS, want)
						}
					}
				})
			}
		}
	}
}
