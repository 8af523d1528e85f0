package fleet

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
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

// settleQuiet is how long the retained replay must stay quiet after
// SUBACK before the state counts as synced.
const settleQuiet = 500 * time.Millisecond

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
		},
		OnConnectionLost: func(_ *mqtt.Client, err error) {
			s.syncedAt.Store(0)
			s.setConnected(false, err)
		},
	})
	s.wg.Add(2)
	go s.run(ctx)
	go s.notifyLoop(ctx, eventInterval)
}

// run makes the first connection (retrying with backoff) and subscribes.
// Later reconnects and resubscriptions are the client's job.
func (s *Session) run(ctx context.Context) {
	defer s.wg.Done()
	backoff := mqtt.Backoff{Min: 500 * time.Millisecond, Max: 30 * time.Second}
	for attempt := 0; ; attempt++ {
		err := s.client.Connect(ctx)
		if err == nil {
			break
		}
		s.setConnected(false, err)
		t := time.NewTimer(backoff.Delay(attempt))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
	for attempt := 0; ; attempt++ {
		err := s.client.Subscribe(ctx, nil,
			mqtt.Subscription{Filter: s.Topics.AllPresence(), QoS: mqtt.AtLeastOnce},
			mqtt.Subscription{Filter: s.Topics.AllInventory(), QoS: mqtt.AtLeastOnce},
			mqtt.Subscription{Filter: s.Topics.AllStatus(), QoS: mqtt.AtLeastOnce},
			mqtt.Subscription{Filter: s.Topics.AllDeviceNotices(), QoS: mqtt.AtLeastOnce},
			mqtt.Subscription{Filter: s.Topics.AllGroupNotices(), QoS: mqtt.AtLeastOnce},
		)
		if err == nil {
			break
		}
		s.setConnected(s.client.IsConnected(), fmt.Errorf("subscribe: %w", err))
		t := time.NewTimer(backoff.Delay(attempt))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
	s.lastMsg.Store(time.Now().UnixNano())
	s.awaitSettled(ctx)
}

// awaitSettled marks the state synced once the retained replay has been
// quiet for settleQuiet: MQTT does not say when a replay ends.
func (s *Session) awaitSettled(ctx context.Context) {
	t := time.NewTicker(settleQuiet / 5)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if !s.connected.Load() {
				continue
			}
			if now.UnixNano()-s.lastMsg.Load() >= settleQuiet.Nanoseconds() {
				s.syncedAt.Store(now.UnixNano())
				s.changed()
				return
			}
		}
	}
}

func (s *Session) handle(m *mqtt.Message) {
	s.lastMsg.Store(time.Now().UnixNano())
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
}
