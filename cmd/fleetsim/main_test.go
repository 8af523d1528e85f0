package main

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldiot/herald/internal/testenv"
	"github.com/heraldiot/herald/mqtt"
	"github.com/heraldiot/herald/protocol"
)

// safeBuffer is a bytes.Buffer for output written while the test reads it.
type safeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *safeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fleetsim runs the command in-process until it returns or ctx ends.
func fleetsim(ctx context.Context, args ...string) (string, error) {
	var out safeBuffer
	cmd := newCommand(&out, &out)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	return out.String(), err
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--protocol", "4"}, "--protocol"},
		{[]string{"--broker", "http://x:1"}, "scheme"},
		{[]string{"--cafile", "ca.pem"}, "TLS broker URL"},
		{[]string{"--broker", "tls://x:1", "--cert", "c.pem"}, "--cert and --key"},
		{[]string{"--models", "a=x"}, "--models"},
		{[]string{"--versions", "1.0"}, "versions"},
		{[]string{"--labels", "site"}, "--labels"},
		{[]string{"--devices", "0"}, "at least one"},
		{[]string{"--fail-probability", "0.8", "--reject-probability", "0.5"}, "add up"},
		{[]string{"--profile", "../../hack/demo/fleet.yaml", "--models", "x"}, "without --profile"},
		{[]string{"--profile", "missing.yaml"}, "missing.yaml"},
		{[]string{"extra"}, "unknown command"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, err := fleetsim(context.Background(), tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v (output %q), want one about %q", err, out, tc.want)
			}
		})
	}
}

// TestList prints the fleet the profile describes, with stable IDs and
// the cohorts of docs/protocol.md.
func TestList(t *testing.T) {
	out, err := fleetsim(context.Background(), "--list", "-n", "4", "--models", "sensor", "--versions", "1.0.0=1,1.1.0=1", "--labels", "site=a|b")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "ID") {
		t.Fatalf("output %q", out)
	}
	want := []string{
		fmt.Sprintf("sensor-0001  sensor  1.0.0    %s      rev A     site=a", protocol.CohortSegment(protocol.Cohort("sensor-0001"))),
		fmt.Sprintf("sensor-0002  sensor  1.1.0    %s      rev A     site=b", protocol.CohortSegment(protocol.Cohort("sensor-0002"))),
	}
	for i, w := range want {
		if strings.TrimSpace(lines[i+1]) != w {
			t.Errorf("line %d: %q, want %q", i+1, lines[i+1], w)
		}
	}
	demo, err := fleetsim(context.Background(), "--list", "--profile", "../../hack/demo/fleet.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(demo, "\n") - 1; n != 300 {
		t.Fatalf("the demo profile lists %d devices, want its 300", n)
	}
}

// TestUpdateRun runs a small fleet against mosquitto, on both MQTT
// versions, and updates it as the operator would: the devices report, and
// the summary counts them.
func TestUpdateRun(t *testing.T) {
	for _, version := range []string{"5", "3.1.1"} {
		t.Run(version, func(t *testing.T) {
			b := testenv.StartBroker(t, testenv.BrokerOptions{})
			const n = 20
			out, statuses := runWithNotice(t, b.URL(), n, "--protocol", version, "--fail-probability", "0.25", "--fail-reasons", "rolled-back")
			failed := 0
			for _, s := range statuses {
				if s.State == protocol.StateFailed {
					if s.Reason != protocol.ReasonRolledBack {
						t.Fatalf("status %+v", s)
					}
					failed++
				}
			}
			if failed == 0 || failed == n {
				t.Fatalf("%d of %d devices failed", failed, n)
			}
			summary := regexp.MustCompile(`fleetsim: ran .* with 20 devices, 20 online at the end; updates succeeded (\d+), failed (\d+), rejected 0, canceled 0; (\d+) reboots`)
			m := summary.FindStringSubmatch(out)
			if m == nil || m[1] != fmt.Sprint(n-failed) || m[2] != fmt.Sprint(failed) || m[3] != fmt.Sprint(n) {
				t.Fatalf("summary does not count %d succeeded and %d failed (rolled back, so %d reboots):\n%s", n-failed, failed, n, out)
			}
			if !strings.Contains(out, "online 20/20 | updating:") {
				t.Fatalf("no progress line:\n%s", out)
			}
		})
	}
}

// TestTLSAndCredentials connects over TLS with a client certificate, and
// with a user name and password.
func TestTLSAndCredentials(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{TLS: true, RequireClientCert: true, Users: map[string]string{"device": "s3cret"}})
	c := b.Certs
	args := []string{"--broker", b.TLSURL(), "--cafile", c.CAFile, "--cert", c.ClientCertFile, "--key", c.ClientKeyFile,
		"-u", "device", "-P", "s3cret", "-n", "3", "--duration", "500ms"}
	out, err := fleetsim(context.Background(), args...)
	if err != nil || !strings.Contains(out, "3 devices online") {
		t.Fatalf("error %v, output:\n%s", err, out)
	}
	bad := append(args[:len(args):len(args)], "-P", "wrong")
	if out, err := fleetsim(context.Background(), bad...); err == nil || !strings.Contains(err.Error(), "could not connect") {
		t.Fatalf("with a wrong password: error %v, output:\n%s", err, out)
	}
}

// TestChurn takes devices offline and back while the fleet runs.
func TestChurn(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	out, err := fleetsim(context.Background(), "--broker", b.URL(), "-n", "10", "--duration", "2s",
		"--churn", "600", "--churn-downtime", "200ms", "--churn-abrupt")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(\d+) churn outages`).FindStringSubmatch(out)
	if m == nil || m[1] == "0" {
		t.Fatalf("no churn:\n%s", out)
	}
}

// runWithNotice runs fleetsim with n devices, sends every device the same
// update notice once all are online, waits for every outcome, stops
// fleetsim and returns its output and the last status of every device.
func runWithNotice(t *testing.T, broker string, n int, args ...string) (string, map[string]protocol.Status) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	topics, _ := protocol.NewTopics("factory-7/sensors")
	var (
		mu       sync.Mutex
		online   = map[string]bool{}
		statuses = map[string]protocol.Status{}
		changed  = make(chan struct{}, 1)
	)
	c, err := mqtt.Dial(ctx, mqtt.Options{Servers: []string{broker}, ClientID: "test-operator", CleanStart: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(context.Background())
	handle := func(m *mqtt.Message) {
		id, kind, err := topics.ParseDeviceTopic(m.Topic)
		if err != nil || len(m.Payload) == 0 {
			return
		}
		mu.Lock()
		switch kind {
		case protocol.TopicPresence:
			p, err := protocol.ParsePresence(m.Payload)
			if err == nil {
				online[id] = p.State == protocol.PresenceOnline
			}
		case protocol.TopicStatus:
			s, err := protocol.ParseStatus(m.Payload)
			if err != nil {
				t.Errorf("invalid status from %s: %v", id, err)
			}
			statuses[id] = s
		}
		mu.Unlock()
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	if err := c.Subscribe(ctx, handle, mqtt.Subscription{Filter: topics.AllPresence(), QoS: 1}, mqtt.Subscription{Filter: topics.AllStatus(), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		for {
			mu.Lock()
			ok := cond()
			mu.Unlock()
			if ok {
				return
			}
			select {
			case <-changed:
			case <-time.After(100 * time.Millisecond):
			case <-ctx.Done():
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}

	simCtx, stop := context.WithCancel(ctx)
	defer stop()
	var out string
	var simErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		out, simErr = fleetsim(simCtx, append([]string{"--broker", broker, "-n", fmt.Sprint(n),
			"--download-time", "50ms", "--install-time", "50ms", "--reboot-time", "50ms", "--progress-interval", "100ms"}, args...)...)
	}()
	waitUntil("every device online", func() bool {
		count := 0
		for _, up := range online {
			if up {
				count++
			}
		}
		return count == n
	})
	payload, err := protocol.MarshalNotice(&protocol.Notice{
		Action: protocol.ActionUpdate, Rollout: protocol.RolloutRef{Namespace: "default", Name: "r", UID: "uid-1"},
		TargetVersion: "2.0.0", Models: []string{"th-sensor"}, Artifacts: []protocol.Artifact{{URL: "https://fw.invalid/fw.bin"}},
		SHA256: strings.Repeat("0", 64), Size: 1, IssuedAt: time.Now(),
	})
	if err != nil {
		t.Fatal(err)
	}
	for cohort := range protocol.Cohorts {
		if err := c.Publish(ctx, &mqtt.Message{Topic: topics.GroupNotice("th-sensor", cohort), Payload: payload, QoS: 1, Retain: true}); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil("every device's outcome", func() bool {
		count := 0
		for _, s := range statuses {
			if s.State.Terminal() {
				count++
			}
		}
		return count == n
	})
	stop() // as SIGINT would

	<-done
	if simErr != nil {
		t.Fatalf("fleetsim: %v\n%s", simErr, out)
	}
	mu.Lock()
	defer mu.Unlock()
	return out, statuses
}
