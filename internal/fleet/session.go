package fleet

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"

	"github.com/heraldiot/herald/mqtt"
	"github.com/heraldiot/herald/protocol"
)

// Config is how a session reaches a fleet's broker.
type Config struct {
	URLs      []string
	Version   mqtt.Version
	ClientID  string
	KeepAlive time.Duration
	Username  string
	Password  []byte
	TLS       *tls.Config
	TopicRoot string
	// TLSFingerprint identifies the TLS material, which *tls.Config cannot
	// be compared by; a change restarts the session.
	TLSFingerprint string
}

// fingerprint identifies a configuration without holding the password.
func (c *Config) fingerprint() string {
	h := sha256.New()
	fmt.Fprintf(h, "%q|%d|%s|%s|%s|%s|%s|", c.URLs, c.Version, c.ClientID, c.KeepAlive, c.Username, c.TopicRoot, c.TLSFingerprint)
	h.Write(c.Password)
	return hex.EncodeToString(h.Sum(nil))
}

// The state counts as synced when the sync marker, published after the
// subscriptions, comes back: brokers deliver a subscription's retained
// messages before anything published later. Should the marker never come
// (an ACL may forbid it), a replay quiet for fallbackQuiet, at least
// fallbackAfter after subscribing, is taken as complete.
const (
	fallbackQuiet = 2 * time.Second
	fallbackAfter = 10 * time.Second
)

// Session is a fleet's MQTT connection and the state it feeds.
type Session struct {
	Topics protocol.Topics
	State  *State

	key         types.NamespacedName
	hooks       Hooks
	cfg         Config
	fingerprint string
	client      *mqtt.Client
	log         logr.Logger
	changed     func()

	connected atomic.Bool
	syncedAt  atomic.Int64 // unix nanoseconds; 0 until the replay settled
	lastMsg   atomic.Int64
	dirty     atomic.Bool
	syncTopic string
	syncNonce atomic.Int64 // the marker awaited; 0 when none

	mu      sync.Mutex
	lastErr error

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newSession(key types.NamespacedName, cfg Config, hooks Hooks, log logr.Logger, changed func()) (*Session, error) {
	topics, err := protocol.NewTopics(cfg.TopicRoot)
	if err != nil {
		return nil, err
	}
	return &Session{
		syncTopic:   topics.Root() + "/_herald/sync/" + cfg.ClientID,
		key:         key,
		hooks:       hooks,
		Topics:      topics,
		State:       NewState(),
		cfg:         cfg,
		fingerprint: cfg.fingerprint(),
		log:         log,
		changed:     changed,
	}, nil
}

// start connects in the background and keeps trying until stop.
func (s *Session) start(eventInterval time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.client = mqtt.New(mqtt.Options{
		Servers:    s.cfg.URLs,
		Version:    s.cfg.Version,
		ClientID:   s.cfg.ClientID,
		CleanStart: true, // the broker's retained messages are the state; no session needed
		KeepAlive:  s.cfg.KeepAlive,
		Username:   s.cfg.Username,
		Password:   s.cfg.Password,
		TLSConfig:  s.cfg.TLS,
		Logger:     s.log.WithName("mqtt"),
		Backoff:    mqtt.Backoff{Min: 200 * time.Millisecond, Max: 30 * time.Second},
		// Retained replay of a large fleet arrives in a burst.
		HandlerQueue:   8192,
		DefaultHandler: s.handle,
		OnConnect: func(*mqtt.Client, *mqtt.Connack) {
			s.setConnected(true, nil)
			// A reconnect replays the retained messages again (the client
			// resubscribed before calling us); mark the end of that replay.
			if s.syncNonce.Load() != 0 || s.syncedAt.Load() != 0 {
				go s.sync(ctx)
			}
		},
		OnConnectionLost: func(_ *mqtt.Client, err error) {
			s.syncedAt.Store(0)
			s.setConnected(false, err)
		},
	})
	if s.hooks.Client != nil {
		s.hooks.Client(s.key, s.client, true)
	}
	s.wg.Add(2)
	go s.run(ctx)
	go s.notifyLoop(ctx, eventInterval)
}

// run makes the first connection (retrying with backoff) and subscribes.
// Later reconnects and resubscriptions are the client's job.
func (s *Session) run(ctx context.Context) {
	defer s.wg.Done()
	connect := func() error {
		err := s.client.Connect(ctx)
		if err != nil {
			s.setConnected(false, err)
		}
		return err
	}
	subscribe := func() error {
		// QoS 0 on purpose: every device topic is retained, so a message
		// lost with a connection comes back in the replay after the
		// reconnect, and brokers cap queued QoS 1 messages per client
		// (mosquitto: max_queued_messages 1000), which would cut the
		// replay of a large fleet short.
		err := s.client.Subscribe(ctx, nil,
			mqtt.Subscription{Filter: s.Topics.AllPresence()},
			mqtt.Subscription{Filter: s.Topics.AllInventory()},
			mqtt.Subscription{Filter: s.Topics.AllStatus()},
			mqtt.Subscription{Filter: s.Topics.AllDeviceNotices()},
			mqtt.Subscription{Filter: s.Topics.AllGroupNotices()},
			mqtt.Subscription{Filter: s.syncTopic},
		)
		if err != nil {
			s.setConnected(s.client.IsConnected(), fmt.Errorf("subscribe: %w", err))
		}
		return err
	}
	if retry(ctx, connect) && retry(ctx, subscribe) {
		s.sync(ctx)
	}
}

// retry calls fn with backoff until it succeeds (true) or ctx ends (false).
func retry(ctx context.Context, fn func() error) bool {
	backoff := mqtt.Backoff{Min: 500 * time.Millisecond, Max: 30 * time.Second}
	for attempt := 0; ; attempt++ {
		if fn() == nil {
			return true
		}
		t := time.NewTimer(backoff.Delay(attempt))
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
	}
}

// sync publishes a fresh marker and waits for the replay to end.
func (s *Session) sync(ctx context.Context) {
	nonce := time.Now().UnixNano()
	s.syncedAt.Store(0)
	s.syncNonce.Store(nonce)
	subscribed := time.Now()
	s.lastMsg.Store(subscribed.UnixNano())
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := s.client.Publish(pctx, &mqtt.Message{Topic: s.syncTopic, Payload: []byte(fmt.Sprint(nonce))})
	cancel()
	if err != nil {
		s.log.Info("could not publish the sync marker; falling back to a quiet period", "error", err.Error())
	}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if s.syncNonce.Load() != nonce {
				return // a newer sync took over, or the marker arrived
			}
			quiet := now.UnixNano()-s.lastMsg.Load() >= fallbackQuiet.Nanoseconds()
			if s.connected.Load() && quiet && now.Sub(subscribed) >= fallbackAfter {
				s.markSynced(nonce)
				return
			}
		}
	}
}

func (s *Session) markSynced(nonce int64) {
	if s.syncNonce.CompareAndSwap(nonce, 0) {
		s.syncedAt.Store(time.Now().UnixNano())
		s.changed()
	}
}

func (s *Session) handle(m *mqtt.Message) {
	s.lastMsg.Store(time.Now().UnixNano())
	if m.Topic == s.syncTopic {
		if nonce, err := strconv.ParseInt(string(m.Payload), 10, 64); err == nil {
			s.markSynced(nonce)
		}
		return
	}
	res := s.State.Apply(s.Topics, m.Topic, m.Payload, time.Now())
	if res.Changed {
		s.dirty.Store(true)
	}
	if s.hooks.Message != nil {
		s.hooks.Message(s.key, res)
	}
}

// notifyLoop turns bursts of device messages into at most one change
// notification per interval, which bounds reconciles and status writes.
func (s *Session) notifyLoop(ctx context.Context, interval time.Duration) {
	defer s.wg.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if s.dirty.Swap(false) {
				s.changed()
			}
		}
	}
}

func (s *Session) setConnected(up bool, err error) {
	s.mu.Lock()
	s.lastErr = err
	s.mu.Unlock()
	if s.connected.Swap(up) != up || err != nil {
		s.changed()
	}
	if s.hooks.Connection != nil {
		s.hooks.Connection(s.key, up)
	}
}

// Connected reports whether the broker connection is up, and the last
// connection error otherwise.
func (s *Session) Connected() (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.connected.Load(), s.lastErr
}

// Synced reports whether the retained replay has completed since the last
// (re)connect, and when.
func (s *Session) Synced() (bool, time.Time) {
	n := s.syncedAt.Load()
	if n == 0 || !s.connected.Load() {
		return false, time.Time{}
	}
	return true, time.Unix(0, n)
}

// Publish sends a QoS 1 message and waits for the broker's acknowledgement.
func (s *Session) Publish(ctx context.Context, m *mqtt.Message) error {
	m.QoS = mqtt.AtLeastOnce
	if s.cfg.Version != mqtt.V5 {
		m.ContentType, m.Expiry, m.UserProperties = "", 0, nil
	}
	return s.client.Publish(ctx, m)
}

// Version is the protocol version the session speaks.
func (s *Session) Version() mqtt.Version { return s.cfg.Version }

func (s *Session) stop() {
	if s.hooks.Connection != nil {
		defer s.hooks.Connection(s.key, false)
	}
	s.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.client.Disconnect(ctx)
	s.wg.Wait()
	if s.hooks.Client != nil {
		s.hooks.Client(s.key, s.client, false)
	}
}
