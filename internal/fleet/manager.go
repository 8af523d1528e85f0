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

// Manager owns one Session per DeviceFleet. It runs as a manager Runnable
// that needs leader election, so only the elected leader holds broker
// connections, and it stops every session when the manager stops.
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
	stopped  bool
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
	}
}

// Start blocks until ctx ends, then stops all sessions.
func (m *Manager) Start(ctx context.Context) error {
	<-ctx.Done()
	m.mu.Lock()
	m.stopped = true
	sessions := m.sessions
	m.sessions = map[types.NamespacedName]*Session{}
	m.mu.Unlock()
	for _, s := range sessions {
		s.stop(false)
	}
	return nil
}

// NeedLeaderElection keeps broker sessions on the leader only.
func (m *Manager) NeedLeaderElection() bool { return true }

// Ensure returns the running session for key, starting it, or restarting
// it when cfg changed.
func (m *Manager) Ensure(key types.NamespacedName, cfg Config) (*Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return nil, context.Canceled
	}
	if s, ok := m.sessions[key]; ok {
		if s.fingerprint == cfg.fingerprint() {
			return s, nil
		}
		m.log.Info("broker settings changed; reconnecting", "fleet", key.String())
		go s.stop(s.cfg.ClientID != cfg.ClientID)
		delete(m.sessions, key)
	}
	s, err := newSession(key, cfg, m.hooks, m.log.WithValues("fleet", key.String()), func() { m.notify(key) })
	if err != nil {
		return nil, err
	}
	s.start(m.eventInterval)
	m.sessions[key] = s
	return s, nil
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
