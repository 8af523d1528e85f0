package testenv_test

import (
	"crypto/tls"
	"io"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/heraldiot/herald/internal/testenv"
)

// connectPacket hand-encodes a CONNECT so these tests check the broker set-up
// without depending on Herald's own codec.
func connectPacket(level byte, clientID, username, password string) []byte {
	str := func(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }
	flags := byte(0x02) // clean start
	body := append(str("MQTT"), level, 0, 0, 30)
	if level == 5 {
		body = append(body, 0) // no properties
	}
	body = append(body, str(clientID)...)
	if username != "" {
		flags |= 0x80 | 0x40
		body = append(body, str(username)...)
		body = append(body, str(password)...)
	}
	body[7] = flags
	return append([]byte{0x10, byte(len(body))}, body...)
}

// connack sends CONNECT over conn and returns the CONNACK's return/reason code.
func connack(t *testing.T, conn net.Conn, level byte, username, password string) (byte, error) {
	t.Helper()
	if err := conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(connectPacket(level, "proof-"+t.Name()[:4], username, password)); err != nil {
		return 0, err
	}
	head := make([]byte, 2)
	if _, err := io.ReadFull(conn, head); err != nil {
		return 0, err
	}
	if head[0] != 0x20 {
		t.Fatalf("first packet type byte = %#x, want CONNACK (0x20)", head[0])
	}
	body := make([]byte, head[1])
	if _, err := io.ReadFull(conn, body); err != nil {
		return 0, err
	}
	if len(body) < 2 {
		t.Fatalf("CONNACK body %x too short", body)
	}
	return body[1], nil
}

func TestBrokerConnectTCP(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	for _, level := range []byte{4, 5} {
		conn, err := net.Dial("tcp", b.Addr)
		if err != nil {
			t.Fatal(err)
		}
		code, err := connack(t, conn, level, "", "")
		conn.Close()
		if err != nil || code != 0 {
			t.Errorf("protocol level %d: CONNACK code %#x, err %v; want success", level, code, err)
		}
	}
}

func TestBrokerConnectTLSClientCertificate(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{TLS: true, RequireClientCert: true})
	for _, level := range []byte{4, 5} {
		conn, err := tls.Dial("tcp", b.TLSAddr, b.Certs.ClientTLSConfig(true))
		if err != nil {
			t.Fatalf("TLS dial with client certificate: %v", err)
		}
		code, err := connack(t, conn, level, "", "")
		conn.Close()
		if err != nil || code != 0 {
			t.Errorf("protocol level %d over TLS: CONNACK code %#x, err %v; want success", level, code, err)
		}
	}

	// Without a client certificate the broker must refuse. With TLS 1.3 the
	// refusal arrives after the client's side of the handshake, so it shows
	// on the first read or write rather than in Dial.
	conn, err := tls.Dial("tcp", b.TLSAddr, b.Certs.ClientTLSConfig(false))
	if err == nil {
		_, err = connack(t, conn, 5, "", "")
		conn.Close()
	}
	if err == nil {
		t.Fatal("broker accepted a TLS client without a certificate")
	}
}

func TestBrokerPasswordFile(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{Users: map[string]string{"device-1": "s3cret"}})
	tests := []struct {
		level          byte
		user, password string
		want           byte
	}{
		{5, "device-1", "s3cret", 0x00},
		{4, "device-1", "s3cret", 0x00},
		{5, "device-1", "wrong", 0x87}, // mosquitto answers Not authorized, not 0x86
		{4, "device-1", "wrong", 0x05}, // Connection Refused, not authorized
		{5, "", "", 0x87},              // anonymous: Not authorized
	}
	for _, tt := range tests {
		conn, err := net.Dial("tcp", b.Addr)
		if err != nil {
			t.Fatal(err)
		}
		code, err := connack(t, conn, tt.level, tt.user, tt.password)
		conn.Close()
		if err != nil || code != tt.want {
			t.Errorf("level %d user %q password %q: CONNACK code %#x, err %v; want %#x",
				tt.level, tt.user, tt.password, code, err, tt.want)
		}
	}
}

func TestBrokerPersistenceSurvivesRestart(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{Persistence: true})
	host, port, _ := net.SplitHostPort(b.Addr)
	pub := exec.Command("mosquitto_pub", "-h", host, "-p", port, "-q", "1", "-r", "-t", "proof/retained", "-m", "kept")
	if out, err := pub.CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub: %v: %s", err, out)
	}
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	sub := exec.Command("mosquitto_sub", "-h", host, "-p", port, "-t", "proof/retained", "-C", "1", "-W", "5")
	out, err := sub.Output()
	if err != nil {
		t.Fatalf("mosquitto_sub after restart: %v: %s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "kept" {
		t.Errorf("retained message after a restart = %q, want %q", got, "kept")
	}
}
