package mqtt_test

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/heraldiot/herald/mqtt"
	"github.com/heraldiot/herald/mqtt/packet"
)

// redirectingPeer refuses every CONNECT with code and a Server Reference
// to target, counting the attempts.
func redirectingPeer(t *testing.T, code packet.ReasonCode, target func() string, attempts *atomic.Int32) string {
	return listenPeers(t, packet.V5, func(p *peer, _ int) {
		if p.connect() == nil {
			return
		}
		attempts.Add(1)
		ack := &packet.Connack{ReasonCode: code}
		ack.Properties.ServerReference = []byte(target())
		p.write(ack)
	})
}

// acceptingPeer accepts connections and reports each CONNECT's client ID
// on accepted, keeping each connection until the client leaves.
func acceptingPeer(t *testing.T, accepted chan<- string) string {
	return listenPeers(t, packet.V5, func(p *peer, _ int) {
		c := p.connect()
		if c == nil {
			return
		}
		p.write(&packet.Connack{})
		accepted <- string(c.ClientID)
		p.read()
	})
}

func hostPort(url string) string { return strings.TrimPrefix(url, "tcp://") }

func TestRedirectAtConnect(t *testing.T) {
	accepted := make(chan string, 1)
	target := acceptingPeer(t, accepted)
	var attempts atomic.Int32
	first := redirectingPeer(t, packet.UseAnotherServer, func() string { return hostPort(target) }, &attempts)

	// Not followed unless asked: the refusal names the server.
	_, err := mqtt.Dial(testContext(t), mqtt.Options{ClientID: "r", Servers: []string{first}})
	var ce *mqtt.ConnectError
	if !errors.As(err, &ce) || ce.Code != packet.UseAnotherServer || ce.ServerReference != hostPort(target) {
		t.Fatalf("dial without redirects: %v, want a ConnectError naming %s", err, hostPort(target))
	}

	dial(t, nil, mqtt.Options{ClientID: "r", Servers: []string{first}, MaxRedirects: 1})
	if id := <-accepted; id != "r" {
		t.Fatalf("the redirect target saw client %q", id)
	}
}

func TestRedirectHopsBounded(t *testing.T) {
	var attempts atomic.Int32
	var self string
	self = redirectingPeer(t, packet.ServerMoved, func() string { return hostPort(self) }, &attempts)
	_, err := mqtt.Dial(testContext(t), mqtt.Options{ClientID: "r", Servers: []string{self}, MaxRedirects: 3})
	var ce *mqtt.ConnectError
	if !errors.As(err, &ce) || ce.Code != packet.ServerMoved {
		t.Fatalf("dial: %v, want the last refusal", err)
	}
	if n := attempts.Load(); n != 4 {
		t.Fatalf("%d CONNECTs, want 4: the first and three redirects", n)
	}
}

// TestRedirectByDisconnect: a server that sends Server Moved in DISCONNECT
// is left for good; Use Another Server only for the next connect.
func TestRedirectByDisconnect(t *testing.T) {
	for _, tt := range []struct {
		code       packet.ReasonCode
		thenBackTo bool // after the target drops us, back to the first server
	}{
		{packet.ServerMoved, false},
		{packet.UseAnotherServer, true},
	} {
		t.Run(tt.code.String(), func(t *testing.T) {
			targetSeen := make(chan string, 4)
			var targetConns atomic.Int32
			target := listenPeers(t, packet.V5, func(p *peer, n int) {
				c := p.connect()
				if c == nil {
					return
				}
				targetConns.Add(1)
				p.write(&packet.Connack{})
				targetSeen <- string(c.ClientID)
				if n == 0 {
					return // drop the client once
				}
				p.read()
			})
			firstSeen := make(chan int, 4)
			first := listenPeers(t, packet.V5, func(p *peer, n int) {
				if p.connect() == nil {
					return
				}
				p.write(&packet.Connack{})
				firstSeen <- n
				if n == 0 {
					d := &packet.Disconnect{ReasonCode: tt.code}
					d.Properties.ServerReference = []byte(hostPort(target))
					p.write(d)
					return
				}
				p.read()
			})
			dial(t, nil, mqtt.Options{ClientID: "r", Servers: []string{first}, MaxRedirects: 1,
				Backoff: mqtt.Backoff{Min: 1, Max: 1}})
			<-firstSeen
			<-targetSeen // redirected
			if tt.thenBackTo {
				if n := <-firstSeen; n != 1 {
					t.Fatalf("first server saw connection %d", n)
				}
				if n := targetConns.Load(); n != 1 {
					t.Fatalf("target saw %d connections, want 1", n)
				}
			} else {
				<-targetSeen // reconnected to the target again
				select {
				case n := <-firstSeen:
					t.Fatalf("moved client went back to the first server (connection %d)", n)
				default:
				}
			}
		})
	}
}
