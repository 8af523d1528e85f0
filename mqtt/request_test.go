package mqtt_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/heraldiot/herald/internal/testenv"
	"github.com/heraldiot/herald/mqtt"
)

// TestRequestResponse runs concurrent requests through mosquitto to a
// responder that doubles numbers: every request must get its own answer.
func TestRequestResponse(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	ctx := testContext(t)
	responder := dial(t, b, mqtt.Options{ClientID: "responder"})
	err := responder.Subscribe(ctx, func(req *mqtt.Message) {
		n, _ := strconv.Atoi(string(req.Payload))
		if err := responder.Respond(ctx, req, &mqtt.Message{QoS: mqtt.AtLeastOnce, Payload: []byte(strconv.Itoa(2 * n))}); err != nil {
			t.Errorf("respond: %v", err)
		}
	}, mqtt.Subscription{Filter: "svc/double", QoS: mqtt.AtLeastOnce})
	if err != nil {
		t.Fatal(err)
	}

	c := dial(t, b, mqtt.Options{ClientID: "requester"})
	r, err := mqtt.NewRequester(ctx, c, "")
	if err != nil {
		t.Fatal(err)
	}
	const n = 50
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := r.Request(ctx, &mqtt.Message{Topic: "svc/double", QoS: mqtt.AtLeastOnce, Payload: []byte(strconv.Itoa(i))})
			if err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			if got := string(resp.Payload); got != strconv.Itoa(2*i) {
				t.Errorf("request %d answered %q", i, got)
			}
		}()
	}
	wg.Wait()
	if u := r.Unmatched(); u != 0 {
		t.Fatalf("%d unmatched responses", u)
	}
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Request(ctx, &mqtt.Message{Topic: "svc/double"}); !errors.Is(err, mqtt.ErrRequesterClosed) {
		t.Fatalf("request after close: %v", err)
	}
}

// TestRequestTimeoutAndLateResponse: a request nobody answers in time
// fails with the context's error, and the late answer is dropped, counted.
func TestRequestTimeoutAndLateResponse(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	ctx := testContext(t)
	held := make(chan *mqtt.Message, 1)
	responder := dial(t, b, mqtt.Options{ClientID: "slow"})
	if err := responder.Subscribe(ctx, func(m *mqtt.Message) { held <- m }, mqtt.Subscription{Filter: "svc/slow"}); err != nil {
		t.Fatal(err)
	}
	c := dial(t, b, mqtt.Options{ClientID: "impatient"})
	r, err := mqtt.NewRequester(ctx, c, "replies/impatient")
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := r.Request(short, &mqtt.Message{Topic: "svc/slow"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("request: %v, want deadline exceeded", err)
	}
	req := <-held
	if req.ResponseTopic != "replies/impatient" || len(req.CorrelationData) == 0 {
		t.Fatalf("request carried response topic %q and correlation data %x", req.ResponseTopic, req.CorrelationData)
	}
	if err := responder.Respond(ctx, req, &mqtt.Message{QoS: mqtt.AtLeastOnce, Payload: []byte("late")}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for r.Unmatched() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if u := r.Unmatched(); u != 1 {
		t.Fatalf("%d unmatched responses, want the late one", u)
	}
}

func TestRequestNeedsV5(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	c := dial(t, b, mqtt.Options{Version: mqtt.V311, ClientID: "old"})
	if _, err := mqtt.NewRequester(testContext(t), c, ""); err == nil {
		t.Fatal("a 3.1.1 client made a requester")
	}
}
