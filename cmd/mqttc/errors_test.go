package main

import (
	"net"
	"strings"
	"testing"

	"github.com/heraldiot/herald/internal/testenv"
)

// TestBadCredentialsMatchMosquitto runs mosquitto_pub/mosquitto_sub and
// mqttc pub/sub with refused credentials and expects the same exit code
// (the CONNACK code) and the same stderr.
func TestBadCredentialsMatchMosquitto(t *testing.T) {
	t.Parallel()
	b := testenv.StartBroker(t, testenv.BrokerOptions{Users: map[string]string{"alice": "s3cret"}})
	for _, v := range []string{"311", "5"} {
		for name, creds := range map[string][]string{
			"wrong password": {"-u", "alice", "-P", "wrong"},
			"unknown user":   {"-u", "mallory", "-P", "s3cret"},
			"anonymous":      {},
		} {
			for _, cmd := range []string{"pub", "sub"} {
				t.Run(v+"/"+name+"/"+cmd, func(t *testing.T) {
					t.Parallel()
					a := args(brokerArgs(b), "-V", v, creds, "-t", "secret/topic")
					if cmd == "pub" {
						a = append(a, "-m", "x")
					}
					want := tool(t, "", "mosquitto_"+cmd, a...)
					got := mqttc(t, "", append([]string{cmd}, a...)...)
					if got != want || want.code == 0 {
						t.Errorf("mqttc %s: %v\nmosquitto_%s: %v", cmd, got, cmd, want)
					}
				})
			}
		}
	}
	// The right credentials work.
	if r := mqttc(t, "", args("pub", brokerArgs(b), "-u", "alice", "-P", "s3cret", "-t", "t", "-m", "x")...); r.code != 0 {
		t.Errorf("mqttc pub with good credentials: %v", r)
	}
}

// TestNetworkErrorsMatchMosquitto: nothing listening, and a host that
// does not resolve.
func TestNetworkErrorsMatchMosquitto(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(l.Addr().String())
	l.Close() // now nothing listens there
	for name, a := range map[string][]string{
		"refused":    {"-h", "127.0.0.1", "-p", port},
		"unresolved": {"-h", "no-such-host.invalid"},
	} {
		for _, cmd := range []string{"pub", "sub"} {
			t.Run(name+"/"+cmd, func(t *testing.T) {
				t.Parallel()
				a := args(a, "-t", "x")
				if cmd == "pub" {
					a = append(a, "-m", "x")
				}
				want := tool(t, "", "mosquitto_"+cmd, a...)
				got := mqttc(t, "", append([]string{cmd}, a...)...)
				if got != want {
					t.Errorf("mqttc %s: %v\nmosquitto_%s: %v", cmd, got, cmd, want)
				}
			})
		}
	}
}

// TestUsageErrorsMatchMosquitto: bad command lines exit 1, as with
// mosquitto, and where mqttc words the error as mosquitto does, the first
// line of stderr is the same.
func TestUsageErrorsMatchMosquitto(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		cmd       string
		args      []string
		sameFirst bool // the first stderr line is mosquitto's
	}{
		{"pub", []string{"-t", "a", "-m", "x", "-q", "3"}, true},
		{"pub", []string{"-t", "a", "-m", "x", "-k", "2"}, true},
		{"pub", []string{"-t", "a/#", "-m", "x"}, true},
		{"pub", []string{"-t", "a", "-m", "x", "-n"}, true},
		{"pub", []string{"-t", "a"}, true},
		{"pub", []string{"-m", "x"}, true},
		{"pub", []string{"-t", "a", "-m", "x", "-V", "4"}, true},
		{"pub", []string{"-t", "a", "-m", "x", "-c"}, true},
		{"pub", []string{"-t", "a", "-m", "x", "-i", "a", "-I", "b"}, true},
		{"pub", []string{"-t", "a", "-m", "x", "-V", "5", "-x", "abc"}, true},
		{"pub", []string{"-t", "a", "-m", "x", "-V", "5", "-x", "-1"}, true},
		{"pub", []string{"-t", "a", "-m", "x", "--repeat", "0"}, true},
		{"pub", []string{"-t", "a", "-m", "x", "-D", "publish", "bogus", "1"}, true},
		{"pub", []string{"-t", "a", "-m", "x", "-D", "bogus", "content-type", "1"}, true},
		{"pub", []string{"-t", "a", "-m", "x", "-D", "connect", "content-type", "x"}, true},
		{"pub", []string{"-t", "a", "-m", "x", "-D", "publish", "subscription-identifier", "3"}, true},
		{"pub", []string{"-t", "a", "-m", "x", "-D", "publish", "message-expiry-interval", "-5"}, true},
		{"pub", []string{"-t", "a", "-m", "x", "-D", "publish", "user-property", "k"}, true},
		{"pub", []string{"-t", "a", "-m", "x", "--will-payload", "p"}, true},
		{"pub", []string{"-t", "a", "-m", "x", "--cert", "c"}, true},
		{"pub", []string{"-t", "a", "-m", "x", "--cafile", "/nonexistent/ca.crt"}, true},
		{"pub", []string{"-L", "http://localhost/a", "-m", "x"}, true},
		{"pub", []string{"-L", "mqtt://localhost", "-m", "x"}, true},
		{"pub", []string{"-t", "a", "-f", "/nonexistent/file"}, true},
		{"pub", []string{"-t", "a", "-m", "x", "--no-such-flag"}, false},
		{"sub", []string{}, true},
		{"sub", []string{"-t", "a/#/b"}, true},
		{"sub", []string{"-t", "a", "-C", "0"}, true},
		{"sub", []string{"-t", "a", "-W", "0"}, true},
		{"sub", []string{"-t", "a", "-R", "--retained-only"}, true},
		{"sub", []string{"-t", "a", "-F", "%z"}, true},
		{"sub", []string{"-t", "a", "-F", "trailing%"}, true},
		{"sub", []string{"-t", "a", "-F", `bad\q`}, true},
		{"sub", []string{"-t", "a", "-F", `trailing\`}, true},
	} {
		t.Run(c.cmd+" "+strings.Join(c.args, " "), func(t *testing.T) {
			t.Parallel()
			// Port 1: these must fail before connecting.
			a := append([]string{"-h", "127.0.0.1", "-p", "1"}, c.args...)
			want := tool(t, "", "mosquitto_"+c.cmd, a...)
			got := mqttc(t, "", append([]string{c.cmd}, a...)...)
			if got.code != want.code || got.code != 1 {
				t.Errorf("exit code: mqttc %v; mosquitto_%s %v", got, c.cmd, want)
			}
			if c.sameFirst && firstLine(got.stderr) != firstLine(want.stderr) {
				t.Errorf("first stderr line: mqttc %q; mosquitto_%s %q", firstLine(got.stderr), c.cmd, firstLine(want.stderr))
			}
		})
	}
}

// firstLine is the first non-empty line of s: mosquitto starts some
// messages with an empty one.
func firstLine(s string) string {
	for line := range strings.SplitSeq(s, "\n") {
		if line != "" {
			return line
		}
	}
	return ""
}

// lastLine is the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}
