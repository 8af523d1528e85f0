package mqtt

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// ErrRequesterClosed is returned by Request after Close.
var ErrRequesterClosed = errors.New("mqtt: requester closed")

// Requester makes request/response exchanges over MQTT 5.0 (section 4.10):
// each request carries a Response Topic the Requester subscribes to and
// Correlation Data that pairs the response with its request, so any number
// of requests may be outstanding at once. A responder answers with
// Client.Respond.
type Requester struct {
	c     *Client
	topic string

	prefix [8]byte // random, so responses meant for an earlier requester on the topic do not match
	seq    atomic.Uint64

	mu      sync.Mutex
	waiting map[string]chan *Message
	closed  bool

	unmatched atomic.Uint64
}

// NewRequester subscribes to responseTopic at QoS 1 and returns a
// Requester receiving responses there. An empty responseTopic becomes
// "responses/<client ID>/<random>", or, when the server granted Response
// Information (Options.RequestResponseInfo), that prefix followed by
// "/<random>", which is how a server tells clients where they may
// receive responses.
func NewRequester(ctx context.Context, c *Client, responseTopic string) (*Requester, error) {
	if c.opts.Version != V5 {
		return nil, errors.New("mqtt: request/response needs MQTT 5.0")
	}
	r := &Requester{c: c, waiting: make(map[string]chan *Message)}
	_, _ = rand.Read(r.prefix[:]) // never fails since Go 1.24
	if responseTopic == "" {
		base := "responses/" + c.ClientID()
		if info := c.ServerInfo(); info != nil && info.ResponseInformation != "" {
			base = info.ResponseInformation
		}
		responseTopic = base + "/" + hex.EncodeToString(r.prefix[:4])
	}
	r.topic = responseTopic
	if err := c.Subscribe(ctx, r.deliver, Subscription{Filter: responseTopic, QoS: AtLeastOnce}); err != nil {
		return nil, fmt.Errorf("subscribe to response topic %q: %w", responseTopic, err)
	}
	return r, nil
}

// ResponseTopic is the topic responses arrive on.
func (r *Requester) ResponseTopic() string { return r.topic }

// Request publishes req with this Requester's response topic and fresh
// correlation data (req itself is not changed) and returns the response,
// or ctx's error if none comes first. A response arriving after that is
// dropped and counted in Unmatched.
func (r *Requester) Request(ctx context.Context, req *Message) (*Message, error) {
	corr := make([]byte, 16)
	copy(corr, r.prefix[:])
	binary.BigEndian.PutUint64(corr[8:], r.seq.Add(1))
	key := string(corr)
	ch := make(chan *Message, 1)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, ErrRequesterClosed
	}
	r.waiting[key] = ch
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.waiting, key)
		r.mu.Unlock()
	}()

	m := *req
	m.ResponseTopic, m.CorrelationData = r.topic, corr
	if err := r.c.Publish(ctx, &m); err != nil {
		return nil, fmt.Errorf("request to %q: %w", req.Topic, err)
	}
	select {
	case resp := <-ch:
		return resp, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("request to %q: no response: %w", req.Topic, ctx.Err())
	}
}

// deliver hands a response to the request waiting for it. A response is
// the requester's to acknowledge, even under Options.ManualAck: the caller
// of Request never sees it until it is here.
func (r *Requester) deliver(m *Message) {
	_ = m.Ack() // QoS 1: nothing to fail
	r.mu.Lock()
	ch, ok := r.waiting[string(m.CorrelationData)]
	delete(r.waiting, string(m.CorrelationData))
	r.mu.Unlock()
	if !ok {
		r.unmatched.Add(1)
		return
	}
	ch <- m
}

// Unmatched counts responses that matched no waiting request: late ones
// whose request gave up, duplicates, or strangers.
func (r *Requester) Unmatched() uint64 { return r.unmatched.Load() }

// Close unsubscribes from the response topic; waiting requests run on
// until their contexts end.
func (r *Requester) Close(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	return r.c.Unsubscribe(ctx, r.topic)
}

// Respond publishes resp as the response to req: on req's Response Topic,
// with its Correlation Data. resp's own topic and correlation data are
// ignored, and resp is not changed.
func (c *Client) Respond(ctx context.Context, req, resp *Message) error {
	if req.ResponseTopic == "" {
		return errors.New("mqtt: the request has no response topic")
	}
	m := *resp
	m.Topic, m.CorrelationData = req.ResponseTopic, req.CorrelationData
	return c.Publish(ctx, &m)
}
