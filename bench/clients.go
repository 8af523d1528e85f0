package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.golang/paho"
	pahov3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/heraldiot/herald/mqtt"
	"github.com/heraldiot/herald/mqtt/packet"
)

// runConfig is one client process's assignment.
type runConfig struct {
	client    string
	version   packet.Version
	qos       byte
	n         int
	size      int    // payload bytes
	window    int    // QoS 1 publishes in flight at most
	addr      string // broker host:port
	topic     string
	clientID  string
	keepAlive time.Duration
	// pahoAsync publishes with paho.golang's AsyncSend instead of from
	// window goroutines calling the blocking Publish.
	pahoAsync bool
}

func (c *runConfig) payload() []byte { return bytes.Repeat([]byte{0x5A}, c.size) }

// publisher is one connected client under test.
type publisher interface {
	// publish sends n messages and returns when the library has taken
	// every one (QoS 0) or every PUBACK has arrived (QoS 1).
	publish(n int) error
	// fence publishes one QoS 1 message and waits for its PUBACK. After
	// QoS 0 publishes on the same connection it proves the broker has
	// handled all of them: mosquitto processes a connection's packets in
	// order and answers the fence only after those before it.
	fence() error
	// echo subscribes to the client's topic at QoS 1, publishes one QoS 1
	// message to it and waits until the message comes back: the idle test
	// measures clients that have used both directions, as a device has.
	echo(ctx context.Context) error
	close() error
}

// preparer is a publisher with work to do before the clock starts.
type preparer interface {
	prepare(n int) error
}

// library is a client under test and the protocol versions it speaks.
type library struct {
	name     string
	versions []packet.Version
	dial     func(ctx context.Context, cfg *runConfig) (publisher, error)
	// idle says whether the library takes part in the idle-memory test;
	// the raw limit has no keepalive and no state to measure.
	idle bool
}

const (
	clientRaw    = "raw"
	clientHerald = "herald"
	clientPaho   = "paho.golang"
	clientPahoV3 = "paho.mqtt.golang"
	// clientKeepAlive is every client's keepalive, in the throughput runs too.
	clientKeepAlive = 60 * time.Second
)

var libraries = []library{
	{name: clientRaw, versions: []packet.Version{packet.V5, packet.V311}, dial: dialRawPublisher},
	{name: clientHerald, versions: []packet.Version{packet.V5, packet.V311}, dial: dialHerald, idle: true},
	{name: clientPaho, versions: []packet.Version{packet.V5}, dial: dialPaho, idle: true},
	{name: clientPahoV3, versions: []packet.Version{packet.V311}, dial: dialPahoV3, idle: true},
}

func findLibrary(name string) (*library, error) {
	for i := range libraries {
		if libraries[i].name == name {
			return &libraries[i], nil
		}
	}
	return nil, fmt.Errorf("unknown client %q", name)
}

// parallel runs n publishes from workers goroutines, which is how a library
// whose Publish waits for the PUBACK is pipelined. newWorker returns one
// goroutine's publish call, so each can keep its own message.
func parallel(n, workers int, newWorker func() func() error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := range workers {
		publish := newWorker()
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				if err := publish(); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// heraldPublisher is Herald's mqtt.Client.
type heraldPublisher struct {
	c   *mqtt.Client
	cfg *runConfig
}

func dialHerald(ctx context.Context, cfg *runConfig) (publisher, error) {
	c, err := mqtt.Dial(ctx, mqtt.Options{
		Servers:              []string{"tcp://" + cfg.addr},
		Version:              cfg.version,
		ClientID:             cfg.clientID,
		CleanStart:           true,
		KeepAlive:            cfg.keepAlive,
		DisableAutoReconnect: true,
	})
	if err != nil {
		return nil, err
	}
	return &heraldPublisher{c: c, cfg: cfg}, nil
}

func (h *heraldPublisher) publish(n int) error {
	ctx := context.Background()
	payload := h.cfg.payload()
	if h.cfg.qos == 0 {
		m := &mqtt.Message{Topic: h.cfg.topic, Payload: payload}
		for range n {
			if err := h.c.Publish(ctx, m); err != nil {
				return err
			}
		}
		return nil
	}
	// Herald enforces the server's Receive Maximum itself; under 3.1.1
	// the number of publishers is the window.
	return parallel(n, h.cfg.window, func() func() error {
		m := &mqtt.Message{Topic: h.cfg.topic, Payload: payload, QoS: mqtt.QoS(h.cfg.qos)}
		return func() error { return h.c.Publish(ctx, m) }
	})
}

func (h *heraldPublisher) fence() error {
	return h.c.Publish(context.Background(), &mqtt.Message{Topic: h.cfg.topic, Payload: h.cfg.payload(), QoS: mqtt.AtLeastOnce})
}

func (h *heraldPublisher) echo(ctx context.Context) error {
	got := make(chan struct{}, 1)
	err := h.c.Subscribe(ctx, func(*mqtt.Message) { notify(got) }, mqtt.Subscription{Filter: h.cfg.topic, QoS: mqtt.AtLeastOnce})
	if err != nil {
		return err
	}
	if err := h.c.Publish(ctx, &mqtt.Message{Topic: h.cfg.topic, QoS: mqtt.AtLeastOnce, Payload: h.cfg.payload()}); err != nil {
		return err
	}
	return awaitEcho(ctx, got)
}

// notify tells an echo its message arrived; a copy the broker delivers
// again finds the signal already given.
func notify(got chan<- struct{}) {
	select {
	case got <- struct{}{}:
	default:
	}
}

// awaitEcho waits for the message an echo published.
func awaitEcho(ctx context.Context, got <-chan struct{}) error {
	select {
	case <-got:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("echo: %w", ctx.Err())
	}
}

func (h *heraldPublisher) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return h.c.Disconnect(ctx)
}

// pahoPublisher is paho.golang's paho.Client, the v5 client of the Eclipse
// project, on a connection we dial. autopaho wraps the same Publish in a
// reconnecting manager, which adds work and no speed.
type pahoPublisher struct {
	c   *paho.Client
	cfg *runConfig
}

func dialPaho(ctx context.Context, cfg *runConfig) (publisher, error) {
	if cfg.version != packet.V5 {
		return nil, errors.New("paho.golang speaks MQTT 5.0 only")
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", cfg.addr)
	if err != nil {
		return nil, err
	}
	c := paho.NewClient(paho.ClientConfig{Conn: nc})
	ack, err := c.Connect(ctx, &paho.Connect{
		ClientID:   cfg.clientID,
		CleanStart: true,
		KeepAlive:  uint16(cfg.keepAlive / time.Second),
	})
	if err != nil {
		nc.Close()
		return nil, err
	}
	if ack.ReasonCode != 0 {
		nc.Close()
		return nil, fmt.Errorf("connect refused: reason code 0x%02X", ack.ReasonCode)
	}
	return &pahoPublisher{c: c, cfg: cfg}, nil
}

func (p *pahoPublisher) publish(n int) error {
	ctx := context.Background()
	payload := p.cfg.payload()
	msg := func() *paho.Publish {
		return &paho.Publish{Topic: p.cfg.topic, QoS: p.cfg.qos, Payload: payload}
	}
	if p.cfg.qos == 0 {
		m := msg()
		for range n {
			if _, err := p.c.Publish(ctx, m); err != nil {
				return err
			}
		}
		return nil
	}
	if p.cfg.pahoAsync {
		// AsyncSend returns once the message is in the session (waiting
		// for a Receive Maximum slot) and written; it reports no result.
		// The last publish blocks: mosquitto acknowledges a connection's
		// messages in order and paho reads them in order, so its PUBACK
		// arrives after all the others.
		m := msg()
		for range n - 1 {
			if _, err := p.c.PublishWithOptions(ctx, m, paho.PublishOptions{Method: paho.PublishMethod_AsyncSend}); err != nil {
				return err
			}
		}
		_, err := p.c.Publish(ctx, m)
		return err
	}
	return parallel(n, p.cfg.window, func() func() error {
		m := msg()
		return func() error {
			_, err := p.c.Publish(ctx, m)
			return err
		}
	})
}

func (p *pahoPublisher) fence() error {
	_, err := p.c.Publish(context.Background(), &paho.Publish{Topic: p.cfg.topic, QoS: 1, Payload: p.cfg.payload()})
	return err
}

func (p *pahoPublisher) echo(ctx context.Context) error {
	got := make(chan struct{}, 1)
	p.c.AddOnPublishReceived(func(paho.PublishReceived) (bool, error) {
		notify(got)
		return true, nil
	})
	if _, err := p.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: p.cfg.topic, QoS: 1}}}); err != nil {
		return err
	}
	if _, err := p.c.Publish(ctx, &paho.Publish{Topic: p.cfg.topic, QoS: 1, Payload: p.cfg.payload()}); err != nil {
		return err
	}
	return awaitEcho(ctx, got)
}

func (p *pahoPublisher) close() error {
	err := p.c.Disconnect(&paho.Disconnect{ReasonCode: 0})
	select {
	case <-p.c.Done():
	case <-time.After(10 * time.Second):
		err = errors.Join(err, errors.New("paho.golang did not shut down within 10s"))
	}
	return err
}

// pahoV3Publisher is paho.mqtt.golang, the Eclipse project's 3.1.1 client.
type pahoV3Publisher struct {
	c   pahov3.Client
	cfg *runConfig
}

func dialPahoV3(ctx context.Context, cfg *runConfig) (publisher, error) {
	if cfg.version != packet.V311 {
		return nil, errors.New("paho.mqtt.golang speaks MQTT 3.1.1 only here")
	}
	opts := pahov3.NewClientOptions().
		AddBroker("tcp://" + cfg.addr).
		SetClientID(cfg.clientID).
		SetProtocolVersion(4).
		SetCleanSession(true).
		SetKeepAlive(cfg.keepAlive).
		SetAutoReconnect(false).
		SetConnectRetry(false)
	if dl, ok := ctx.Deadline(); ok {
		opts.SetConnectTimeout(time.Until(dl))
	}
	c := pahov3.NewClient(opts)
	tok := c.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	return &pahoV3Publisher{c: c, cfg: cfg}, nil
}

// publish uses paho.mqtt.golang's asynchronous API, its natural way to
// pipeline: Publish returns a token at once. For QoS 1 the window bounds
// the tokens outstanding, since 3.1.1 gives the client no Receive Maximum.
func (p *pahoV3Publisher) publish(n int) error {
	payload := p.cfg.payload()
	if p.cfg.qos == 0 {
		var last pahov3.Token
		for range n {
			last = p.c.Publish(p.cfg.topic, 0, false, payload)
		}
		last.Wait()
		return last.Error()
	}
	slots := make(chan struct{}, p.cfg.window)
	tokens := make(chan pahov3.Token, p.cfg.window)
	failed := make(chan error, 1)
	go func() {
		var err error
		for tok := range tokens {
			tok.Wait()
			if err == nil {
				err = tok.Error()
			}
			<-slots
		}
		failed <- err
	}()
	for range n {
		slots <- struct{}{}
		tokens <- p.c.Publish(p.cfg.topic, p.cfg.qos, false, payload)
	}
	close(tokens)
	return <-failed
}

func (p *pahoV3Publisher) fence() error {
	tok := p.c.Publish(p.cfg.topic, 1, false, p.cfg.payload())
	tok.Wait()
	return tok.Error()
}

func (p *pahoV3Publisher) echo(ctx context.Context) error {
	got := make(chan struct{}, 1)
	tok := p.c.Subscribe(p.cfg.topic, 1, func(pahov3.Client, pahov3.Message) { notify(got) })
	if err := waitToken(ctx, tok); err != nil {
		return err
	}
	if err := waitToken(ctx, p.c.Publish(p.cfg.topic, 1, false, p.cfg.payload())); err != nil {
		return err
	}
	return awaitEcho(ctx, got)
}

func waitToken(ctx context.Context, tok pahov3.Token) error {
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *pahoV3Publisher) close() error {
	p.c.Disconnect(250)
	return nil
}

// clientID names one client of a run so that no two sessions collide.
func clientID(lib string, v packet.Version, i int) string {
	return "bench-" + lib + "-" + v.String() + "-" + strconv.Itoa(i)
}
