package mqtt_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/heraldiot/herald/mqtt"
)

// Connect, subscribe with a handler, publish at QoS 1 and wait for PUBACK.
func Example() {
	ctx := context.Background()
	c, err := mqtt.Dial(ctx, mqtt.Options{
		Servers:       []string{"tcp://localhost:1883"},
		ClientID:      "thermostat-7",
		SessionExpiry: time.Hour, // keep the session across reconnects and restarts
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Disconnect(ctx)

	err = c.Subscribe(ctx, func(m *mqtt.Message) {
		fmt.Printf("%s: %s\n", m.Topic, m.Payload)
	}, mqtt.Subscription{Filter: "home/+/temperature", QoS: mqtt.AtLeastOnce})
	if err != nil {
		log.Fatal(err)
	}
	if err := c.Publish(ctx, &mqtt.Message{Topic: "home/kitchen/temperature", Payload: []byte("21.5"), QoS: mqtt.AtLeastOnce}); err != nil {
		log.Fatal(err)
	}
}

// TLS with a private CA and a client certificate; certificates are always
// verified unless the tls.Config says otherwise.
func ExampleOptions_tls() {
	caPEM, _ := os.ReadFile("ca.crt")
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	cert, err := tls.LoadX509KeyPair("client.crt", "client.key")
	if err != nil {
		log.Fatal(err)
	}
	_, err = mqtt.Dial(context.Background(), mqtt.Options{
		Servers:   []string{"mqtts://broker.example:8883"},
		TLSConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}},
	})
	if err != nil {
		log.Fatal(err)
	}
}

// A Last Will marks the device offline if its connection dies; with MQTT 5
// a will delay lets a quick reconnect cancel it.
func ExampleWill() {
	_, err := mqtt.Dial(context.Background(), mqtt.Options{
		Servers:       []string{"tcp://localhost:1883"},
		ClientID:      "sensor-0042",
		SessionExpiry: time.Minute,
		Will: &mqtt.Will{
			Topic: "fleet/devices/sensor-0042/presence", Payload: []byte(`{"v":1,"state":"offline"}`),
			QoS: mqtt.AtLeastOnce, Retain: true, Delay: 30 * time.Second,
		},
	})
	if err != nil {
		log.Fatal(err)
	}
}

// Server refusals are typed errors.
func ExampleConnectError() {
	_, err := mqtt.Dial(context.Background(), mqtt.Options{
		Servers: []string{"tcp://localhost:1883"}, Username: "device", Password: []byte("wrong"),
	})
	var ce *mqtt.ConnectError
	if errors.As(err, &ce) && ce.BadCredentials() {
		log.Print("check the device's credentials")
	}
}
