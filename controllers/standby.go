package controllers

import (
	"context"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/internal/fleet"
)

// standbyInterval is how often a standby replica brings its warm sessions
// in line with the fleets (new fleets, changed settings, fleets gone).
const standbyInterval = 5 * time.Second

// standby keeps a warm, read-only session per fleet on a replica that is
// not the leader, so that when it is elected its controllers find the
// fleet state current and plan at once: a takeover costs the Lease's
// expiry, not a replay of every retained message (which for 100,000
// devices is seconds). It stops at election; the leader's controllers
// take the sessions over (fleet.Manager.Ensure).
type standby struct {
	client   client.Reader // the cache: DeviceFleets of this manager's namespaces and shard
	secrets  client.Reader // uncached, like the fleet controller's
	sessions *fleet.Manager
	elected  <-chan struct{}
	// suffix makes this replica's client IDs its own.
	suffix    string
	log       logr.Logger
	metrics   *Metrics
	waitCache func(context.Context) bool
	// reported are the fleets with a standby series.
	reported map[types.NamespacedName]bool
}

// NeedLeaderElection is false: the standby is what runs while not elected.
func (s *standby) NeedLeaderElection() bool { return false }

func (s *standby) Start(ctx context.Context) error {
	defer func() {
		for key := range s.reported {
			s.metrics.forgetStandby(key)
		}
	}()
	if !s.waitCache(ctx) {
		return nil
	}
	tick := time.NewTicker(standbyInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.elected:
			return nil
		default:
		}
		s.sync(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-s.elected:
			return nil
		case <-tick.C:
		}
	}
}

// sync makes one warm session per fleet and drops those of fleets gone.
func (s *standby) sync(ctx context.Context) {
	var list v1.DeviceFleetList
	if err := s.client.List(ctx, &list); err != nil {
		s.log.Error(err, "listing fleets for the warm standby")
		return
	}
	keep := map[types.NamespacedName]bool{}
	for i := range list.Items {
		f := &list.Items[i]
		if !f.DeletionTimestamp.IsZero() {
			continue
		}
		key := types.NamespacedName{Namespace: f.Namespace, Name: f.Name}
		cfg, err := resolveBrokerConfig(ctx, s.secrets, f)
		if err != nil {
			// The leader reports it on the fleet; the standby stays cold.
			continue
		}
		keep[key] = true
		select {
		case <-s.elected:
			// Elected meanwhile: the controllers own the sessions now.
			return
		default:
		}
		if err := s.sessions.Warm(key, cfg, s.suffix); err != nil {
			s.log.Error(err, "keeping a warm session", "fleet", key.String())
		}
		s.metrics.observeStandby(key, s.sessions.WarmSynced(key))
		s.reported[key] = true
	}
	select {
	case <-s.elected:
		return
	default:
	}
	s.sessions.DropWarm(keep)
	for key := range s.reported {
		if !keep[key] {
			s.metrics.forgetStandby(key)
			delete(s.reported, key)
		}
	}
}

// addStandby runs a standby on mgr when warm standby is on.
func addStandby(mgr ctrl.Manager, sessions *fleet.Manager, metrics *Metrics, id string) error {
	return mgr.Add(&standby{
		client: mgr.GetClient(), secrets: mgr.GetAPIReader(), sessions: sessions,
		elected: mgr.Elected(), suffix: "-standby-" + id, log: ctrl.Log.WithName("standby"),
		metrics: metrics, waitCache: mgr.GetCache().WaitForCacheSync,
		reported: map[types.NamespacedName]bool{},
	})
}
