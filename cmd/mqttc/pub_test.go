package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/heraldiot/herald/internal/testenv"
)

// brokerArgs are the -h and -p flags for a test broker's plain listener.
func brokerArgs(b *testenv.Broker) []string {
	host, port, _ := strings.Cut(b.Addr, ":")
	return []string{"-h", host, "-p", port}
}

func args(parts ...any) []string {
	var out []string
	for _, p := range parts {
		switch p := p.(type) {
		case string:
			out = append(out, p)
		case []string:
			out = append(out, p...)
		default:
			panic(fmt.Sprintf("args: %T", p))
		}
	}
	return out
}

// TestPubToMosquittoSub publishes with mqttc and receives with mosquitto_sub,
// for both protocol versions and every QoS.
func TestPubToMosquittoSub(t *testing.T) {
	t.Parallel()
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	for _, v := range []string{"311", "5"} {
		for _, qos := range []string{"0", "1", "2"} {
			t.Run("V"+v+"/q"+qos, func(t *testing.T) {
				t.Parallel()
				topic := "pub/" + v + "/" + qos
				sub := startSub(t, "mosquitto_sub", args(brokerArgs(b), "-V", v, "-q", qos, "-t", topic, "-C", "3", "-v")...)
				for _, msg := range []string{"one", "two"} {
					if r := mqttc(t, "", args("pub", brokerArgs(b), "-V", v, "-q", qos, "-t", topic, "-m", msg)...); r.code != 0 {
						t.Fatalf("mqttc pub: %v", r)
					}
				}
				// An empty message, which -v prints as "(null)".
				if r := mqttc(t, "", args("pub", brokerArgs(b), "-V", v, "-q", qos, "-t", topic, "-n")...); r.code != 0 {
					t.Fatalf("mqttc pub -n: %v", r)
				}
				r := sub.wait(t)
				want := topic + " one\n" + topic + " two\n" + topic + " (null)\n"
				if r.code != 0 || r.stdout != want {
					t.Errorf("mosquitto_sub: %v; want stdout %q", r, want)
				}
			})
		}
	}
}

// TestPubLineModeMatchesMosquittoPub sends the same stdin with -l through
// mosquitto_pub and mqttc: lines become messages without their "\n" but
// with any "\r", an empty line is an empty message, and a last line
// without an end is sent.
func TestPubLineModeMatchesMosquittoPub(t *testing.T) {
	t.Parallel()
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	const stdin = "first\n\nthird\r\nlast"
	for _, v := range []string{"311", "5"} {
		t.Run("V"+v, func(t *testing.T) {
			t.Parallel()
			topic := "lines/" + v
			format := []string{"-F", "%l:%x:%q", "-q", "1", "-C", "4", "-t", topic, "-V", v}
			wantSub := startSub(t, "mosquitto_sub", args(brokerArgs(b), format)...)
			if r := tool(t, stdin, "mosquitto_pub", args(brokerArgs(b), "-V", v, "-q", "1", "-t", topic, "-l")...); r.code != 0 {
				t.Fatalf("mosquitto_pub -l: %v", r)
			}
			want := wantSub.wait(t)

			gotSub := startSub(t, "mosquitto_sub", args(brokerArgs(b), format)...)
			if r := mqttc(t, stdin, args("pub", brokerArgs(b), "-V", v, "-q", "1", "-t", topic, "-l")...); r.code != 0 {
				t.Fatalf("mqttc pub -l: %v", r)
			}
			got := gotSub.wait(t)
			if got.stdout != want.stdout || want.stdout != "5:6669727374:1\n0::1\n6:74686972640d:1\n4:6c617374:1\n" {
				t.Errorf("after mqttc pub -l, mosquitto_sub printed %q; after mosquitto_pub -l, %q", got.stdout, want.stdout)
			}
		})
	}
}

// TestPubFileRepeatAndProperties covers -f, --repeat, -r and v5 -D
// publish properties, as mosquitto_sub -F sees them.
func TestPubFileRepeatAndProperties(t *testing.T) {
	t.Parallel()
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	file := filepath.Join(t.TempDir(), "payload")
	if err := os.WriteFile(file, []byte("\x00bin\xff"), 0o600); err != nil {
		t.Fatal(err)
	}
	sub := startSub(t, "mosquitto_sub", args(brokerArgs(b), "-V", "5", "-t", "props", "-C", "2", "-q", "2",
		"-F", "%x|%C|%E|%F|%P|%R|%D|%q")...)
	r := mqttc(t, "", args("pub", brokerArgs(b), "-t", "props", "-f", file, "-q", "2", "--repeat", "2",
		"-D", "publish", "content-type", "application/octet-stream",
		"-D", "publish", "message-expiry-interval", "3600",
		"-D", "publish", "payload-format-indicator", "0",
		"-D", "publish", "user-property", "k", "v",
		"-D", "publish", "response-topic", "reply/here",
		"-D", "publish", "correlation-data", "corr")...)
	if r.code != 0 {
		t.Fatalf("mqttc pub: %v", r)
	}
	line := "0062696eff|application/octet-stream|3600||k:v|reply/here|corr|2\n"
	if got := sub.wait(t); got.stdout != line+line {
		t.Errorf("mosquitto_sub printed %q, want %q twice", got.stdout, line)
	}

	// -r with -n clears the retained message again.
	for _, a := range [][]string{{"-m", "kept", "-r"}, {"-n", "-r"}} {
		if r := mqttc(t, "", args("pub", brokerArgs(b), "-t", "retained/1", a)...); r.code != 0 {
			t.Fatalf("mqttc pub %v: %v", a, r)
		}
		got := tool(t, "", "mosquitto_sub", args(brokerArgs(b), "-t", "retained/1", "-C", "1", "-W", "1", "-F", "%r %p")...)
		want := result{code: 0, stdout: "1 kept\n"}
		if a[0] == "-n" {
			want = result{code: exitTimeout, stdout: "", stderr: "Timed out\n"}
		}
		if got != want {
			t.Errorf("after mqttc pub %v, mosquitto_sub: %v; want %v", a, got, want)
		}
	}
}

// TestPubURL publishes with -L, credentials and topic in the URL.
func TestPubURL(t *testing.T) {
	t.Parallel()
	b := testenv.StartBroker(t, testenv.BrokerOptions{Users: map[string]string{"alice": "s3cret"}})
	sub := startSub(t, "mosquitto_sub", args(brokerArgs(b), "-u", "alice", "-P", "s3cret", "-t", "url/topic", "-C", "1", "-v")...)
	if r := mqttc(t, "", "pub", "-L", "mqtt://alice:s3cret@"+b.Addr+"/url/topic", "-m", "via url"); r.code != 0 {
		t.Fatalf("mqttc pub -L: %v", r)
	}
	if r := sub.wait(t); r.stdout != "url/topic via url\n" {
		t.Errorf("mosquitto_sub: %v", r)
	}
	// A wrong password in the URL is refused like one given with -P.
	want := tool(t, "", "mosquitto_pub", "-L", "mqtt://alice:wrong@"+b.Addr+"/url/topic", "-m", "x")
	got := mqttc(t, "", "pub", "-L", "mqtt://alice:wrong@"+b.Addr+"/url/topic", "-m", "x")
	if got != want {
		t.Errorf("bad URL password: mqttc %v; mosquitto_pub %v", got, want)
	}
}

// TestPubDebugMatchesMosquittoPub compares the -d lines of a publish at
// each QoS.
func TestPubDebugMatchesMosquittoPub(t *testing.T) {
	t.Parallel()
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	for _, v := range []string{"311", "5"} {
		for _, qos := range []string{"0", "1", "2"} {
			a := args(brokerArgs(b), "-d", "-V", v, "-q", qos, "-i", "debug-"+v+"-"+qos, "-t", "debug", "-m", "x", "--repeat", "2")
			want := tool(t, "", "mosquitto_pub", a...)
			got := mqttc(t, "", append([]string{"pub"}, a...)...)
			if got != want {
				t.Errorf("-V %s -q %s:\nmqttc pub:     %v\nmosquitto_pub: %v", v, qos, got, want)
			}
		}
	}
}
