package mqtt_test

import (
	"context"
	"errors"
	"testing"

	"github.com/heraldiot/herald/mqtt"
	"github.com/heraldiot/herald/mqtt/packet"
)

// The tests in this file drive enhanced authentication (MQTT 5.0 section
// 4.12) against a scripted server running the server side of SCRAM-SHA-256,
// since mosquitto's authentication plugins are not available here.

const scramMethod = "SCRAM-SHA-256"

func authPacket(code packet.ReasonCode, data []byte) *packet.Auth {
	a := &packet.Auth{ReasonCode: code}
	a.Properties.AuthMethod = []byte(scramMethod)
	a.Properties.AuthData = data
	return a
}

// readAuth reads the client's next packet, which must be AUTH with code.
func (p *peer) readAuth(code packet.ReasonCode) []byte {
	a, ok := p.read().(*packet.Auth)
	if !ok {
		p.t.Errorf("peer: expected AUTH %s", code)
		return nil
	}
	if a.ReasonCode != code || string(a.Properties.AuthMethod) != scramMethod {
		p.t.Errorf("peer: got AUTH %s method %q, want %s %s", a.ReasonCode, a.Properties.AuthMethod, code, scramMethod)
	}
	return a.Properties.AuthData
}

// scramChallenge answers the client's first message with the server's
// challenge and verifies the client's proof, returning the server's final
// message, or an error for a proof that fails.
func scramChallenge(p *peer, srv *scramServer, clientFirst []byte) ([]byte, error) {
	first, err := srv.first(clientFirst)
	if err != nil {
		p.t.Errorf("peer: %v", err)
		return nil, err
	}
	p.write(authPacket(packet.ContinueAuthentication, first))
	return srv.final(p.readAuth(packet.ContinueAuthentication))
}

// scramConnect plays the server's part of a SCRAM login at CONNECT and
// reports whether the client proved the password.
func scramConnect(p *peer, srv *scramServer) bool {
	c := p.connect()
	if c == nil {
		return false
	}
	if string(c.Properties.AuthMethod) != scramMethod {
		p.t.Errorf("peer: CONNECT method %q", c.Properties.AuthMethod)
		return false
	}
	final, err := scramChallenge(p, srv, c.Properties.AuthData)
	if err != nil {
		p.write(&packet.Connack{ReasonCode: packet.BadUserNameOrPassword})
		return false
	}
	ack := &packet.Connack{}
	ack.Properties.AuthMethod = []byte(scramMethod)
	ack.Properties.AuthData = final
	p.write(ack)
	return true
}

// scramReauth plays the server's part of a re-authentication the client
// started with start (its AUTH Re-authenticate data).
func scramReauth(p *peer, srv *scramServer, start []byte) bool {
	final, err := scramChallenge(p, srv, start)
	if err != nil {
		p.write(&packet.Disconnect{ReasonCode: packet.NotAuthorized})
		return false
	}
	p.write(authPacket(packet.Success, final))
	return true
}

func TestEnhancedAuthSCRAMConnectAndReauthenticate(t *testing.T) {
	srv := newSCRAMServer("device-7", "s3cret")
	logins := make(chan bool, 4)
	published := make(chan string, 1)
	url := listenPeers(t, packet.V5, func(p *peer, _ int) {
		if !scramConnect(p, srv) {
			logins <- false
			return
		}
		logins <- true
		logins <- scramReauth(p, srv, p.readAuth(packet.ReAuthenticate))
		// The session works after re-authentication.
		if pub, ok := p.read().(*packet.Publish); ok {
			p.write(&packet.Ack{PacketType: packet.TypePuback, PacketID: pub.PacketID})
			published <- string(pub.Topic)
		}
		p.read()
	})
	c := dial(t, nil, mqtt.Options{ClientID: "device-7", Servers: []string{url}, DisableAutoReconnect: true,
		Authenticator: mqtt.NewSCRAMSHA256("device-7", "s3cret")})
	if !<-logins {
		t.Fatal("server did not accept the client's proof at CONNECT")
	}
	if err := c.Reauthenticate(testContext(t)); err != nil {
		t.Fatalf("re-authenticate: %v", err)
	}
	if !<-logins {
		t.Fatal("server did not accept the client's proof at re-authentication")
	}
	if err := c.Publish(testContext(t), &mqtt.Message{Topic: "after/reauth", QoS: mqtt.AtLeastOnce}); err != nil {
		t.Fatal(err)
	}
	if topic := <-published; topic != "after/reauth" {
		t.Fatalf("server got a publish to %q", topic)
	}
}

func TestEnhancedAuthWrongPasswordRefused(t *testing.T) {
	srv := newSCRAMServer("device-7", "s3cret")
	url := listenPeers(t, packet.V5, func(p *peer, _ int) { scramConnect(p, srv) })
	_, err := mqtt.Dial(testContext(t), mqtt.Options{ClientID: "device-7", Servers: []string{url},
		Authenticator: mqtt.NewSCRAMSHA256("device-7", "guess")})
	var ce *mqtt.ConnectError
	if !errors.As(err, &ce) || !ce.BadCredentials() {
		t.Fatalf("dial: %v, want a bad-credentials ConnectError", err)
	}
}

// TestEnhancedAuthImpostorServerRejected: a server that accepts the login
// without knowing the password cannot produce the server signature, and
// the client must refuse the connection.
func TestEnhancedAuthImpostorServerRejected(t *testing.T) {
	impostor := newSCRAMServer("device-7", "not-the-password")
	url := listenPeers(t, packet.V5, func(p *peer, _ int) {
		c := p.connect()
		if c == nil {
			return
		}
		first, _ := impostor.first(c.Properties.AuthData)
		p.write(authPacket(packet.ContinueAuthentication, first))
		p.readAuth(packet.ContinueAuthentication)
		// Accept whatever proof came, with a signature from the wrong key.
		ack := &packet.Connack{}
		ack.Properties.AuthMethod = []byte(scramMethod)
		ack.Properties.AuthData = []byte("v=dGhpcyBpcyBub3QgYSBzaWduYXR1cmUgYXQgYWxsIQ==")
		p.write(ack)
		p.read()
	})
	_, err := mqtt.Dial(testContext(t), mqtt.Options{ClientID: "device-7", Servers: []string{url},
		Authenticator: mqtt.NewSCRAMSHA256("device-7", "s3cret")})
	if !errors.Is(err, mqtt.ErrSCRAMServerSignature) {
		t.Fatalf("dial: %v, want the server signature refused", err)
	}
}

// TestEnhancedAuthServerRequestsReauthentication: a challenge from the
// server outside any exchange makes the client re-authenticate.
func TestEnhancedAuthServerRequestsReauthentication(t *testing.T) {
	srv := newSCRAMServer("device-7", "s3cret")
	reauth := make(chan bool, 1)
	url := listenPeers(t, packet.V5, func(p *peer, _ int) {
		if !scramConnect(p, srv) {
			return
		}
		p.write(authPacket(packet.ContinueAuthentication, nil))
		reauth <- scramReauth(p, srv, p.readAuth(packet.ReAuthenticate))
		p.read()
	})
	dial(t, nil, mqtt.Options{ClientID: "device-7", Servers: []string{url}, DisableAutoReconnect: true,
		Authenticator: mqtt.NewSCRAMSHA256("device-7", "s3cret")})
	if !<-reauth {
		t.Fatal("the client did not complete the re-authentication the server asked for")
	}
}

// TestEnhancedAuthReauthenticationRefused: the server ends the connection
// instead of confirming; Reauthenticate reports the server's reason.
func TestEnhancedAuthReauthenticationRefused(t *testing.T) {
	srv := newSCRAMServer("device-7", "s3cret")
	url := listenPeers(t, packet.V5, func(p *peer, _ int) {
		if !scramConnect(p, srv) {
			return
		}
		srv.password = "rotated" // the credentials changed at the server
		scramReauth(p, srv, p.readAuth(packet.ReAuthenticate))
	})
	c := dial(t, nil, mqtt.Options{ClientID: "device-7", Servers: []string{url}, DisableAutoReconnect: true,
		Authenticator: mqtt.NewSCRAMSHA256("device-7", "s3cret")})
	err := c.Reauthenticate(testContext(t))
	var de *mqtt.DisconnectError
	if !errors.As(err, &de) || de.Code != packet.NotAuthorized {
		t.Fatalf("re-authenticate: %v, want the server's DISCONNECT not authorized", err)
	}
}

// TestEnhancedAuthProtocolErrors: AUTH packets a server must not send
// close the connection with Protocol Error.
func TestEnhancedAuthProtocolErrors(t *testing.T) {
	wrongMethod := &packet.Auth{ReasonCode: packet.ContinueAuthentication}
	wrongMethod.Properties.AuthMethod = []byte("PLAIN")
	tests := []struct {
		name string
		auth *packet.Auth
		opts mqtt.Options
	}{
		{"AUTH without enhanced authentication", authPacket(packet.ContinueAuthentication, nil), mqtt.Options{}},
		{"another method", wrongMethod, mqtt.Options{Authenticator: mqtt.NewSCRAMSHA256("u", "p")}},
		{"success outside an exchange", authPacket(packet.Success, nil), mqtt.Options{Authenticator: mqtt.NewSCRAMSHA256("u", "p")}},
		{"re-authenticate from the server", authPacket(packet.ReAuthenticate, nil), mqtt.Options{Authenticator: mqtt.NewSCRAMSHA256("u", "p")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newSCRAMServer("u", "p")
			got := make(chan packet.ReasonCode, 1)
			url := listenPeers(t, packet.V5, func(p *peer, _ int) {
				if tt.opts.Authenticator != nil {
					if !scramConnect(p, srv) {
						return
					}
				} else if p.connect() != nil {
					p.write(&packet.Connack{})
				}
				p.write(tt.auth)
				got <- p.expectDisconnect()
			})
			tt.opts.ClientID = "u"
			_, lost := connectToPeer(t, url, tt.opts)
			if err := awaitLost(t, lost); !errors.Is(err, packet.ProtocolError) {
				t.Errorf("lost with %v, want protocol error", err)
			}
			if code := <-got; code != packet.ProtocolError {
				t.Errorf("client sent DISCONNECT %s, want protocol error", code)
			}
		})
	}
}

// TestEnhancedAuthNeedsV5 refuses enhanced authentication under 3.1.1,
// which has no AUTH packet.
func TestEnhancedAuthNeedsV5(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := mqtt.Dial(ctx, mqtt.Options{Version: mqtt.V311, ClientID: "x", Servers: []string{"tcp://127.0.0.1:1"},
		Authenticator: mqtt.NewSCRAMSHA256("u", "p")})
	if err == nil || !errors.Is(err, mqtt.ErrAuthNeedsV5) {
		t.Fatalf("dial: %v, want ErrAuthNeedsV5", err)
	}
}
