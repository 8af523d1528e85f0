package controllers

import (
	"context"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/heraldiot/herald/internal/fleet"
)

// Options tune the controllers; the zero value is production's.
type Options struct {
	// EventInterval bounds how often a fleet's device messages trigger
	// reconciles (default 1s).
	EventInterval time.Duration
}

// Setup adds the fleet session manager and both controllers to mgr.
func Setup(ctx context.Context, mgr ctrl.Manager, opts Options) error {
	if opts.EventInterval <= 0 {
		opts.EventInterval = time.Second
	}
	sessions := fleet.NewManager(ctrl.Log.WithName("fleet"), opts.EventInterval)
	if err := mgr.Add(sessions); err != nil {
		return err
	}
	recorder := mgr.GetEventRecorder("herald")
	if err := (&DeviceFleetReconciler{Client: mgr.GetClient(), Sessions: sessions, Recorder: recorder}).SetupWithManager(mgr); err != nil {
		return err
	}
	return (&FirmwareRolloutReconciler{Client: mgr.GetClient(), Sessions: sessions, Recorder: recorder}).SetupWithManager(ctx, mgr)
}
