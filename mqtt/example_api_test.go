package mqtt_test

import (
	"context"
	"errors"
	"log"
	"time"

	"github.com/heraldiot/herald/mqtt"
	"github.com/heraldiot/herald/mqtt/packet"
)

// Leaving with the will published, e.g. a device going to sleep that
// wants watchers told, and ending its session at the server now rather
// than an hour later.
func ExampleClient_DisconnectWith() {
	ctx := context.Background()
	c, err := mqtt.Dial(ctx, mqtt.Options{
		Servers:       []string{"tcp://localhost:1883"},
		ClientID:      "thermostat-7",
		SessionExpiry: time.Hour,
		Will:          &mqtt.Will{Topic: "presence/thermostat-7", Payload: []byte("asleep"), QoS: mqtt.AtLeastOnce},
	})
	if err != nil {
		log.Fatal(err)
	}
	err = c.DisconnectWith(ctx, mqtt.DisconnectOptions{
		ReasonCode:     packet.DisconnectWithWillMessage,
		SessionExpiry:  new(time.Duration(0)),
		ReasonString:   "battery low",
		UserProperties: []mqtt.UserProperty{{Key: "battery", Value: "4%"}},
	})
	if err != nil {
		log.Fatal(err)
	}
}

// Acknowledging a message only once it is stored, so a crash before that
// has the server deliver it again. Acknowledgements go out in arrival
// order whatever the order of the Ack calls.
func ExampleMessage_Ack() {
	ctx := context.Background()
	c, err := mqtt.Dial(ctx, mqtt.Options{Servers: []string{"tcp://localhost:1883"}, ClientID: "ingest-1", SessionExpiry: time.Hour})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Disconnect(ctx)
	stored := make(chan *mqtt.Message, 64)
	_, err = c.SubscribeWith(ctx, mqtt.SubscribeRequest{
		Subscriptions: []mqtt.Subscription{{Filter: "telemetry/#", QoS: mqtt.ExactlyOnce}},
		Handler:       func(m *mqtt.Message) { stored <- m }, // returns at once; nothing acknowledged yet
		ManualAck:     true,
	})
	if err != nil {
		log.Fatal(err)
	}
	for m := range stored {
		// ... write m to the database, then:
		if err := m.Ack(); err != nil {
			log.Print(err) // the session store failed; m comes again
		}
	}
}

// What the server answered: a v5 broker may say nobody subscribes to the
// topic (0x10), which is a success for Publish.
func ExampleClient_PublishWithResult() {
	ctx := context.Background()
	c, err := mqtt.Dial(ctx, mqtt.Options{Servers: []string{"tcp://localhost:1883"}})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Disconnect(ctx)
	res, err := c.PublishWithResult(ctx, &mqtt.Message{Topic: "alerts/fire", Payload: []byte("kitchen"), QoS: mqtt.AtLeastOnce})
	if err != nil {
		log.Fatal(err)
	}
	if res.ReasonCode == packet.NoMatchingSubscribers {
		log.Printf("nobody listens to alerts/fire (%s)", res.ReasonString)
	}
}

// A topic alias chosen per publish: the topic travels once per
// connection, then as two bytes. The alias must be above the automatic
// ones and within the server's Topic Alias Maximum.
func ExampleMessage_topicAlias() {
	ctx := context.Background()
	c, err := mqtt.Dial(ctx, mqtt.Options{Servers: []string{"tcp://localhost:1883"}, OutboundTopicAliases: 4})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Disconnect(ctx)
	for i := range 100 {
		m := &mqtt.Message{Topic: "fleet/eu-west/thermostat-7/telemetry", TopicAlias: 5, Payload: []byte{byte(i)}}
		if err := c.Publish(ctx, m); errors.Is(err, mqtt.ErrTopicAliasInvalid) {
			log.Fatal(err) // the server allows fewer than 5 aliases
		}
	}
}

// UNSUBSCRIBE with user properties, and what the server said per filter.
func ExampleClient_UnsubscribeWith() {
	ctx := context.Background()
	c, err := mqtt.Dial(ctx, mqtt.Options{Servers: []string{"tcp://localhost:1883"}})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Disconnect(ctx)
	codes, err := c.UnsubscribeWith(ctx, mqtt.UnsubscribeRequest{
		Filters:        []string{"devices/+/status"},
		UserProperties: []mqtt.UserProperty{{Key: "reason", Value: "rebalance"}},
	})
	if err != nil {
		log.Fatal(err)
	}
	if codes[0] == packet.NoSubscriptionExisted {
		log.Print("was not subscribed")
	}
}

// What a server said when it closed the connection, and when the next
// attempt comes.
func ExampleDisconnectError() {
	_, err := mqtt.Dial(context.Background(), mqtt.Options{
		Servers: []string{"tcp://localhost:1883"},
		OnConnectionLost: func(_ *mqtt.Client, err error) {
			var de *mqtt.DisconnectError
			if errors.As(err, &de) {
				log.Printf("server closed the connection: %s %q %v", de.Code, de.ReasonString, de.UserProperties)
			}
		},
		OnReconnectWait: func(attempt int, wait time.Duration) {
			log.Printf("reconnecting in %v (attempt %d)", wait.Round(100*time.Millisecond), attempt)
		},
	})
	if err != nil {
		log.Fatal(err)
	}
}

// A client stopped with Disconnect may be started again: the session,
// subscriptions and handlers included, resumes where the server kept it.
func ExampleClient_Connect_afterDisconnect() {
	ctx := context.Background()
	c, err := mqtt.Dial(ctx, mqtt.Options{
		Servers: []string{"tcp://localhost:1883"}, ClientID: "thermostat-7", SessionExpiry: time.Hour,
		MaxInflight: 4, // at most 4 QoS 1 and 2 publishes in flight, whatever the server allows
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := c.Disconnect(ctx); err != nil {
		log.Fatal(err)
	}
	// ... the network is down for a while ...
	if err := c.Connect(ctx); err != nil {
		log.Fatal(err)
	}
	log.Printf("session resumed: %v", c.ServerInfo().SessionPresent)
}
