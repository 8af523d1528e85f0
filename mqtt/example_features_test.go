package mqtt_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/heraldiot/herald/mqtt"
)

// Topic aliases shorten repeated publishes to long topics: after the first
// publish on a connection, the topic travels as a two-byte alias.
func ExampleOptions_outboundTopicAliases() {
	ctx := context.Background()
	c, err := mqtt.Dial(ctx, mqtt.Options{
		Servers:              []string{"tcp://localhost:1883"},
		OutboundTopicAliases: 16, // at most the server's Topic Alias Maximum
		TopicAliasMaximum:    16, // the server may alias what it sends us, too
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Disconnect(ctx)
	for i := range 100 {
		topic := "fleet/eu-west/devices/thermostat-7/telemetry/temperature"
		if err := c.Publish(ctx, &mqtt.Message{Topic: topic, Payload: fmt.Appendf(nil, "%d", 20+i%5)}); err != nil {
			log.Fatal(err)
		}
	}
}

// SCRAM-SHA-256 proves the password without sending it and makes the
// server prove it knows the password's verifier.
func ExampleNewSCRAMSHA256() {
	ctx := context.Background()
	c, err := mqtt.Dial(ctx, mqtt.Options{
		Servers:       []string{"mqtts://broker.example:8883"},
		ClientID:      "thermostat-7",
		Authenticator: mqtt.NewSCRAMSHA256("thermostat-7", os.Getenv("DEVICE_PASSWORD")),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Disconnect(ctx)
	// Long-lived connections re-authenticate when the server's policy asks
	// (a server can also request it by sending an AUTH challenge).
	if err := c.Reauthenticate(ctx); err != nil {
		log.Fatal(err)
	}
}

// A server may send clients elsewhere with Use Another Server or Server
// Moved; following is opt-in and bounded.
func ExampleOptions_maxRedirects() {
	c, err := mqtt.Dial(context.Background(), mqtt.Options{
		Servers:      []string{"tcp://broker-a.example:1883", "tcp://broker-b.example:1883"},
		MaxRedirects: 2,
	})
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("connected as %s", c.ClientID())
}

// MQTT over WebSocket, e.g. through an HTTP load balancer; the proxy
// settings of the environment (HTTPS_PROXY, NO_PROXY) apply.
func ExampleOptions_webSocket() {
	c, err := mqtt.Dial(context.Background(), mqtt.Options{
		Servers: []string{"wss://broker.example/mqtt"},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Disconnect(context.Background())
}

// A FileStore keeps in-flight QoS 1 and 2 state on disk, so a process that
// crashes and restarts with the same client ID resumes its session:
// nothing lost, nothing duplicated at QoS 2.
func ExampleOpenFileStore() {
	store, err := mqtt.OpenFileStore("/var/lib/thermostat/mqtt-session")
	if err != nil {
		log.Fatal(err) // a corrupt store is reported, never used
	}
	defer store.Close()
	ctx := context.Background()
	c, err := mqtt.Dial(ctx, mqtt.Options{
		Servers:       []string{"tcp://localhost:1883"},
		ClientID:      "thermostat-7", // the session is the client ID's
		SessionExpiry: 24 * time.Hour,
		Store:         store,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Disconnect(ctx)
	if err := c.Publish(ctx, &mqtt.Message{Topic: "fleet/events", Payload: []byte("rebooted"), QoS: mqtt.ExactlyOnce}); err != nil {
		log.Fatal(err)
	}
}

// Request/response over MQTT 5: the requester's response topic and
// correlation data pair each answer with its request.
func ExampleNewRequester() {
	ctx := context.Background()
	c, err := mqtt.Dial(ctx, mqtt.Options{Servers: []string{"tcp://localhost:1883"}})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Disconnect(ctx)
	r, err := mqtt.NewRequester(ctx, c, "")
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close(ctx)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := r.Request(ctx, &mqtt.Message{Topic: "devices/thermostat-7/rpc/get-setpoint", QoS: mqtt.AtLeastOnce})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("setpoint: %s\n", resp.Payload)
}

// The responder side answers on the request's response topic.
func ExampleClient_Respond() {
	ctx := context.Background()
	var c *mqtt.Client
	c, err := mqtt.Dial(ctx, mqtt.Options{Servers: []string{"tcp://localhost:1883"}, ClientID: "thermostat-7"})
	if err != nil {
		log.Fatal(err)
	}
	err = c.Subscribe(ctx, func(req *mqtt.Message) {
		_ = c.Respond(ctx, req, &mqtt.Message{Payload: []byte("21.5"), QoS: mqtt.AtLeastOnce})
	}, mqtt.Subscription{Filter: "devices/thermostat-7/rpc/get-setpoint", QoS: mqtt.AtLeastOnce})
	if err != nil {
		log.Fatal(err)
	}
}

// Shared subscriptions spread a topic's messages over a group of
// consumers: each message goes to one of them.
func ExampleSubscription_shared() {
	ctx := context.Background()
	c, err := mqtt.Dial(ctx, mqtt.Options{Servers: []string{"tcp://localhost:1883"}})
	if err != nil {
		log.Fatal(err)
	}
	err = c.Subscribe(ctx, func(m *mqtt.Message) {
		// Routed by the inner filter, devices/+/status.
		log.Printf("%s: %s", m.Topic, m.Payload)
	}, mqtt.Subscription{Filter: "$share/workers/devices/+/status", QoS: mqtt.AtLeastOnce})
	if err != nil {
		log.Fatal(err)
	}
}

// Subscription identifiers tell which of overlapping subscriptions matched.
func ExampleClient_SubscribeWith() {
	ctx := context.Background()
	c, err := mqtt.Dial(ctx, mqtt.Options{Servers: []string{"tcp://localhost:1883"}})
	if err != nil {
		log.Fatal(err)
	}
	_, err = c.SubscribeWith(ctx, mqtt.SubscribeRequest{
		ID:            7,
		Subscriptions: []mqtt.Subscription{{Filter: "devices/#", QoS: mqtt.AtLeastOnce}},
		Handler: func(m *mqtt.Message) {
			log.Printf("%s matched subscriptions %v", m.Topic, m.SubscriptionIDs)
		},
	})
	if err != nil {
		log.Fatal(err)
	}
}
