package fleet

import (
	"context"
	"sync"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/event"

	heraldv1alpha1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/mqtt"
)

// Hooks observe sessions, for metrics. Each may be nil.
type Hooks struct {
	// Message is called for every message a session receives.
	Message func(fleet types.NamespacedName, res Result)
	// Connection is called when a session's connection goes up or down.
	Connection func(fleet types.NamespacedName, up bool)
	// Client is called with a session's MQTT client when the session
	// starts (running) and after it stops, e.g. to export its counters.
	Client func(fleet types.NamespacedName, c *mqtt.Client, running bool)
}

// Manager owns one Session per DeviceFleet, and stops them all when the
// manager stops. It runs on every replica: the leader's controllers make
// sessions with Ensure, and a standby replica may keep warm ones (Warm),
// which only read the broker, so that taking over needs no cold replay.
type Manager struct {
	log           logr.Logger
	eventInterval time.Duration
	hooks         Hooks

	// FleetEvents and RolloutEvents carry "this fleet changed" to the two
	// controllers' channel sources.
	FleetEvents   chan event.GenericEvent
	RolloutEvents chan event.GenericEvent

	mu       sync.Mutex
	sessions map[types.NamespacedName]*Session
	// warm marks the sessions a standby keeps: only the leader's
	// controllers publish, through sessions Ensure returned.
	warm    map[*Session]bool
	stopped bool
}

// NewManager returns a manager that notifies controllers at most once per
// eventInterval per fleet.
func NewManager(log logr.Logger, eventInterval time.Duration, hooks Hooks) *Manager {
	return &Manager{
		log:           log,
		hooks:         hooks,
		eventInterval: eventInterval,
		FleetEvents:   make(chan event.GenericEvent, 1024),
		RolloutEvents: make(chan event.GenericEvent, 1024),
		sessions:      make(map[types.NamespacedName]*Session),
		warm:          make(map[*Session]bool),
	}
}

// Start blocks until ctx ends, then stops all sessions.
func (m *Manager) Start(ctx context.Context) error {
	<-ctx.Done()
	m.mu.Lock()
	m.stopped = true
	sessions, warm := m.sessions, m.warm
	m.sessions, m.warm = map[types.NamespacedName]*Session{}, map[*Session]bool{}
	m.mu.Unlock()
	for _, s := range sessions {
		// A standby's sync markers carry its own client ID: withdraw them
		// rather than leave one retained message per replica ever run.
		s.stop(warm[s])
	}
	return nil
}

// NeedLeaderElection lets the manager run on standby replicas too, for
// their warm sessions; the sessions that publish are made by the leader's
// controllers only.
func (m *Manager) NeedLeaderElection() bool { return false }

// Ensure returns the running session for key, starting it, or restarting
// it when cfg changed.
func (m *Manager) Ensure(key types.NamespacedName, cfg Config) (*Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return nil, context.Canceled
	}
	if s, ok := m.sessions[key]; ok {
		switch synced, _ := s.Synced(); {
		case s.fingerprint == cfg.fingerprint() && m.warm[s] && synced:
			// Taking over: the standby's state is current, so the new
			// leader plans at once instead of waiting for a replay.
			delete(m.warm, s)
			m.log.Info("taking over the warm session", "fleet", key.String(), "clientID", s.ClientID())
			s.observe()
			return s, nil
		case s.fingerprint == cfg.fingerprint() && !m.warm[s]:
			return s, nil
		case m.warm[s]:
			// Not synced (the broker may refuse the standby's client
			// ID), or made with other settings: start afresh.
			delete(m.warm, s)
			delete(m.sessions, key)
			go s.stop(true)
			return m.ensureLocked(key, cfg, true)
		}
		m.log.Info("broker settings changed; reconnecting", "fleet", key.String())
		go s.stop(s.cfg.ClientID != cfg.ClientID)
		delete(m.sessions, key)
	}
	return m.ensureLocked(key, cfg, true)
}

// ensureLocked starts a session for key, reported to the hooks when
// observed; m.mu is held.
func (m *Manager) ensureLocked(key types.NamespacedName, cfg Config, observed bool) (*Session, error) {
	s, err := newSession(key, cfg, m.hooks, m.log.WithValues("fleet", key.String()), func() { m.notify(key) })
	if err != nil {
		return nil, err
	}
	s.unobserved.Store(!observed)
	s.start(m.eventInterval)
	m.sessions[key] = s
	return s, nil
}

// Warm keeps a read-only session for key on a standby replica, under the
// fleet's client ID with suffix appended (client IDs are one connection
// each), so that the replica's picture of the fleet is current when it
// takes over (Ensure). A session for key that exists already stays.
func (m *Manager) Warm(key types.NamespacedName, cfg Config, suffix string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return context.Canceled
	}
	if s, ok := m.sessions[key]; ok {
		if !m.warm[s] || s.fingerprint == cfg.fingerprint() {
			return nil
		}
		delete(m.warm, s)
		go s.stop(true)
	}
	base := cfg.fingerprint()
	cfg.ClientID += suffix
	s, err := m.ensureLocked(key, cfg, false)
	if err != nil {
		return err
	}
	// Compared with the leader's settings, which name the fleet's own
	// client ID, when it takes over.
	s.fingerprint = base
	m.warm[s] = true
	return nil
}

// WarmSynced reports whether the warm session for key has a complete
// picture of the fleet.
func (m *Manager) WarmSynced(key types.NamespacedName) bool {
	m.mu.Lock()
	s := m.sessions[key]
	warm := m.warm[s]
	m.mu.Unlock()
	if s == nil || !warm {
		return false
	}
	synced, _ := s.Synced()
	return synced
}

// DropWarm stops the warm sessions of fleets not in keep.
func (m *Manager) DropWarm(keep map[types.NamespacedName]bool) {
	m.mu.Lock()
	var drop []*Session
	for key, s := range m.sessions {
		if m.warm[s] && !keep[key] {
			drop = append(drop, s)
			delete(m.warm, s)
			delete(m.sessions, key)
		}
	}
	m.mu.Unlock()
	for _, s := range drop {
		s.stop(true)
	}
}

// Get returns the session for key, or nil.
func (m *Manager) Get(key types.NamespacedName) *Session {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sessions[key]
}

// Remove stops and forgets the session for key, whose fleet is gone.
func (m *Manager) Remove(key types.NamespacedName) {
	m.mu.Lock()
	s := m.sessions[key]
	delete(m.sessions, key)
	delete(m.warm, s)
	m.mu.Unlock()
	if s != nil {
		s.stop(true)
	}
}

func (m *Manager) notify(key types.NamespacedName) {
	obj := &heraldv1alpha1.DeviceFleet{ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: key.Namespace}}
	for _, ch := range []chan event.GenericEvent{m.FleetEvents, m.RolloutEvents} {
		select {
		case ch <- event.GenericEvent{Object: obj}:
		default:
			// The controller is behind; it will reconcile from a later
			// event, and a full channel already holds one for this fleet
			// more often than not.
		}
	}
}
