package main

import (
	"crypto/tls"
	"net"
	"strings"
	"testing"

	"github.com/heraldiot/herald/internal/testenv"
)

// TestTLSClientCertificate publishes and subscribes over TLS with a client
// certificate, both ways between mqttc and mosquitto's tools.
func TestTLSClientCertificate(t *testing.T) {
	t.Parallel()
	b := testenv.StartBroker(t, testenv.BrokerOptions{TLS: true, RequireClientCert: true})
	host, port, _ := strings.Cut(b.TLSAddr, ":")
	certs := b.Certs
	tlsArgs := []string{"-h", host, "-p", port, "--cafile", certs.CAFile, "--cert", certs.ClientCertFile, "--key", certs.ClientKeyFile}

	for _, v := range []string{"311", "5"} {
		sub := startSub(t, "mosquitto_sub", args(tlsArgs, "-V", v, "-t", "tls/"+v, "-C", "1", "-v", "-q", "1")...)
		if r := mqttc(t, "", args("pub", tlsArgs, "-V", v, "-t", "tls/"+v, "-m", "encrypted", "-q", "1")...); r.code != 0 {
			t.Fatalf("mqttc pub over TLS: %v", r)
		}
		if r := sub.wait(t); r.stdout != "tls/"+v+" encrypted\n" {
			t.Errorf("mosquitto_sub over TLS: %v", r)
		}

		sub = startSub(t, "", args(tlsArgs, "-V", v, "-t", "tls/"+v, "-C", "1", "-v")...)
		if r := tool(t, "", "mosquitto_pub", args(tlsArgs, "-V", v, "-t", "tls/"+v, "-m", "back")...); r.code != 0 {
			t.Fatalf("mosquitto_pub over TLS: %v", r)
		}
		if r := sub.wait(t); r.stdout != "tls/"+v+" back\n" || r.code != 0 {
			t.Errorf("mqttc sub over TLS: %v", r)
		}
	}

	// Without the client certificate the broker drops the connection;
	// trusting another CA fails the handshake. mqttc exits with
	// libmosquitto's codes (7, connection lost; 8, TLS error).
	// mosquitto_pub and mosquitto_sub 2.0.11 do too, or, depending on
	// timing, exit 1 with "Unable to connect (...)." or "Protocol error";
	// so they are not run here.
	other := testenv.StartBroker(t, testenv.BrokerOptions{TLS: true})
	for name, c := range map[string]struct {
		args     []string
		code     int
		lastLine string
	}{
		"no client certificate": {[]string{"-h", host, "-p", port, "--cafile", certs.CAFile}, 7, "Error: The connection was lost."},
		"untrusted server":      {[]string{"-h", host, "-p", port, "--cafile", other.Certs.CAFile}, 8, "Error: A TLS error occurred."},
	} {
		for _, cmd := range []string{"pub", "sub"} {
			a := args(cmd, c.args, "-t", "x")
			if cmd == "pub" {
				a = append(a, "-m", "x")
			}
			got := mqttc(t, "", a...)
			if got.code != c.code || got.stdout != "" || lastLine(got.stderr) != c.lastLine {
				t.Errorf("%s: mqttc %s %v; want exit %d and %q", name, cmd, got, c.code, c.lastLine)
			}
		}
	}
}

// TestInsecureSkipsOnlyTheHostName: --insecure accepts a certificate for
// another name, but still only from a trusted CA, as mosquitto's does.
func TestInsecureSkipsOnlyTheHostName(t *testing.T) {
	t.Parallel()
	b := testenv.StartBroker(t, testenv.BrokerOptions{TLS: true})
	other := testenv.StartBroker(t, testenv.BrokerOptions{TLS: true})
	for _, c := range []struct {
		name     string
		ca       string
		insecure bool
		ok       bool
	}{
		{"name checked", b.Certs.CAFile, false, false},
		{"name not checked", b.Certs.CAFile, true, true},
		{"untrusted CA, insecure", other.Certs.CAFile, true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			// The certificate is for localhost and 127.0.0.1; ask for
			// another name and dial the listener directly.
			f := &connFlags{cafile: c.ca, insecure: c.insecure}
			cfg, err := f.tlsConfig("broker.example", false)
			if err != nil {
				t.Fatal(err)
			}
			conn, err := net.Dial("tcp", b.TLSAddr)
			if err != nil {
				t.Fatal(err)
			}
			tc := tls.Client(conn, cfg)
			err = tc.HandshakeContext(t.Context())
			tc.Close()
			if (err == nil) != c.ok {
				t.Errorf("handshake error %v, want success %t", err, c.ok)
			}
		})
	}
}
