package controllers

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/internal/fleet"
	"github.com/heraldiot/herald/internal/rollout"
	"github.com/heraldiot/herald/mqtt"
)

// +kubebuilder:rbac:groups=herald.dev,resources=firmwarerollouts,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=herald.dev,resources=firmwarerollouts/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=herald.dev,resources=firmwarerollouts/finalizers,verbs=update

// noticeFinalizer holds a rollout until its retained notices are cleared.
const noticeFinalizer = "herald.dev/notices"

// fleetRefIndex indexes rollouts by the fleet they target.
const fleetRefIndex = "spec.fleetRef.name"

// statusInterval bounds status writes per rollout, whatever the ack rate.
const statusInterval = time.Second

// FirmwareRolloutReconciler drives rollouts: it publishes and withdraws
// retained notices and summarises device acknowledgements in status.
type FirmwareRolloutReconciler struct {
	client.Client
	Sessions *fleet.Manager
	Recorder events.EventRecorder
	Metrics  *Metrics
	// Snapshots keeps the frozen target sets of Snapshot rollouts.
	Snapshots *snapshotStore
	// Shard is the manager's label selector, "" for every object.
	Shard string
	// Now is the clock (tests may replace it).
	Now func() time.Time

	mu        sync.Mutex
	limiters  map[types.UID]*rolloutLimits
	lastWrite map[types.UID]time.Time
	// trackers keep each rollout's targets between plans, so that a plan
	// costs what changed in the fleet, not a walk over all of it. By
	// name, so that a rollout gone from the cache can be forgotten; a
	// tracker notices a new object of the same name by its UID.
	trackers map[types.NamespacedName]*rollout.Tracker
}

// Reconcile runs the rollout's steps: deletion, finalizer, fleet lookup,
// planning, notices, status.
func (r *FirmwareRolloutReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	log := ctrl.LoggerFrom(ctx)
	var ro v1.FirmwareRollout
	if err := r.Get(ctx, req.NamespacedName, &ro); err != nil {
		if apierrors.IsNotFound(err) {
			// Gone, or relabeled into another shard: its series here
			// would go on saying what it was.
			r.Metrics.forgetRollout(req.Namespace, req.Name)
			r.dropTracker(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !ro.DeletionTimestamp.IsZero() {
		return r.reconcileDelete(ctx, &ro)
	}
	if !controllerutil.ContainsFinalizer(&ro, noticeFinalizer) {
		controllerutil.AddFinalizer(&ro, noticeFinalizer)
		if err := r.Update(ctx, &ro); err != nil {
			return ctrl.Result{}, err
		}
	}

	before := ro.Status.DeepCopy()
	var events []rollout.Event
	defer func() {
		if equality.Semantic.DeepEqual(before, &ro.Status) {
			return
		}
		// Status is a summary for people and GitOps tools: write it at
		// most once per statusInterval, and come back for the rest. A
		// transition (new phase, wave events) is written at once.
		if wait := r.statusWait(ro.UID); wait > 0 && before.Phase == ro.Status.Phase && len(events) == 0 {
			if res.RequeueAfter == 0 || wait < res.RequeueAfter {
				res.RequeueAfter = wait
			}
			return
		}
		if err := r.Status().Update(ctx, &ro); err != nil {
			// The transition was not recorded: the next plan, from the
			// status as written, finds it again and announces it then.
			if !apierrors.IsConflict(err) {
				retErr = err
			}
			res.RequeueAfter = statusInterval
			return
		}
		r.wroteStatus(ro.UID)
		for _, e := range events {
			r.Recorder.Eventf(&ro, nil, e.Type, e.Reason, "Reconcile", "%s", e.Message)
		}
	}()

	s, fl, err := r.fleetSession(ctx, &ro)
	if err != nil || s == nil {
		// Its tracker would keep the fleet's last state alive, and walks
		// the fleet afresh once the session is back anyway.
		r.dropTracker(req.NamespacedName)
	}
	if err != nil {
		return ctrl.Result{RequeueAfter: 30 * time.Second}, nil
	}
	if s == nil {
		return ctrl.Result{RequeueAfter: 5 * time.Second}, nil
	}
	superseded, err := r.superseded(ctx, &ro)
	if err != nil {
		return ctrl.Result{}, err
	}
	grace := time.Minute
	if fl.Spec.OfflineGracePeriod != nil {
		grace = fl.Spec.OfflineGracePeriod.Duration
	}
	limiter := r.limiter(&ro)
	var snap rollout.Snapshot
	if ro.Spec.Targeting == v1.TargetingSnapshot && ro.Status.Snapshot != nil {
		if snap, err = r.Snapshots.load(ctx, &ro); err != nil {
			if !rollout.Ending(&ro, superseded) {
				// Planning without it would target devices the freeze
				// left out; nothing is published until it can be read.
				r.notReady(&ro, v1.ReasonSnapshotUnreadable, err.Error())
				return ctrl.Result{RequeueAfter: 30 * time.Second}, nil
			}
			// Ending needs no target set: notices go by rollout UID.
			snap = rollout.Snapshot{}
		}
	}
	state := s.State()
	now := r.Now()
	in := rollout.Input{
		Rollout:          &ro,
		Devices:          state.EachReport,
		Topics:           s.Topics,
		Now:              now,
		OfflineGrace:     grace,
		SupersededModels: superseded,
		NoticeBudget:     limiter.notices.available(now),
		DeviceBudget:     limiter.devices.available(now),
		SizeHint:         state.Len(),
		Snapshot:         snap,
	}
	tracker := r.tracker(req.NamespacedName)
	out := tracker.Plan(in, state)
	if out.TakeSnapshot != nil {
		rec, ids, err := r.Snapshots.save(ctx, &ro, out.TakeSnapshot, now)
		if err != nil {
			log.Error(err, "saving the target snapshot")
			r.notReady(&ro, v1.ReasonSnapshotUnreadable, "cannot save the target snapshot, so the rollout does not start: "+err.Error())
			return ctrl.Result{RequeueAfter: 5 * time.Second}, nil
		}
		ro.Status.Snapshot = rec
		in.Snapshot = ids
		out = tracker.Plan(in, state)
	}
	if out.Status.Phase == v1.PhaseSucceeded {
		// Final: its plans read nothing from now on, so the memory of
		// its targets (about 110 bytes a device) goes.
		r.dropTracker(req.NamespacedName)
	}
	withdrawn, err := r.publish(ctx, s, &ro, out.Actions, out.CancelNotice, limiter)
	if err != nil {
		log.Error(err, "publishing notices")
		out.RequeueAfter = 2 * time.Second
	}
	if out.WithdrawAll && withdrawn > 0 {
		// Announced at once: the notices are gone whether or not the
		// status write below succeeds.
		r.Recorder.Eventf(&ro, nil, corev1.EventTypeNormal, "NoticesWithdrawn", "Withdraw",
			"withdrew %d retained notices (%s)", withdrawn, out.Status.Phase)
	}
	events = out.Events
	ro.Status = out.Status
	r.Metrics.observeRollout(&ro)
	return ctrl.Result{RequeueAfter: out.RequeueAfter}, nil
}

// fleetSession finds the rollout's fleet and its synced session. A nil
// session without error means "not ready yet"; status says why.
func (r *FirmwareRolloutReconciler) fleetSession(ctx context.Context, ro *v1.FirmwareRollout) (*fleet.Session, *v1.DeviceFleet, error) {
	key := types.NamespacedName{Namespace: ro.Namespace, Name: ro.Spec.FleetRef.Name}
	var fl v1.DeviceFleet
	if err := r.Get(ctx, key, &fl); err != nil {
		msg := fmt.Sprintf("DeviceFleet %q: %v", key.Name, err)
		if apierrors.IsNotFound(err) && r.Shard != "" {
			msg += fmt.Sprintf(" among the fleets of this manager's shard (%s): label the fleet like its rollouts (%s)", r.Shard, ShardLabel)
		}
		r.notReady(ro, v1.ReasonFleetNotFound, msg)
		return nil, nil, err
	}
	s := r.Sessions.Get(key)
	if s == nil {
		r.notReady(ro, v1.ReasonFleetNotReady, fmt.Sprintf("DeviceFleet %q has no broker session yet", key.Name))
		return nil, &fl, nil
	}
	if synced, _ := s.Synced(); !synced {
		up, err := s.Connected()
		msg := fmt.Sprintf("DeviceFleet %q is rebuilding its device state from the broker's retained messages", key.Name)
		if se := s.SyncError(); se != nil {
			msg = fmt.Sprintf("DeviceFleet %q cannot rebuild its device state: %s", key.Name, se.Message)
		}
		if !up {
			msg = fmt.Sprintf("DeviceFleet %q is not connected to its broker", key.Name)
			if err != nil {
				msg += ": " + err.Error()
			}
		}
		r.notReady(ro, v1.ReasonFleetNotReady, msg)
		return nil, &fl, nil
	}
	return s, &fl, nil
}

func (r *FirmwareRolloutReconciler) notReady(ro *v1.FirmwareRollout, reason, msg string) {
	st := &ro.Status
	st.ObservedGeneration = ro.Generation
	if st.Phase == "" {
		st.Phase = v1.PhasePending
	}
	setCondition(&st.Conditions, ro.Generation, v1.ConditionReady, "False", reason, msg)
	setAbnormal(&st.Conditions, ro.Generation, v1.ConditionReconciling, true, reason, msg)
}

// superseded applies the documented rule: a newer rollout (by creation
// time, then UID, the order devices use for notices) for the same fleet that is not canceled or aborted takes
// over the models it shares with this one. It returns those models.
func (r *FirmwareRolloutReconciler) superseded(ctx context.Context, ro *v1.FirmwareRollout) (map[string]bool, error) {
	var list v1.FirmwareRolloutList
	if err := r.List(ctx, &list, client.InNamespace(ro.Namespace), client.MatchingFields{fleetRefIndex: ro.Spec.FleetRef.Name}); err != nil {
		return nil, err
	}
	taken := map[string]bool{}
	models := map[string]bool{}
	for _, m := range ro.Spec.Firmware.Models {
		models[m] = true
	}
	for i := range list.Items {
		o := &list.Items[i]
		if o.UID == ro.UID || o.Spec.Canceled || o.Status.Phase == v1.PhaseAborted || !o.DeletionTimestamp.IsZero() {
			continue
		}
		newer := o.CreationTimestamp.After(ro.CreationTimestamp.Time) ||
			(o.CreationTimestamp.Equal(&ro.CreationTimestamp) && o.UID > ro.UID)
		if !newer {
			continue
		}
		for _, m := range o.Spec.Firmware.Models {
			if models[m] {
				taken[m] = true
			}
		}
	}
	return taken, nil
}

// publishWorkers is how many notices are in flight at once: pipelining
// them makes a wave's start cost about one broker round trip, not one per
// notice.
const publishWorkers = 32

// publish carries out the plan's notice actions on the broker: cancel
// notices first when asked (before the retained notices they explain
// disappear), then publishes and withdrawals. It returns how many notices
// it withdrew.
func (r *FirmwareRolloutReconciler) publish(ctx context.Context, s *fleet.Session, ro *v1.FirmwareRollout, actions []rollout.Action, cancelFirst bool, limiter *rolloutLimits) (int, error) {
	if len(actions) == 0 {
		return 0, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	now := r.Now()
	// One message per attempt: retries differ only in it.
	var err error
	notices := map[int]*mqtt.Message{}
	for _, a := range actions {
		if a.Withdraw || notices[max(a.Attempt, 1)] != nil {
			continue
		}
		m, err := noticeMessage(ro, s.Version(), max(a.Attempt, 1))
		if err != nil {
			return 0, err
		}
		notices[max(a.Attempt, 1)] = m
	}
	fleetName := ro.Spec.FleetRef.Name
	var withdrawals []rollout.Action
	for _, a := range actions {
		if a.Withdraw {
			withdrawals = append(withdrawals, a)
		}
	}
	if cancelFirst && len(withdrawals) > 0 {
		cm, err := cancelMessage(ro, now)
		if err != nil {
			return 0, err
		}
		err = forEach(ctx, withdrawals, func(a rollout.Action) error {
			m := *cm
			m.Topic = a.Topic
			if err := s.Publish(ctx, &m); err != nil {
				return err
			}
			r.Metrics.noticePublished(ro.Namespace, fleetName, "cancel")
			return nil
		})
		if err != nil {
			return 0, err
		}
	}
	var withdrawn atomic.Int64
	err = forEach(ctx, actions, func(a rollout.Action) error {
		m, action := withdrawMessage(a.Topic), "withdraw"
		if !a.Withdraw {
			m, action = *notices[max(a.Attempt, 1)], "update"
			if a.Attempt > 1 {
				action = "retry"
			}
			m.Topic = a.Topic
			limiter.notices.take(now, 1)
			limiter.devices.take(now, a.Devices)
		}
		if err := s.Publish(ctx, &m); err != nil {
			return fmt.Errorf("%s: %w", a.Topic, err)
		}
		if a.Withdraw {
			withdrawn.Add(1)
		}
		r.Metrics.noticePublished(ro.Namespace, fleetName, action)
		s.Published(m.Topic, m.Payload, now)
		return nil
	})
	return int(withdrawn.Load()), err
}

// forEach runs fn for every action on up to publishWorkers goroutines and
// returns the first error.
func forEach(ctx context.Context, actions []rollout.Action, fn func(rollout.Action) error) error {
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	work := make(chan rollout.Action)
	for range min(publishWorkers, len(actions)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for a := range work {
				if err := fn(a); err != nil {
					once.Do(func() { first = err })
				}
			}
		}()
	}
feed:
	for _, a := range actions {
		select {
		case work <- a:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

func (r *FirmwareRolloutReconciler) reconcileDelete(ctx context.Context, ro *v1.FirmwareRollout) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(ro, noticeFinalizer) {
		return ctrl.Result{}, nil
	}
	key := types.NamespacedName{Namespace: ro.Namespace, Name: ro.Spec.FleetRef.Name}
	var fl v1.DeviceFleet
	err := r.Get(ctx, key, &fl)
	switch {
	case apierrors.IsNotFound(err):
		// No fleet, no broker to clean: let the rollout go.
	case err != nil:
		return ctrl.Result{}, err
	default:
		s := r.Sessions.Get(key)
		if s == nil {
			return ctrl.Result{RequeueAfter: 5 * time.Second}, nil
		}
		if synced, _ := s.Synced(); !synced {
			return ctrl.Result{RequeueAfter: 2 * time.Second}, nil
		}
		var actions []rollout.Action
		for topic, n := range s.State().Notices() {
			if n.RolloutUID == string(ro.UID) {
				actions = append(actions, rollout.Action{Topic: topic, Withdraw: true})
			}
		}
		// Deleting a finished rollout is cleanup: devices that finished
		// need nothing, and those still at work on an aborted or canceled
		// one were told when it ended. Deleting a running rollout stops
		// it, so devices at work hear a cancel first.
		cancelFirst := !ro.Status.Phase.Terminal()
		n, err := r.publish(ctx, s, ro, actions, cancelFirst, r.limiter(ro))
		if err != nil {
			return ctrl.Result{}, err
		}
		if n > 0 {
			r.Recorder.Eventf(ro, nil, corev1.EventTypeNormal, "NoticesWithdrawn", "Delete", "withdrew %d retained notices (deleted)", n)
		}
	}
	controllerutil.RemoveFinalizer(ro, noticeFinalizer)
	r.forget(ro.UID)
	r.dropTracker(client.ObjectKeyFromObject(ro))
	r.Metrics.forgetRollout(ro.Namespace, ro.Name)
	return ctrl.Result{}, r.Update(ctx, ro)
}

// rolloutLimits are a rollout's rate limits: notice publishes, and devices
// reached by new notices.
type rolloutLimits struct {
	notices, devices rateLimiter
}

func (r *FirmwareRolloutReconciler) limiter(ro *v1.FirmwareRollout) *rolloutLimits {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.limiters == nil {
		r.limiters = map[types.UID]*rolloutLimits{}
	}
	l := r.limiters[ro.UID]
	if l == nil {
		l = &rolloutLimits{}
		r.limiters[ro.UID] = l
	}
	l.notices.setRate(int(ro.Spec.Strategy.MaxNoticesPerMinute))
	// The ramp's step follows the successes the status last recorded.
	l.devices.setRate(rollout.DeviceRate(&ro.Spec.Strategy, int(ro.Status.Totals.Succeeded)))
	return l
}

func (r *FirmwareRolloutReconciler) statusWait(uid types.UID) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	last, ok := r.lastWrite[uid]
	if !ok {
		return 0
	}
	return max(0, statusInterval-r.Now().Sub(last))
}

func (r *FirmwareRolloutReconciler) wroteStatus(uid types.UID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lastWrite == nil {
		r.lastWrite = map[types.UID]time.Time{}
	}
	r.lastWrite[uid] = r.Now()
}

// tracker returns the rollout's tracker, making it on first use.
func (r *FirmwareRolloutReconciler) tracker(key types.NamespacedName) *rollout.Tracker {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.trackers == nil {
		r.trackers = map[types.NamespacedName]*rollout.Tracker{}
	}
	tr := r.trackers[key]
	if tr == nil {
		tr = &rollout.Tracker{}
		r.trackers[key] = tr
	}
	return tr
}

func (r *FirmwareRolloutReconciler) dropTracker(key types.NamespacedName) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.trackers, key)
}

func (r *FirmwareRolloutReconciler) forget(uid types.UID) {
	if r.Snapshots != nil {
		r.Snapshots.forget(uid)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.limiters, uid)
	delete(r.lastWrite, uid)
}

// SetupWithManager registers the controller: rollouts, and fleet change
// notifications mapped to the rollouts of that fleet.
func (r *FirmwareRolloutReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if r.Now == nil {
		r.Now = time.Now
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &v1.FirmwareRollout{}, fleetRefIndex, func(o client.Object) []string {
		return []string{o.(*v1.FirmwareRollout).Spec.FleetRef.Name}
	}); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1.FirmwareRollout{}, builder.WithPredicates(specOrLifecycleChanged())).
		WatchesRawSource(source.Channel(r.Sessions.RolloutEvents, handler.EnqueueRequestsFromMapFunc(r.rolloutsOfFleet))).
		Named("firmwarerollout").
		Complete(r)
}

func (r *FirmwareRolloutReconciler) rolloutsOfFleet(ctx context.Context, o client.Object) []reconcile.Request {
	var list v1.FirmwareRolloutList
	if err := r.List(ctx, &list, client.InNamespace(o.GetNamespace()), client.MatchingFields{fleetRefIndex: o.GetName()}); err != nil {
		return nil
	}
	out := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
	}
	return out
}

// specOrLifecycleChanged lets through what a person or GitOps changed (the
// spec, hence the generation), deletion and finalizers, but not the
// controller's own status writes: a plan walks every device of the fleet,
// and re-planning after each status write doubled the planning work of a
// large rollout for nothing. Device messages and requeues drive the rest.
func specOrLifecycleChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, n := e.ObjectOld, e.ObjectNew
			return o.GetGeneration() != n.GetGeneration() ||
				!o.GetDeletionTimestamp().Equal(n.GetDeletionTimestamp()) ||
				!slices.Equal(o.GetFinalizers(), n.GetFinalizers()) ||
				!maps.Equal(o.GetAnnotations(), n.GetAnnotations())
		},
	}
}
