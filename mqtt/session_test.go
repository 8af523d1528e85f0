package mqtt_test

import (
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/heraldiot/herald/internal/testenv"
	"github.com/heraldiot/herald/mqtt"
)

// TestSessionResumeAcrossBrokerRestart streams QoS 1 and QoS 2 messages
// between two clients while the broker (with persistence) restarts, and
// checks that nothing is lost, QoS 2 is not duplicated and order is kept.
func TestSessionResumeAcrossBrokerRestart(t *testing.T) {
	for _, v := range versions {
		for _, qos := range []mqtt.QoS{mqtt.AtLeastOnce, mqtt.ExactlyOnce} {
			t.Run(fmt.Sprintf("v%s/qos%d", v, qos), func(t *testing.T) {
				testSessionResume(t, v, qos)
			})
		}
	}
}

func testSessionResume(t *testing.T, v mqtt.Version, qos mqtt.QoS) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{Persistence: true})
	ctx := testContext(t)
	session := func(id string) mqtt.Options {
		return mqtt.Options{
			// Clean Start stays off: mosquitto 2.0.11 does not restore,
			// after a restart, a v5 session that began with Clean Start
			// (eclipse-mosquitto/mosquitto#2265).
			Version: v, ClientID: id, SessionExpiry: time.Hour,
			Backoff: mqtt.Backoff{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond},
		}
	}
	got := newCollector()
	sub := dial(t, b, session("resume-sub"))
	if err := sub.Subscribe(ctx, got.handle, mqtt.Subscription{Filter: "stream", QoS: qos}); err != nil {
		t.Fatal(err)
	}
	pub := dial(t, b, session("resume-pub"))

	const total, restartAt = 300, 100
	var (
		pubErr error
		wg     sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range total {
			if err := pub.Publish(ctx, &mqtt.Message{Topic: "stream", QoS: qos, Payload: strconv.AppendInt(nil, int64(i), 10)}); err != nil {
				pubErr = fmt.Errorf("publish %d: %w", i, err)
				return
			}
		}
	}()

	seen := make(map[int]int)
	var order []int
	restarts := 0
	for len(seen) < total {
		var m *mqtt.Message
		select {
		case m = <-got.ch:
		case <-time.After(10 * time.Second):
			t.Fatalf("after %d of %d messages, nothing for 10s; subscriber session present %v, publisher %v",
				len(seen), total, sub.ServerInfo().SessionPresent, pub.ServerInfo().SessionPresent)
		}
		i, err := strconv.Atoi(string(m.Payload))
		if err != nil {
			t.Fatalf("payload %q", m.Payload)
		}
		if seen[i] == 0 {
			order = append(order, i)
		}
		seen[i]++
		if len(seen) == restartAt && restarts == 0 {
			restarts++
			if err := b.Stop(); err != nil {
				t.Fatal(err)
			}
			if err := b.Start(); err != nil {
				t.Fatal(err)
			}
		}
	}
	wg.Wait()
	if pubErr != nil {
		t.Fatal(pubErr)
	}
	for i, n := range order {
		if n != i {
			t.Fatalf("first deliveries out of order at %d: got %d", i, n)
		}
	}
	dups := 0
	for _, n := range seen {
		dups += n - 1
	}
	if qos == mqtt.ExactlyOnce && dups > 0 {
		t.Fatalf("QoS 2: %d duplicates", dups)
	}
	for _, c := range []*mqtt.Client{pub, sub} {
		if c.Stats().Reconnects == 0 {
			t.Fatalf("%s never reconnected: the restart was not exercised", c.ClientID())
		}
		if !c.ServerInfo().SessionPresent {
			t.Fatalf("%s: the broker did not keep the session, so resuming was not exercised", c.ClientID())
		}
	}
	t.Logf("v%s QoS %d: %d messages, 0 lost, %d duplicates, publisher reconnects %d", v, qos, total, dups, pub.Stats().Reconnects)
}

// TestResubscribeBeforeResend: when the server lost the session, the
// client must renew its subscriptions before it resends the publishes in
// flight, or the server routes them before the subscriptions exist and a
// client subscribed to its own topic never gets its message.
func TestResubscribeBeforeResend(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	proxy := testenv.StartProxy(t, b.Addr)
	ctx := testContext(t)
	got := newCollector()
	lost := make(chan error, 1)
	// Session expiry 0: the broker forgets the session with the connection.
	c := dial(t, b, mqtt.Options{ClientID: "own-topic", Servers: []string{proxy.URL()}, KeepAlive: time.Second,
		Backoff:          mqtt.Backoff{Min: 10 * time.Millisecond, Max: 50 * time.Millisecond},
		OnConnectionLost: func(_ *mqtt.Client, err error) { lost <- err }})
	if err := c.Subscribe(ctx, got.handle, mqtt.Subscription{Filter: "own/topic", QoS: mqtt.AtLeastOnce}); err != nil {
		t.Fatal(err)
	}
	proxy.Blackhole()
	published := make(chan error, 1)
	go func() {
		// Goes into the dead link; resent after the reconnect.
		published <- c.Publish(ctx, &mqtt.Message{Topic: "own/topic", QoS: mqtt.AtLeastOnce, Payload: []byte("mine")})
	}()
	<-lost
	proxy.Restore()
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	if m := got.next(t); string(m.Payload) != "mine" {
		t.Fatalf("got %q", m.Payload)
	}
}
