package mqtt_test

import (
	"crypto/tls"
	"errors"
	"testing"

	"github.com/heraldiot/herald/internal/testenv"
	"github.com/heraldiot/herald/mqtt"
)

func TestBadCredentials(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{Users: map[string]string{"device": "right"}})
	for _, v := range versions {
		t.Run("v"+v.String(), func(t *testing.T) {
			ctx := testContext(t)
			good := dial(t, b, mqtt.Options{Version: v, ClientID: "good", Username: "device", Password: []byte("right")})
			if !good.IsConnected() {
				t.Fatal("right credentials: not connected")
			}
			_, err := mqtt.Dial(ctx, mqtt.Options{Version: v, Servers: []string{b.URL()}, ClientID: "bad", Username: "device", Password: []byte("wrong")})
			var ce *mqtt.ConnectError
			if !errors.As(err, &ce) || !ce.BadCredentials() {
				t.Fatalf("wrong password: err = %v, want a ConnectError about credentials", err)
			}
		})
	}
}

func TestTLSClientCertificate(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{TLS: true, RequireClientCert: true})
	for _, v := range versions {
		t.Run("v"+v.String(), func(t *testing.T) {
			ctx := testContext(t)
			c := dial(t, b, mqtt.Options{Version: v, ClientID: "tls", Servers: []string{b.TLSURL()}, TLSConfig: b.Certs.ClientTLSConfig(true)})
			got := newCollector()
			if err := c.Subscribe(ctx, got.handle, mqtt.Subscription{Filter: "tls/t", QoS: 1}); err != nil {
				t.Fatal(err)
			}
			if err := c.Publish(ctx, &mqtt.Message{Topic: "tls/t", QoS: 1, Payload: []byte("over tls")}); err != nil {
				t.Fatal(err)
			}
			if m := got.next(t); string(m.Payload) != "over tls" {
				t.Fatalf("got %q", m.Payload)
			}

			// Verification is on by default: without the test CA the
			// broker's certificate is rejected.
			_, err := mqtt.Dial(ctx, mqtt.Options{Version: v, Servers: []string{b.TLSURL()}, TLSConfig: &tls.Config{}})
			if err == nil {
				t.Fatal("connected to a broker whose certificate is signed by an unknown CA")
			}
		})
	}
}
