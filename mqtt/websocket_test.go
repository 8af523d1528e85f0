package mqtt_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/heraldiot/herald/internal/testenv"
	"github.com/heraldiot/herald/mqtt"
)

// connackAccepted is the CONNACK a fake server sends to accept a client
// without a session.
var connackAccepted = map[mqtt.Version][]byte{
	mqtt.V311: {0x20, 0x02, 0x00, 0x00},
	mqtt.V5:   {0x20, 0x03, 0x00, 0x00, 0x00},
}

// pubSubRoundTrip subscribes sub to topic/# and checks that a message
// published by pub at each QoS arrives intact at that QoS. The last one is
// larger than the 4 KiB pieces mosquitto writes a WebSocket message in, so
// the reader must reassemble a packet from several reads. It is kept small
// because mosquitto 2.0 sends those pieces 100 ms apart
// (eclipse-mosquitto/mosquitto#1390).
func pubSubRoundTrip(t *testing.T, sub, pub *mqtt.Client, topic string) {
	t.Helper()
	ctx := testContext(t)
	got := newCollector()
	if err := sub.Subscribe(ctx, got.handle, mqtt.Subscription{Filter: topic + "/#", QoS: 2}); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	sent := []*mqtt.Message{
		{Topic: topic + "/0", QoS: 0, Payload: []byte("at most once")},
		{Topic: topic + "/1", QoS: 1, Payload: []byte("at least once")},
		{Topic: topic + "/2", QoS: 2, Payload: []byte("exactly once")},
		{Topic: topic + "/big", QoS: 1, Payload: bytes.Repeat([]byte("0123456789abcdef"), 768)},
	}
	for _, m := range sent {
		if err := pub.Publish(ctx, m); err != nil {
			t.Fatalf("publish %s: %v", m.Topic, err)
		}
		r := got.next(t)
		if r.Topic != m.Topic || r.QoS != m.QoS || !bytes.Equal(r.Payload, m.Payload) {
			t.Fatalf("received %s at QoS %d (%d bytes), want %s at QoS %d (%d bytes)",
				r.Topic, r.QoS, len(r.Payload), m.Topic, m.QoS, len(m.Payload))
		}
	}
}

func TestWebSocketPublishSubscribe(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{WebSockets: true, WebSocketsTLS: true})
	// No ServerName: it must default to the URL's host, 127.0.0.1, which
	// the broker's certificate names.
	wssConfig := b.Certs.ClientTLSConfig(false)
	wssConfig.ServerName = ""
	transports := []struct {
		name string
		url  string
		tls  *tls.Config
	}{
		{"ws", b.WSURL(), nil},
		{"wss", b.WSSURL(), wssConfig},
	}
	for _, tr := range transports {
		for _, v := range versions {
			t.Run(tr.name+"/v"+v.String(), func(t *testing.T) {
				opts := mqtt.Options{Version: v, Servers: []string{tr.url}, TLSConfig: tr.tls}
				opts.ClientID = "ws-sub"
				sub := dial(t, b, opts)
				opts.ClientID = "ws-pub"
				pub := dial(t, b, opts)
				pubSubRoundTrip(t, sub, pub, "ws/"+tr.name+"/"+v.String())
			})
		}
	}
	t.Run("wss/unknown CA", func(t *testing.T) {
		_, err := mqtt.Dial(testContext(t), mqtt.Options{Servers: []string{b.WSSURL()}, TLSConfig: &tls.Config{}})
		var verr *tls.CertificateVerificationError
		if !errors.As(err, &verr) {
			t.Fatalf("err = %v, want a certificate verification error", err)
		}
	})
}

// startWSServer serves WebSocket connections offering subprotocols with
// serve, whose context ends with the test, and returns the ws:// URL.
func startWSServer(t *testing.T, subprotocols []string, serve func(context.Context, *websocket.Conn)) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var handlers sync.WaitGroup
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handlers.Add(1)
		defer handlers.Done()
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: subprotocols})
		if err != nil {
			return
		}
		defer c.CloseNow()
		serve(ctx, c)
	}))
	// httptest does not wait for hijacked connections' handlers.
	t.Cleanup(func() {
		cancel()
		srv.Close()
		handlers.Wait()
	})
	return "ws://" + srv.Listener.Addr().String() + "/mqtt"
}

func TestWebSocketNeedsMQTTSubprotocol(t *testing.T) {
	// The server accepts the handshake but selects no subprotocol: it has
	// not said it speaks MQTT, so the client must not send CONNECT.
	url := startWSServer(t, nil, func(ctx context.Context, c *websocket.Conn) {
		if _, msg, err := c.Read(ctx); err == nil {
			t.Errorf("client sent %d bytes to a server that did not agree to mqtt", len(msg))
		}
	})
	_, err := mqtt.Dial(testContext(t), mqtt.Options{Servers: []string{url}})
	if !errors.Is(err, mqtt.ErrWebSocketSubprotocol) {
		t.Fatalf("err = %v, want ErrWebSocketSubprotocol", err)
	}
}

func TestWebSocketConnectTimeout(t *testing.T) {
	// The server takes CONNECT and never answers.
	url := startWSServer(t, []string{"mqtt"}, func(ctx context.Context, c *websocket.Conn) {
		if _, _, err := c.Read(ctx); err == nil {
			<-ctx.Done()
		}
	})
	const timeout = 300 * time.Millisecond
	start := time.Now()
	_, err := mqtt.Dial(testContext(t), mqtt.Options{Servers: []string{url}, ConnectTimeout: timeout})
	// Which fires first, the context or the connection's deadline, is a
	// race; either must be reported as a timeout.
	if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("err = %v, want a timeout", err)
	}
	if d := time.Since(start); d > timeout+time.Second {
		t.Fatalf("connect gave up after %v, want about %v", d, timeout)
	}
}

// TestWebSocketCloseIsPrompt has a server that, once connected, sends a
// malformed packet and then neither reads nor answers. The client's reader
// fails and closes the connection with no read under way, which is when a
// WebSocket closing handshake would wait 5s for a Close frame that never
// comes; the client must drop the connection at once instead.
func TestWebSocketCloseIsPrompt(t *testing.T) {
	for _, v := range versions {
		t.Run("v"+v.String(), func(t *testing.T) {
			url := startWSServer(t, []string{"mqtt"}, func(ctx context.Context, c *websocket.Conn) {
				if _, _, err := c.Read(ctx); err != nil { // CONNECT
					return
				}
				// Packet type 0 is reserved: the client must reject it.
				_ = c.Write(ctx, websocket.MessageBinary, append(connackAccepted[v], 0x00, 0x00))
				<-ctx.Done()
			})
			lost := make(chan error, 1)
			start := time.Now()
			dial(t, nil, mqtt.Options{Version: v, ClientID: "ws-close",
				Servers:              []string{url},
				DisableAutoReconnect: true,
				OnConnectionLost:     func(_ *mqtt.Client, err error) { lost <- err }})
			select {
			case err := <-lost:
				if d := time.Since(start); d > time.Second {
					t.Fatalf("connection lost (%v) reported after %v, want the close to be immediate", err, d)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("malformed packet did not end the connection")
			}
		})
	}
}
