package controllers

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	ctrl "sigs.k8s.io/controller-runtime"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/heraldiot/herald/internal/fleet"
)

// Options tune the controllers; the zero value is production's.
type Options struct {
	// EventInterval bounds how often a fleet's device messages trigger
	// reconciles (default 1s).
	EventInterval time.Duration
	// Registerer receives Herald's metrics (default controller-runtime's
	// registry, served on the manager's metrics endpoint).
	Registerer prometheus.Registerer
	// Shard is the manager's --watch-label-selector, for messages about
	// objects it cannot see; empty when it serves every object.
	Shard string
	// StandbyID, when set, turns on warm standby: while not the leader,
	// the replica keeps a read-only session per fleet under the fleet's
	// client ID plus "-standby-" and StandbyID (unique per replica, e.g.
	// the pod name), so that a takeover needs no cold replay.
	StandbyID string
}

// Setup adds the fleet session manager and both controllers to mgr.
func Setup(ctx context.Context, mgr ctrl.Manager, opts Options) error {
	if opts.EventInterval <= 0 {
		opts.EventInterval = time.Second
	}
	if opts.Registerer == nil {
		opts.Registerer = crmetrics.Registry
	}
	metrics, err := NewMetrics(opts.Registerer)
	if err != nil {
		return err
	}
	sessions := fleet.NewManager(ctrl.Log.WithName("fleet"), opts.EventInterval, metrics.hooks())
	if err := mgr.Add(sessions); err != nil {
		return err
	}
	if opts.StandbyID != "" {
		if err := addStandby(mgr, sessions, metrics, opts.StandbyID); err != nil {
			return err
		}
	}
	recorder := mgr.GetEventRecorder("herald")
	fleets := &DeviceFleetReconciler{Client: mgr.GetClient(), Secrets: mgr.GetAPIReader(), Sessions: sessions, Recorder: recorder, Metrics: metrics}
	if err := fleets.SetupWithManager(ctx, mgr); err != nil {
		return err
	}
	return (&FirmwareRolloutReconciler{Client: mgr.GetClient(), Sessions: sessions, Recorder: recorder, Metrics: metrics,
		Snapshots: newSnapshotStore(mgr.GetClient(), mgr.GetAPIReader()), Shard: opts.Shard}).SetupWithManager(ctx, mgr)
}
