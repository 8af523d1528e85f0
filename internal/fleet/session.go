package fleet

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
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
	// MaxDevices caps the devices the session tracks (0: DefaultMaxDevices).
	MaxDevices int
	// ResyncInterval is how often the state is rebuilt from the retained
	// messages while connected, to repair anything the live stream lost
	// (0: only on connect).
	ResyncInterval time.Duration
}

// fingerprint identifies a configuration without holding the password.
func (c *Config) fingerprint() string {
	h := sha256.New()
	fmt.Fprintf(h, "%q|%d|%s|%s|%s|%s|%s|%d|%s|", c.URLs, c.Version, c.ClientID, c.KeepAlive, c.Username, c.TopicRoot, c.TLSFingerprint, c.MaxDevices, c.ResyncInterval)
	h.Write(c.Password)
	return hex.EncodeToString(h.Sum(nil))
}

const (
	// replayQuiet is how long a replay may go without a message, with
	// nothing waiting for the handler, before it counts as ended. A replay
	// that ends without its end marker was cut short by the broker.
	replayQuiet = 5 * time.Second
	// receiveMaximum is the session's window of unacknowledged QoS 1
	// messages, and its handler queue. It bounds the memory the stream
	// can take (receiveMaximum × maxPacketSize in the worst case), and
	// with the broker's own queue (mosquitto: max_queued_messages) it is
	// what a retained replay must fit in; see docs/operator.md.
	receiveMaximum = 4096
	// maxPacketSize is the largest packet the fleet's topics can carry:
	// the protocol's largest payload, a topic, and properties.
	maxPacketSize = protocol.MaxPayloadSize + 4096
	// malformedLogInterval rate-limits the log line for malformed messages.
	malformedLogInterval = 5 * time.Second
	// overrunMargin: a handler queue this close to receiveMaximum means
	// the broker may be queueing for Herald beyond the window, and a
	// broker whose queue is full drops messages (mosquitto does).
	overrunMargin = 64
	// overrunResyncSpacing is the least time between two rebuilds that an
	// overrun asks for, so that sustained overload does not turn into
	// back-to-back replays.
	overrunResyncSpacing = time.Minute
)

// Session is a fleet's MQTT connection and the state it feeds.
//
// Every connection starts with a full rebuild: a fresh State is filled
// from the broker's retained messages and replaces the old one when the
// replay is known to be complete. Completeness is proven with two retained
// markers the session publishes before it subscribes, a begin and an end
// marker, subscribed to first and last in one SUBSCRIBE: the broker replays
// a SUBSCRIBE's filters in order, so the end marker arrives after every
// device message, and a broker that drops messages because its queue for
// Herald is full drops the end marker too (the queue cannot drain while
// the broker handles the SUBSCRIBE). A replay that goes quiet without its
// end marker is reported and retried; it is never taken as synced.
type Session struct {
	Topics protocol.Topics

	key         types.NamespacedName
	hooks       Hooks
	cfg         Config
	fingerprint string
	client      *mqtt.Client
	log         logr.Logger
	changed     func()
	beginTopic  string
	endTopic    string

	state atomic.Pointer[State]
	// unobserved keeps a standby's warm session out of the hooks
	// (metrics): only the leader's sessions are counted (observe).
	unobserved    atomic.Bool
	connected     atomic.Bool
	everConnected atomic.Bool
	syncedAt      atomic.Int64 // unix nanoseconds; 0 until this connection's replay completed
	lastMsg       atomic.Int64
	dirty         atomic.Bool
	malformed     atomic.Int64
	repairs       atomic.Int64

	// connects carries "a connection was made" from OnConnect to run;
	// resyncNow asks run for a rebuild while connected.
	connects  chan struct{}
	resyncNow chan struct{}

	// rmu guards replay, which the handler (the client's one dispatcher
	// goroutine) and the sync in run share. Lock order: rmu, then a
	// State's mu.
	rmu    sync.Mutex
	replay replay

	// Owned by the handler goroutine alone.
	malformedLoggedAt time.Time
	malformedUnlogged int
	sinceQueueCheck   int

	// overrun is set when the live stream filled the window: messages may
	// have been dropped by the broker, so a verifying rebuild follows once
	// the stream has drained. lastVerify is when the last one started.
	overrun       atomic.Bool
	lastVerify    atomic.Int64
	resyncSpacing time.Duration
	// throttle, when set, runs before each message is handled (tests: a
	// slow operator); dropLive, when set, drops live messages it names
	// (tests: a broker dropping messages). Set before the stream starts.
	throttle func()
	dropLive func(topic string) bool

	// mu guards these, and orders syncedAt's changes with epoch's.
	mu      sync.Mutex
	lastErr error
	syncErr *SyncError
	epoch   int64 // counts connections made and lost
	// abortAttempt cancels the sync attempt under way: a request in
	// flight when its connection drops would otherwise wait out its
	// whole timeout.
	abortAttempt context.CancelFunc

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// replay is the rebuild under way.
type replay struct {
	// nonce is the marker value awaited; "" when no rebuild runs, so
	// markers of earlier attempts are ignored.
	nonce string
	// verify is set for a rebuild while synced: the current state keeps
	// serving and takes live messages too, and the two are compared.
	verify bool
	// building is the new state, from the begin marker on.
	building *State
	applied  int // messages applied to building
	done     chan struct{}
	// repaired is how many records the rebuild changed (verify only).
	repaired int
}

// SyncError says why a session's state could not be rebuilt. Reason is
// a CamelCase condition reason; Message tells a person what to change.
type SyncError struct {
	Reason, Message string
}

func (e *SyncError) Error() string { return e.Message }

// Reasons of a SyncError.
const (
	ReasonReplayIncomplete = "ReplayIncomplete"
	ReasonSyncRefused      = "SyncRefused"
)

var errConnectionLost = errors.New("connection lost during the replay")

func newSession(key types.NamespacedName, cfg Config, hooks Hooks, log logr.Logger, changed func()) (*Session, error) {
	topics, err := protocol.NewTopics(cfg.TopicRoot)
	if err != nil {
		return nil, err
	}
	markers := topics.Root() + "/_herald/sync/" + cfg.ClientID
	s := &Session{
		Topics:      topics,
		key:         key,
		hooks:       hooks,
		cfg:         cfg,
		fingerprint: cfg.fingerprint(),
		log:         log,
		changed:     changed,
		beginTopic:  markers + "/begin",
		endTopic:    markers + "/end",
		connects:    make(chan struct{}, 1),
		resyncNow:   make(chan struct{}, 1),

		resyncSpacing: overrunResyncSpacing,
	}
	s.state.Store(NewState(s.limits()))
	return s, nil
}

func (s *Session) limits() Limits { return Limits{MaxDevices: s.cfg.MaxDevices} }

// start connects in the background and keeps trying until stop.
func (s *Session) start(eventInterval time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.client = mqtt.New(mqtt.Options{
		Servers: s.cfg.URLs,
		Version: s.cfg.Version,
		// The broker's retained messages are the state, rebuilt at every
		// connect, so no broker session is kept: a session would make the
		// broker queue live traffic for Herald while it is away, which the
		// rebuild replaces anyway.
		ClientID:   s.cfg.ClientID,
		CleanStart: true,
		KeepAlive:  s.cfg.KeepAlive,
		Username:   s.cfg.Username,
		Password:   s.cfg.Password,
		TLSConfig:  s.cfg.TLS,
		Logger:     s.log.WithName("mqtt"),
		Backoff:    mqtt.Backoff{Min: 200 * time.Millisecond, Max: 30 * time.Second},
		// Room above the window for brokers that overshoot it by a few
		// (mosquitto does; see mqtt.Options.StrictReceiveMaximum).
		HandlerQueue:      receiveMaximum + receiveMaximum/8,
		ReceiveMaximum:    receiveMaximum,
		MaximumPacketSize: maxPacketSize,
		// The protocol carries nothing in user properties.
		DiscardUserProperties: true,
		DefaultHandler:        s.handle,
		OnConnect: func(*mqtt.Client, *mqtt.Connack) {
			s.everConnected.Store(true)
			s.newEpoch()
			s.setConnected(true, nil)
			select {
			case s.connects <- struct{}{}:
			default:
			}
		},
		OnConnectionLost: func(_ *mqtt.Client, err error) {
			s.newEpoch()
			s.abortReplay()
			s.setConnected(false, err)
		},
	})
	if s.hooks.Client != nil && !s.unobserved.Load() {
		s.hooks.Client(s.key, s.client, true)
	}
	s.wg.Add(2)
	go s.run(ctx)
	go s.notifyLoop(ctx, eventInterval)
}

// run makes the first connection (the client reconnects by itself after
// that) and rebuilds the state after every connect and every
// ResyncInterval.
func (s *Session) run(ctx context.Context) {
	defer s.wg.Done()
	connect := func() error {
		err := s.client.Connect(ctx)
		if err != nil {
			s.setConnected(false, err)
		}
		return err
	}
	if !retry(ctx, connect) {
		return
	}
	var periodic <-chan time.Time
	if s.cfg.ResyncInterval > 0 {
		t := time.NewTicker(s.cfg.ResyncInterval)
		defer t.Stop()
		periodic = t.C
	}
	for {
		verify := true
		select {
		case <-ctx.Done():
			return
		case <-s.connects:
			verify = false
		case <-periodic:
		case <-s.resyncNow:
		}
		if verify && !s.isSynced() {
			continue // the sync after the connect is still to come
		}
		if verify {
			s.lastVerify.Store(time.Now().UnixNano())
		}
		s.rebuild(ctx, verify)
	}
}

// rebuild retries a replay until one completes, the connection is lost
// (the next connect starts another), or ctx ends.
func (s *Session) rebuild(ctx context.Context, verify bool) {
	// Capped at 15 s, not a minute: on a clustered broker a refused
	// SUBSCRIBE is often transient (NATS refuses about one new QoS 1
	// subscription in three while a node is down; docs/operator.md,
	// "Brokers at scale"), and a retry of a refusal that is not costs
	// one SUBSCRIBE.
	backoff := mqtt.Backoff{Min: time.Second, Max: 15 * time.Second}
	for attempt := 0; ; attempt++ {
		err := s.syncOnce(ctx, verify)
		if err == nil || errors.Is(err, errConnectionLost) || ctx.Err() != nil {
			return
		}
		s.log.Info("rebuilding the fleet from retained messages failed; retrying", "error", err.Error())
		var se *SyncError
		if !errors.As(err, &se) {
			se = &SyncError{Reason: ReasonReplayIncomplete, Message: err.Error()}
		}
		s.mu.Lock()
		s.syncErr = se
		s.mu.Unlock()
		s.changed()
		t := time.NewTimer(backoff.Delay(attempt))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-s.connects:
			// A new connection: its own rebuild starts now.
			t.Stop()
			select {
			case s.connects <- struct{}{}:
			default:
			}
			return
		case <-t.C:
		}
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

// syncOnce runs one replay: it sets both markers to a new nonce, then
// subscribes to the begin marker, the device topics and the end marker in
// one SUBSCRIBE, and waits until the handler has seen the end marker.
func (s *Session) syncOnce(ctx context.Context, verify bool) error {
	uctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	s.mu.Lock()
	epoch := s.epoch
	s.abortAttempt = cancel
	s.mu.Unlock()
	lost := func() bool { return !s.client.IsConnected() || s.currentEpoch() != epoch }
	// Marker values must never reach a subscription of ours live, or a
	// begin and end without a replay between them would count as one.
	if err := s.client.Unsubscribe(uctx, s.beginTopic, s.endTopic); err != nil && lost() {
		return errConnectionLost
	} else if err != nil && !isRefusal(err) {
		return fmt.Errorf("unsubscribing from the sync markers: %w", err)
	}
	nonce := rand.Text()
	done := s.startReplay(nonce, verify)
	defer s.endReplay(nonce)
	for _, topic := range []string{s.beginTopic, s.endTopic} {
		err := s.client.Publish(uctx, &mqtt.Message{Topic: topic, Payload: []byte(nonce), QoS: mqtt.AtLeastOnce, Retain: true})
		if err != nil {
			if lost() {
				return errConnectionLost
			}
			return &SyncError{Reason: ReasonSyncRefused, Message: fmt.Sprintf(
				"publishing the retained sync marker %q: %v; Herald needs to publish and subscribe to %s/_herald/# (check the broker's ACL and that it allows retained messages)",
				topic, err, s.Topics.Root())}
		}
	}
	subs := []mqtt.Subscription{{Filter: s.beginTopic}}
	for _, f := range []string{s.Topics.AllPresence(), s.Topics.AllInventory(), s.Topics.AllStatus(), s.Topics.AllDeviceNotices(), s.Topics.AllGroupNotices()} {
		subs = append(subs, mqtt.Subscription{Filter: f})
	}
	subs = append(subs, mqtt.Subscription{Filter: s.endTopic})
	for i := range subs {
		subs[i].QoS = mqtt.AtLeastOnce
	}
	if _, err := s.client.SubscribeWith(uctx, mqtt.SubscribeRequest{Subscriptions: subs, NoRenew: true}); err != nil {
		if lost() {
			return errConnectionLost
		}
		return &SyncError{Reason: ReasonSyncRefused, Message: fmt.Sprintf("subscribing to the fleet's topics: %v", err)}
	}
	subscribed := time.Now()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-done:
			if !s.finishSync(epoch, verify) {
				return errConnectionLost
			}
			return nil
		case now := <-t.C:
			if lost() {
				return errConnectionLost
			}
			last := time.Unix(0, s.lastMsg.Load())
			if now.Sub(subscribed) < replayQuiet || now.Sub(last) < replayQuiet || s.client.Stats().Queued > 0 {
				continue
			}
			return s.incomplete(nonce)
		}
	}
}

// isRefusal reports whether err is the broker refusing an UNSUBSCRIBE
// (e.g. "no subscription existed"), which leaves us unsubscribed too.
func isRefusal(err error) bool {
	var se *mqtt.SubscribeError
	return errors.As(err, &se)
}

// incomplete explains a replay that went quiet without its end marker.
func (s *Session) incomplete(nonce string) error {
	s.rmu.Lock()
	begun, applied := s.replay.nonce == nonce && s.replay.building != nil, s.replay.applied
	s.rmu.Unlock()
	if !begun {
		return &SyncError{Reason: ReasonReplayIncomplete, Message: fmt.Sprintf(
			"the broker did not replay the retained sync marker %q: it must keep retained messages (mosquitto: retain_available true) and let Herald subscribe to %s/_herald/#",
			s.beginTopic, s.Topics.Root())}
	}
	return &SyncError{Reason: ReasonReplayIncomplete, Message: fmt.Sprintf(
		"the broker cut the retained replay short after %d messages: it dropped messages it could not queue for Herald. "+
			"Raise its per-client queue above the fleet's retained messages (mosquitto: max_queued_messages 0, or at least 3 per device; see docs/operator.md, broker settings)",
		applied)}
}

// startReplay arms the handler for a replay marked with nonce.
func (s *Session) startReplay(nonce string, verify bool) <-chan struct{} {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	s.replay = replay{nonce: nonce, verify: verify, done: make(chan struct{})}
	return s.replay.done
}

// endReplay disarms the handler unless a newer replay took over.
func (s *Session) endReplay(nonce string) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	if s.replay.nonce == nonce {
		s.replay = replay{}
	}
}

// abortReplay drops a replay the lost connection interrupted: what it
// would still deliver belongs to the old connection.
func (s *Session) abortReplay() {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	s.replay = replay{}
}

// finishSync records a completed rebuild, unless the connection it ran on
// has ended since (epoch changed): then it reports false.
func (s *Session) finishSync(epoch int64, verify bool) bool {
	s.rmu.Lock()
	repaired := s.replay.repaired
	s.rmu.Unlock()
	s.mu.Lock()
	if s.epoch != epoch {
		s.mu.Unlock()
		return false
	}
	s.syncErr = nil
	s.syncedAt.Store(time.Now().UnixNano())
	s.mu.Unlock()
	if verify && repaired > 0 {
		s.log.Info("a re-sync found device records the live stream had missed; the broker dropped messages to Herald (see docs/operator.md, broker settings)", "records", repaired)
	}
	s.changed()
	return true
}

// newEpoch marks a connection made or lost: a rebuild that ran on an
// earlier connection no longer makes the state synced.
func (s *Session) newEpoch() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.epoch++
	s.syncedAt.Store(0)
	if s.abortAttempt != nil {
		s.abortAttempt()
		s.abortAttempt = nil
	}
}

func (s *Session) currentEpoch() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.epoch
}

// handle applies one message. It runs on the client's dispatcher, one
// message at a time, in the order the broker sent them.
func (s *Session) handle(m *mqtt.Message) {
	if s.throttle != nil {
		s.throttle()
	}
	now := time.Now()
	s.lastMsg.Store(now.UnixNano())
	if m.Topic == s.beginTopic || m.Topic == s.endTopic {
		s.marker(m.Topic == s.beginTopic, string(m.Payload))
		return
	}
	s.rmu.Lock()
	building, verify, replaying := s.replay.building, s.replay.verify, s.replay.nonce != ""
	if building != nil {
		s.replay.applied++
	}
	s.rmu.Unlock()
	if !replaying {
		s.watchWindow()
		if s.dropLive != nil && s.dropLive(m.Topic) {
			return
		}
	}
	var res Result
	switch {
	case building == nil:
		res = s.state.Load().Apply(s.Topics, m.Topic, m.Payload, now)
	case verify && !m.Retain:
		// The current state keeps serving during a verifying rebuild and
		// takes live messages; the replay's (retained: sent for the new
		// subscription) go to the new state alone, which the two are then
		// compared by.
		s.state.Load().Apply(s.Topics, m.Topic, m.Payload, now)
		res = building.Apply(s.Topics, m.Topic, m.Payload, now)
	default:
		res = building.Apply(s.Topics, m.Topic, m.Payload, now)
	}
	if res.Malformed {
		s.malformed.Add(1)
		s.logMalformed(now, m.Topic, res.Err)
	}
	if res.Changed {
		s.dirty.Store(true)
	}
	if s.hooks.Message != nil && !s.unobserved.Load() {
		s.hooks.Message(s.key, res)
	}
}

// watchWindow notes when the live stream comes close to filling the
// window of unacknowledged messages: only then can a broker that respects
// it be queueing for Herald, and only a full queue drops messages. It
// checks every 32nd message; a window that fills stays full for longer.
func (s *Session) watchWindow() {
	s.sinceQueueCheck++
	if s.sinceQueueCheck < 32 {
		return
	}
	s.sinceQueueCheck = 0
	if s.client.Stats().Queued >= receiveMaximum-overrunMargin {
		s.overrun.Store(true)
	}
}

// marker acts on a sync marker: the begin marker starts the new state,
// the end marker swaps it in. Markers with another value are from earlier
// attempts.
func (s *Session) marker(begin bool, value string) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	r := &s.replay
	if r.nonce == "" || value != r.nonce {
		return
	}
	if begin {
		if r.building == nil {
			r.building = NewState(s.limits())
		}
		return
	}
	if r.building == nil {
		return // an end before its begin: the replay is not trustworthy
	}
	old := s.state.Load()
	if r.verify {
		r.repaired = r.building.differences(old)
		s.repairs.Add(int64(r.repaired))
	}
	r.building.carryOver(old)
	s.state.Store(r.building)
	r.building = nil
	s.dirty.Store(true)
	close(r.done)
	r.nonce = ""
}

// logMalformed logs a malformed message with its topic and why, at most
// once per malformedLogInterval: hostile devices must not flood the log.
func (s *Session) logMalformed(now time.Time, topic string, err error) {
	if now.Sub(s.malformedLoggedAt) < malformedLogInterval {
		s.malformedUnlogged++
		return
	}
	if len(topic) > 256 {
		topic = topic[:256] + "..."
	}
	s.log.Info("ignored a malformed device message (docs/protocol.md)", "topic", topic, "reason", err.Error(), "alsoIgnoredSinceLastLog", s.malformedUnlogged)
	s.malformedLoggedAt, s.malformedUnlogged = now, 0
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
		case now := <-t.C:
			if s.dirty.Swap(false) {
				s.changed()
			}
			s.resyncAfterOverrun(now)
		}
	}
}

// resyncAfterOverrun asks for a verifying rebuild once a stream that
// filled the window has drained, to repair what the broker may have
// dropped meanwhile.
func (s *Session) resyncAfterOverrun(now time.Time) {
	if !s.overrun.Load() || !s.isSynced() || s.client.Stats().Queued > 0 ||
		now.Sub(time.Unix(0, s.lastVerify.Load())) < s.resyncSpacing {
		return
	}
	s.overrun.Store(false)
	s.log.Info("the device stream filled Herald's receive window, so the broker may have dropped messages; re-syncing to repair them")
	s.Resync()
}

func (s *Session) setConnected(up bool, err error) {
	s.mu.Lock()
	s.lastErr = err
	s.mu.Unlock()
	if s.connected.Swap(up) != up || err != nil {
		s.changed()
	}
	if s.hooks.Connection != nil && !s.unobserved.Load() {
		s.hooks.Connection(s.key, up)
	}
}

// observe starts reporting a warm session to the hooks, when the leader
// takes it over.
func (s *Session) observe() {
	if !s.unobserved.Swap(false) {
		return
	}
	if s.hooks.Client != nil {
		s.hooks.Client(s.key, s.client, true)
	}
	if s.hooks.Connection != nil {
		s.hooks.Connection(s.key, s.connected.Load())
	}
}

// Connected reports whether the broker connection is up, and the last
// connection error otherwise.
func (s *Session) Connected() (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.connected.Load(), s.lastErr
}

// HasConnected reports whether the session has ever been connected: only
// then is a connection that is down a lost one.
func (s *Session) HasConnected() bool { return s.everConnected.Load() }

// Synced reports whether the state was rebuilt from a complete retained
// replay since the last (re)connect, and when.
func (s *Session) Synced() (bool, time.Time) {
	n := s.syncedAt.Load()
	if n == 0 || !s.connected.Load() {
		return false, time.Time{}
	}
	return true, time.Unix(0, n)
}

func (s *Session) isSynced() bool {
	ok, _ := s.Synced()
	return ok
}

// SyncError is why the last rebuild failed, or nil.
func (s *Session) SyncError() *SyncError {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.syncErr
}

// Resync asks for a rebuild of the state while it keeps serving, as the
// periodic one does.
func (s *Session) Resync() {
	select {
	case s.resyncNow <- struct{}{}:
	default:
	}
}

// Repairs counts the device and notice records that rebuilds while synced
// found different from the state kept from the live stream: messages the
// broker did not deliver.
func (s *Session) Repairs() int64 { return s.repairs.Load() }

// State is the fleet's current state. A rebuild replaces it, so callers
// take it once per decision and use that one throughout.
func (s *Session) State() *State { return s.state.Load() }

// Summarize summarises the current state, with the malformed messages the
// session has seen since it started.
func (s *Session) Summarize() Summary {
	sum := s.State().Summarize()
	sum.Malformed = s.malformed.Load()
	return sum
}

// Published records a message the operator has just published, in the
// current state and in a rebuild under way (see State.Published).
func (s *Session) Published(topic string, payload []byte, now time.Time) {
	s.rmu.Lock()
	building := s.replay.building
	s.rmu.Unlock()
	s.State().Published(s.Topics, topic, payload, now)
	if building != nil {
		building.Published(s.Topics, topic, payload, now)
	}
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

// ClientID is the MQTT client identifier the session uses.
func (s *Session) ClientID() string { return s.cfg.ClientID }

// stop ends the session. With forget, the fleet is gone: its sync markers
// are withdrawn from the broker first, best effort.
func (s *Session) stop(forget bool) {
	observed := !s.unobserved.Load()
	if s.hooks.Connection != nil && observed {
		defer s.hooks.Connection(s.key, false)
	}
	s.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if forget && s.client.IsConnected() {
		for _, topic := range []string{s.beginTopic, s.endTopic} {
			_ = s.client.Publish(ctx, &mqtt.Message{Topic: topic, QoS: mqtt.AtLeastOnce, Retain: true})
		}
	}
	_ = s.client.Disconnect(ctx)
	s.wg.Wait()
	if s.hooks.Client != nil && observed {
		s.hooks.Client(s.key, s.client, false)
	}
}
