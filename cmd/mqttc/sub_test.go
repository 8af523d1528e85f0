package main

import (
	"bufio"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/heraldiot/herald/internal/testenv"
)

// TestMosquittoPubToSub publishes with mosquitto_pub to mosquitto_sub and
// mqttc sub side by side, and expects the same output, for both protocol
// versions, every QoS and the default, -v and -N output modes.
func TestMosquittoPubToSub(t *testing.T) {
	t.Parallel()
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	for _, v := range []string{"311", "5"} {
		for _, qos := range []string{"0", "1", "2"} {
			for _, mode := range [][]string{{}, {"-v"}, {"-v", "-N"}, {"-N"}} {
				name := "V" + v + "/q" + qos + "/" + strings.Join(append([]string{"out"}, mode...), "")
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					topic := "sub/" + name
					subArgs := args(brokerArgs(b), "-V", v, "-q", qos, "-t", topic, "-C", "3", mode)
					want := startSub(t, "mosquitto_sub", subArgs...)
					got := startSub(t, "", subArgs...)
					for _, msg := range [][]string{{"-m", "hello world"}, {"-n"}, {"-m", "\x01\x02 bin\xff"}} {
						if r := tool(t, "", "mosquitto_pub", args(brokerArgs(b), "-V", v, "-q", qos, "-t", topic, msg)...); r.code != 0 {
							t.Fatalf("mosquitto_pub: %v", r)
						}
					}
					w, g := want.wait(t), got.wait(t)
					if g != w || w.code != 0 {
						t.Errorf("mqttc sub: %v\nmosquitto_sub: %v", g, w)
					}
				})
			}
		}
	}
}

// TestSubBinaryBesideMosquittoSub runs the built mqttc binary as a process
// next to mosquitto_sub, with -T, -R and several -t.
func TestSubBinaryBesideMosquittoSub(t *testing.T) {
	t.Parallel()
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	if r := tool(t, "", "mosquitto_pub", args(brokerArgs(b), "-t", "bin/stale", "-m", "old", "-r")...); r.code != 0 {
		t.Fatalf("mosquitto_pub: %v", r)
	}
	subArgs := args(brokerArgs(b), "-t", "bin/#", "-t", "other", "-T", "bin/skip/#", "-R", "-C", "3", "-v", "-q", "1")
	want := startSub(t, "mosquitto_sub", subArgs...)
	got := startSub(t, mqttcBin, subArgs...)
	for _, pub := range [][]string{
		{"-t", "bin/skip/x", "-m", "filtered out"},
		{"-t", "bin/a", "-m", "first"},
		{"-t", "other", "-m", "second", "-q", "2"},
		{"-t", "bin/b/c", "-m", "third", "-q", "1"},
		{"-t", "bin/a", "-m", "after the count"},
	} {
		if r := tool(t, "", "mosquitto_pub", args(brokerArgs(b), pub)...); r.code != 0 {
			t.Fatalf("mosquitto_pub: %v", r)
		}
	}
	w, g := want.wait(t), got.wait(t)
	if g != w || w.stdout != "bin/a first\nother second\nbin/b/c third\n" {
		t.Errorf("mqttc sub binary: %v\nmosquitto_sub: %v", g, w)
	}
}

// TestSubFormats compares -F output with mosquitto_sub's on retained
// messages, which both receive on subscribing.
func TestSubFormats(t *testing.T) {
	t.Parallel()
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	file := filepath.Join(t.TempDir(), "payload")
	// No NUL: mosquitto_sub's %j ends the payload there (a C string).
	if err := os.WriteFile(file, []byte("bin\x01\xff\"quote\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, pub := range [][]string{
		{"-t", "fmt/a", "-m", "hello", "-q", "1"},
		{"-t", "fmt/b", "-f", file, "-q", "2"},
		// Properties in ascending identifier order, the order Herald's
		// client sends and mqttc's %j assumes (mosquitto_sub prints wire
		// order).
		{"-t", "fmt/c", "-m", `{"json":[1,2]}`, "-V", "5",
			"-D", "publish", "payload-format-indicator", "1",
			"-D", "publish", "message-expiry-interval", "3600",
			"-D", "publish", "content-type", "application/json",
			"-D", "publish", "response-topic", "reply",
			"-D", "publish", "correlation-data", "cd",
			"-D", "publish", "user-property", "k1", "v1",
			"-D", "publish", "user-property", "k2", "v2"},
	} {
		if r := tool(t, "", "mosquitto_pub", args(brokerArgs(b), "-r", pub)...); r.code != 0 {
			t.Fatalf("mosquitto_pub: %v", r)
		}
	}
	// The time stamps differ between the two runs, and so may the expiry
	// interval left (3600 at publishing); the rest must not.
	timestamps := regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6}Z)?[+-]\d{4}|\d{10}\.\d{9}|\b0*3[56]\d\d\b`)
	for _, format := range []string{
		`%t %p`,
		`%t|%l|%q|%r|%m|%x|%X|%%|\t|\\|\e|\0|\a|\v|\r|@@`,
		`[%5t][%-8t][%.3t][%6.2t][%05l][%-5l|][%8p][%-3p][%3q][%-3r][%05m]`,
		`%C|%D|%E|%F|%P|%R|%S|%A|%20C|%.4R|%06E`,
		`%j`,
		`%J`,
		`%I %U`,
	} {
		for _, v := range []string{"311", "5"} {
			t.Run(v+"/"+format, func(t *testing.T) {
				t.Parallel()
				// QoS 1, not 2: mosquitto_sub prints a QoS 2 message at its
				// PUBREL, after QoS 0 and 1 messages that came later.
				a := args(brokerArgs(b), "-V", v, "-q", "1", "-t", "fmt/#", "-C", "3", "-F", format)
				if v == "5" {
					a = append(a, "-D", "subscribe", "subscription-identifier", "42")
				}
				want := tool(t, "", "mosquitto_sub", a...)
				got := mqttc(t, "", append([]string{"sub"}, a...)...)
				want.stdout = timestamps.ReplaceAllString(want.stdout, "TIME")
				got.stdout = timestamps.ReplaceAllString(got.stdout, "TIME")
				if got != want {
					t.Errorf("-F %q\nmqttc sub:     %v\nmosquitto_sub: %v", format, got, want)
				}
			})
		}
	}
}

// TestSubCountAndTimeout checks -C and -W against mosquitto_sub: the
// output, and exit code 27 with "Timed out" when -W ends the run first.
func TestSubCountAndTimeout(t *testing.T) {
	t.Parallel()
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	for _, topic := range []string{"ct/1", "ct/2", "ct/3"} {
		if r := tool(t, "", "mosquitto_pub", args(brokerArgs(b), "-t", topic, "-m", "m-"+topic, "-r")...); r.code != 0 {
			t.Fatalf("mosquitto_pub: %v", r)
		}
	}
	for name, a := range map[string][]string{
		"count reached":          {"-t", "ct/#", "-C", "2", "-v"},
		"timeout after messages": {"-t", "ct/#", "-C", "5", "-W", "1", "-v"},
		"timeout, nothing":       {"-t", "nothing/here", "-W", "1"},
		"timeout, quiet":         {"-t", "nothing/here", "-W", "1", "--quiet"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			a := args(brokerArgs(b), a)
			want := tool(t, "", "mosquitto_sub", a...)
			got := mqttc(t, "", append([]string{"sub"}, a...)...)
			if got != want {
				t.Errorf("mqttc sub: %v\nmosquitto_sub: %v", got, want)
			}
		})
	}
}

// TestSubRetainedOnly: --retained-only prints the retained messages and
// ends, exit 0, at the first fresh one, which it does not print.
func TestSubRetainedOnly(t *testing.T) {
	t.Parallel()
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	for _, topic := range []string{"ro/1", "ro/2"} {
		if r := tool(t, "", "mosquitto_pub", args(brokerArgs(b), "-t", topic, "-m", "stale "+topic, "-r", "-q", "1")...); r.code != 0 {
			t.Fatalf("mosquitto_pub: %v", r)
		}
	}
	for _, v := range []string{"311", "5"} {
		t.Run("V"+v, func(t *testing.T) {
			subArgs := args(brokerArgs(b), "-V", v, "-t", "ro/#", "--retained-only", "-v", "-q", "1")
			want := startSub(t, "mosquitto_sub", subArgs...)
			got := startSub(t, "", subArgs...)
			if r := tool(t, "", "mosquitto_pub", args(brokerArgs(b), "-t", "ro/fresh", "-m", "fresh")...); r.code != 0 {
				t.Fatalf("mosquitto_pub: %v", r)
			}
			w, g := want.wait(t), got.wait(t)
			if g != w || w != (result{stdout: "ro/1 stale ro/1\nro/2 stale ro/2\n"}) {
				t.Errorf("mqttc sub: %v\nmosquitto_sub: %v", g, w)
			}
		})
	}
}

// TestSubRemoveRetained clears retained messages, except those -T filters
// out, and a fresh mosquitto_sub then finds nothing else.
func TestSubRemoveRetained(t *testing.T) {
	t.Parallel()
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	for _, topic := range []string{"rr/1", "rr/2/x", "rr/keep"} {
		if r := tool(t, "", "mosquitto_pub", args(brokerArgs(b), "-t", topic, "-m", "v", "-r")...); r.code != 0 {
			t.Fatalf("mosquitto_pub: %v", r)
		}
	}
	// mosquitto_sub 2.0.11 never exits here (it waits for its clearing
	// messages forever); mqttc ends once they are acknowledged and their
	// echo, a fresh message, arrives.
	r := mqttc(t, "", args("sub", brokerArgs(b), "-t", "rr/#", "-T", "rr/keep", "--remove-retained", "--retained-only", "-v")...)
	if r != (result{stdout: "rr/1 v\nrr/2/x v\n"}) {
		t.Fatalf("mqttc sub --remove-retained: %v", r)
	}
	for topic, want := range map[string]result{
		"rr/1":    {code: exitTimeout, stderr: "Timed out\n"},
		"rr/2/x":  {code: exitTimeout, stderr: "Timed out\n"},
		"rr/keep": {stdout: "rr/keep v\n"},
	} {
		t.Run(topic, func(t *testing.T) {
			t.Parallel()
			got := tool(t, "", "mosquitto_sub", args(brokerArgs(b), "-t", topic, "-W", "1", "-C", "1", "-v")...)
			if got != want {
				t.Errorf("mosquitto_sub -t %s afterwards: %v; want %v", topic, got, want)
			}
		})
	}
}

// TestSubPersistentSession: -c with -E sets up a session and exits; QoS 1
// messages published meanwhile wait in it for the next mqttc sub -c.
func TestSubPersistentSession(t *testing.T) {
	t.Parallel()
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	for _, v := range []string{"311", "5"} {
		t.Run("V"+v, func(t *testing.T) {
			t.Parallel()
			session := args(brokerArgs(b), "-V", v, "-c", "-i", "persist-"+v, "-q", "1", "-t", "persist/"+v)
			if r := mqttc(t, "", args("sub", session, "-E")...); r != (result{}) {
				t.Fatalf("mqttc sub -c -E: %v", r)
			}
			for _, m := range []string{"queued 1", "queued 2"} {
				if r := tool(t, "", "mosquitto_pub", args(brokerArgs(b), "-q", "1", "-t", "persist/"+v, "-m", m)...); r.code != 0 {
					t.Fatalf("mosquitto_pub: %v", r)
				}
			}
			if r := mqttc(t, "", args("sub", session, "-C", "2")...); r != (result{stdout: "queued 1\nqueued 2\n"}) {
				t.Fatalf("mqttc sub -c -C 2: %v", r)
			}
			// Both were acknowledged before DISCONNECT: nothing is left.
			if r := mqttc(t, "", args("sub", session, "-W", "1")...); r != (result{code: exitTimeout, stderr: "Timed out\n"}) {
				t.Errorf("mqttc sub -c afterwards: %v", r)
			}
		})
	}
}

// TestSubWill kills a subscribing mqttc process; the broker then publishes
// its will.
func TestSubWill(t *testing.T) {
	t.Parallel()
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	watcher := startSub(t, "mosquitto_sub", args(brokerArgs(b), "-t", "will/topic", "-C", "1", "-v")...)
	victim := startSub(t, mqttcBin, args(brokerArgs(b), "-t", "anything", "--will-topic", "will/topic",
		"--will-payload", "gone", "--will-qos", "1")...)
	if err := victim.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	victim.wait(t)
	if r := watcher.wait(t); r.stdout != "will/topic gone\n" {
		t.Errorf("mosquitto_sub: %v", r)
	}
}

// TestSubAllDenied: when SUBACK refuses every filter, mosquitto_sub says so,
// disconnects and exits 0. mosquitto never refuses, so a scripted broker
// answers here.
func TestSubAllDenied(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"311", "5"} {
		t.Run("V"+v, func(t *testing.T) {
			t.Parallel()
			addr := startRefusingBroker(t, v == "5")
			host, port, _ := strings.Cut(addr, ":")
			a := []string{"-h", host, "-p", port, "-V", v, "-t", "denied"}
			want := tool(t, "", "mosquitto_sub", a...)
			got := mqttc(t, "", append([]string{"sub"}, a...)...)
			if got != want || want != (result{stderr: "All subscription requests were denied.\n"}) {
				t.Errorf("mqttc sub: %v\nmosquitto_sub: %v", got, want)
			}
		})
	}
}

// startRefusingBroker serves clients that subscribe to one filter: it
// accepts CONNECT and refuses the SUBSCRIBE.
func startRefusingBroker(t *testing.T, v5 bool) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go serveRefusing(conn, v5)
		}
	}()
	return l.Addr().String()
}

func serveRefusing(conn net.Conn, v5 bool) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(commandTimeout))
	br := bufio.NewReader(conn)
	for {
		first, err := br.ReadByte()
		if err != nil {
			return
		}
		var size, shift int
		for {
			b, err := br.ReadByte()
			if err != nil {
				return
			}
			size |= int(b&0x7F) << shift
			shift += 7
			if b&0x80 == 0 {
				break
			}
		}
		body := make([]byte, size)
		if _, err := io.ReadFull(br, body); err != nil {
			return
		}
		switch first >> 4 {
		case 1: // CONNECT
			if v5 {
				conn.Write([]byte{0x20, 3, 0, 0, 0})
			} else {
				conn.Write([]byte{0x20, 2, 0, 0})
			}
		case 8: // SUBSCRIBE: the packet identifier comes first
			if v5 {
				conn.Write([]byte{0x90, 4, body[0], body[1], 0, 0x87})
			} else {
				conn.Write([]byte{0x90, 3, body[0], body[1], 0x80})
			}
		case 14: // DISCONNECT
			return
		}
	}
}
