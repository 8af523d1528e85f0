package controllers

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/internal/brokerconn"
	"github.com/heraldiot/herald/internal/fleet"
)

// +kubebuilder:rbac:groups=herald.dev,resources=devicefleets,verbs=get;list;watch
// +kubebuilder:rbac:groups=herald.dev,resources=devicefleets/status,verbs=get;update;patch
// Secrets are read one by one, uncached, and only those a fleet names in
// its own namespace: the manager never lists or caches Secrets.
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// histogramSize bounds the version and model histograms in status.
const histogramSize = 10

// Secrets are not watched (that would take list and watch on every Secret
// in the cluster), so a fleet's are read again this often, and sooner
// while one is missing.
const (
	secretRecheck        = time.Minute
	missingSecretRecheck = 10 * time.Second
)

// DeviceFleetReconciler keeps a broker session per DeviceFleet and
// reports the fleet it sees in status.
type DeviceFleetReconciler struct {
	client.Client
	// Secrets reads Secrets without a cache (the manager's APIReader).
	Secrets  client.Reader
	Sessions *fleet.Manager
	Recorder events.EventRecorder
	Metrics  *Metrics
	// Now is the clock (tests may replace it).
	Now func() time.Time

	mu      sync.Mutex
	configs map[types.NamespacedName]resolvedConfig
}

// resolvedConfig is a fleet's broker settings as last read, Secrets and all.
type resolvedConfig struct {
	generation int64
	readAt     time.Time
	cfg        fleet.Config
	err        error
}

// Reconcile ensures the fleet's session runs with its current settings and
// summarises the fleet.
func (r *DeviceFleetReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := ctrl.LoggerFrom(ctx)
	var f v1.DeviceFleet
	if err := r.Get(ctx, req.NamespacedName, &f); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(req.NamespacedName)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if !f.DeletionTimestamp.IsZero() {
		r.forget(req.NamespacedName)
		return ctrl.Result{}, nil
	}
	before := f.Status.DeepCopy()
	defer func() {
		if equality.Semantic.DeepEqual(before, &f.Status) {
			return
		}
		if err := r.Status().Update(ctx, &f); err != nil && !apierrors.IsConflict(err) {
			log.Error(err, "updating status")
		}
	}()
	f.Status.ObservedGeneration = f.Generation

	cfg, recheck, err := r.config(ctx, &f)
	if err != nil {
		r.setReady(&f, false, v1.ReasonInvalidCredentials, err.Error())
		setCondition(&f.Status.Conditions, f.Generation, v1.ConditionBrokerConnected, metav1.ConditionFalse, v1.ReasonInvalidCredentials, err.Error())
		setAbnormal(&f.Status.Conditions, f.Generation, v1.ConditionStalled, true, v1.ReasonInvalidCredentials, err.Error())
		return ctrl.Result{RequeueAfter: recheck}, nil
	}
	if other, err := r.clientIDConflict(ctx, &f, cfg); err != nil {
		return ctrl.Result{}, err
	} else if other != "" {
		// The older fleet keeps the ID; this one must not connect, or the
		// broker would hand the session back and forth between them.
		r.Sessions.Remove(req.NamespacedName)
		msg := fmt.Sprintf("DeviceFleet %s already uses MQTT client ID %q on this broker; set a different spec.broker.clientID", other, cfg.ClientID)
		r.setReady(&f, false, v1.ReasonClientIDConflict, msg)
		setCondition(&f.Status.Conditions, f.Generation, v1.ConditionBrokerConnected, metav1.ConditionFalse, v1.ReasonClientIDConflict, msg)
		setAbnormal(&f.Status.Conditions, f.Generation, v1.ConditionStalled, true, v1.ReasonClientIDConflict, msg)
		setAbnormal(&f.Status.Conditions, f.Generation, v1.ConditionReconciling, false, "", "")
		return ctrl.Result{}, nil
	}
	setAbnormal(&f.Status.Conditions, f.Generation, v1.ConditionStalled, false, "", "")
	s, err := r.Sessions.Ensure(req.NamespacedName, cfg)
	if err != nil {
		return ctrl.Result{}, err
	}
	r.summarise(&f, s)
	return ctrl.Result{RequeueAfter: recheck}, nil
}

// forget stops the session of a fleet that is gone.
func (r *DeviceFleetReconciler) forget(key types.NamespacedName) {
	r.Sessions.Remove(key)
	r.Metrics.forgetFleet(key)
	r.mu.Lock()
	delete(r.configs, key)
	r.mu.Unlock()
}

// config returns the fleet's broker settings, reading its Secrets again
// when the spec changed or the last read is older than secretRecheck
// (missingSecretRecheck after a failure), and when to check again; zero
// means the fleet references no Secret.
func (r *DeviceFleetReconciler) config(ctx context.Context, f *v1.DeviceFleet) (fleet.Config, time.Duration, error) {
	key := client.ObjectKeyFromObject(f)
	b := f.Spec.Broker
	usesSecrets := brokerconn.UsesSecrets(&b)
	recheck := time.Duration(0)
	if usesSecrets {
		recheck = secretRecheck
	}
	now := r.Now()
	r.mu.Lock()
	rc, ok := r.configs[key]
	r.mu.Unlock()
	if ok && rc.generation == f.Generation {
		wait := secretRecheck
		if rc.err != nil {
			wait = missingSecretRecheck
		}
		if !usesSecrets || now.Sub(rc.readAt) < wait {
			if rc.err != nil {
				return rc.cfg, missingSecretRecheck, rc.err
			}
			return rc.cfg, recheck, nil
		}
	}
	cfg, err := r.brokerConfig(ctx, f)
	r.mu.Lock()
	if r.configs == nil {
		r.configs = map[types.NamespacedName]resolvedConfig{}
	}
	r.configs[key] = resolvedConfig{generation: f.Generation, readAt: now, cfg: cfg, err: err}
	r.mu.Unlock()
	if err != nil {
		return cfg, missingSecretRecheck, err
	}
	return cfg, recheck, nil
}

// clientIDConflict returns the older fleet (namespace/name) that uses the
// same client ID on a broker URL this fleet uses too, or "".
func (r *DeviceFleetReconciler) clientIDConflict(ctx context.Context, f *v1.DeviceFleet, cfg fleet.Config) (string, error) {
	if f.Spec.Broker.ClientID == "" {
		return "", nil // defaults are unique per fleet
	}
	var list v1.DeviceFleetList
	if err := r.List(ctx, &list, client.MatchingFields{clientIDIndex: f.Spec.Broker.ClientID}); err != nil {
		return "", err
	}
	for i := range list.Items {
		o := &list.Items[i]
		if o.UID == f.UID || !o.DeletionTimestamp.IsZero() || !slices.ContainsFunc(o.Spec.Broker.URLs, func(u string) bool { return slices.Contains(cfg.URLs, u) }) {
			continue
		}
		older := o.CreationTimestamp.Before(&f.CreationTimestamp) ||
			(o.CreationTimestamp.Equal(&f.CreationTimestamp) && o.Namespace+"/"+o.Name < f.Namespace+"/"+f.Name)
		if older {
			return o.Namespace + "/" + o.Name, nil
		}
	}
	return "", nil
}

func (r *DeviceFleetReconciler) summarise(f *v1.DeviceFleet, s *fleet.Session) {
	up, connErr := s.Connected()
	synced, syncedAt := s.Synced()
	// A session that has never been up did not lose anything: after a
	// restart the condition still says True from the last manager.
	wasUp := s.HasConnected() && apimeta.IsStatusConditionTrue(f.Status.Conditions, v1.ConditionBrokerConnected)
	switch {
	case up:
		setCondition(&f.Status.Conditions, f.Generation, v1.ConditionBrokerConnected, metav1.ConditionTrue, v1.ReasonConnected, "connected to the broker")
	default:
		msg := "connecting to the broker"
		reason := v1.ReasonConnecting
		if connErr != nil {
			msg, reason = connErr.Error(), v1.ReasonConnectFailed
		}
		setCondition(&f.Status.Conditions, f.Generation, v1.ConditionBrokerConnected, metav1.ConditionFalse, reason, msg)
		if wasUp {
			r.Recorder.Eventf(f, nil, corev1.EventTypeWarning, "BrokerDisconnected", "Connect", "lost the broker connection: %s", msg)
		}
	}
	switch {
	case up && synced:
		r.setReady(f, true, v1.ReasonSynced, "device state rebuilt from the broker's retained messages")
		setAbnormal(&f.Status.Conditions, f.Generation, v1.ConditionReconciling, false, "", "")
		if f.Status.LastSyncTime == nil || !f.Status.LastSyncTime.Time.Equal(syncedAt.Truncate(time.Second)) {
			t := metav1.NewTime(syncedAt.Truncate(time.Second))
			f.Status.LastSyncTime = &t
		}
	case up && s.SyncError() != nil:
		se := s.SyncError()
		r.setReady(f, false, se.Reason, se.Message)
		setAbnormal(&f.Status.Conditions, f.Generation, v1.ConditionReconciling, true, se.Reason, se.Message)
	case up:
		r.setReady(f, false, v1.ReasonResyncing, "rebuilding the device state from the broker's retained messages")
		setAbnormal(&f.Status.Conditions, f.Generation, v1.ConditionReconciling, true, v1.ReasonResyncing, "rebuilding the device state from the broker's retained messages")
	default:
		c := apimeta.FindStatusCondition(f.Status.Conditions, v1.ConditionBrokerConnected)
		r.setReady(f, false, c.Reason, c.Message)
		setAbnormal(&f.Status.Conditions, f.Generation, v1.ConditionReconciling, true, c.Reason, c.Message)
	}
	sum := s.Summarize()
	r.Metrics.observeFleet(client.ObjectKeyFromObject(f), up && synced, sum, s.Repairs())
	r.deviceLimit(f, sum)
	if n := s.Repairs(); n > f.Status.ResyncRepairs {
		r.Recorder.Eventf(f, nil, corev1.EventTypeWarning, "ResyncRepaired", "Resync",
			"a re-sync found %d device records the live stream had missed: the broker dropped messages to Herald (see docs/operator.md, broker settings)", n-f.Status.ResyncRepairs)
		f.Status.ResyncRepairs = n
	}
	f.Status.Devices = v1.DeviceCounts{Known: int32(sum.Known), Online: int32(sum.Online), Offline: int32(sum.Offline)}
	f.Status.FirmwareVersions = topN(sum.Versions, histogramSize)
	f.Status.Models = topN(sum.Models, histogramSize)
	if sum.Malformed > f.Status.MalformedMessages {
		r.Recorder.Eventf(f, nil, corev1.EventTypeWarning, "MalformedMessages", "Parse",
			"%d device messages could not be used (see docs/protocol.md)", sum.Malformed-f.Status.MalformedMessages)
	}
	f.Status.MalformedMessages = sum.Malformed
}

// deviceLimit reports a fleet with more devices than it may track.
func (r *DeviceFleetReconciler) deviceLimit(f *v1.DeviceFleet, sum fleet.Summary) {
	f.Status.IgnoredDeviceMessages = sum.OverLimit
	was := apimeta.IsStatusConditionTrue(f.Status.Conditions, v1.ConditionDeviceLimitReached)
	if !sum.LimitReached() {
		setCondition(&f.Status.Conditions, f.Generation, v1.ConditionDeviceLimitReached, metav1.ConditionFalse, v1.ReasonWithinDeviceLimit,
			fmt.Sprintf("tracking %d devices of at most %d", sum.Tracked, sum.MaxDevices))
		return
	}
	msg := fmt.Sprintf("the broker holds more devices under the topic root than spec.maxDevices (%d): %d messages about further devices were ignored, and rollouts cannot see those devices; raise spec.maxDevices or move devices to another fleet",
		sum.MaxDevices, sum.OverLimit)
	setCondition(&f.Status.Conditions, f.Generation, v1.ConditionDeviceLimitReached, metav1.ConditionTrue, v1.ReasonDeviceLimitReached, msg)
	if !was {
		r.Recorder.Eventf(f, nil, corev1.EventTypeWarning, v1.ReasonDeviceLimitReached, "Track", "%s", msg)
	}
}

func (r *DeviceFleetReconciler) setReady(f *v1.DeviceFleet, ready bool, reason, msg string) {
	was := apimeta.FindStatusCondition(f.Status.Conditions, v1.ConditionReady)
	setCondition(&f.Status.Conditions, f.Generation, v1.ConditionReady, boolStatus(ready), reason, msg)
	if !ready && (was == nil || was.Status == metav1.ConditionTrue) && reason != v1.ReasonConnecting && reason != v1.ReasonConnected {
		r.Recorder.Eventf(f, nil, corev1.EventTypeWarning, reason, "Reconcile", "%s", msg)
	}
}

func topN(counts map[string]int, n int) []v1.ValueCount {
	out := make([]v1.ValueCount, 0, len(counts))
	for k, c := range counts {
		out = append(out, v1.ValueCount{Value: k, Count: int32(c)})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Value < out[j].Value
	})
	if len(out) > n {
		out = out[:n]
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// brokerConfig resolves the fleet's broker settings, reading credentials
// and TLS material from Secrets (brokerconn, shared with kubectl-herald).
// Secret contents are never logged.
func (r *DeviceFleetReconciler) brokerConfig(ctx context.Context, f *v1.DeviceFleet) (fleet.Config, error) {
	return resolveBrokerConfig(ctx, r.Secrets, f)
}

// resolveBrokerConfig is brokerConfig for any reader of Secrets (the
// standby's too).
func resolveBrokerConfig(ctx context.Context, secrets client.Reader, f *v1.DeviceFleet) (fleet.Config, error) {
	set, err := brokerconn.Resolve(f, func(name string) (*corev1.Secret, error) {
		var s corev1.Secret
		if err := secrets.Get(ctx, types.NamespacedName{Namespace: f.Namespace, Name: name}, &s); err != nil {
			return nil, err
		}
		return &s, nil
	})
	cfg := fleet.Config{
		URLs: set.URLs, Version: set.Version, ClientID: set.ClientID, KeepAlive: set.KeepAlive,
		Username: set.Username, Password: set.Password, TLS: set.TLS, TLSFingerprint: set.TLSFingerprint,
		TopicRoot:      f.Spec.TopicRoot,
		ResyncInterval: 10 * time.Minute,
	}
	if f.Spec.ResyncInterval != nil {
		cfg.ResyncInterval = f.Spec.ResyncInterval.Duration
	}
	if f.Spec.MaxDevices != nil {
		cfg.MaxDevices = int(*f.Spec.MaxDevices)
	}
	return cfg, err
}

// clientIDIndex indexes fleets by the client ID they set.
const clientIDIndex = "spec.broker.clientID"

// SetupWithManager registers the controller: fleets and the broker
// sessions' change notifications. Secrets are read, not watched.
func (r *DeviceFleetReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if r.Now == nil {
		r.Now = time.Now
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &v1.DeviceFleet{}, clientIDIndex, func(o client.Object) []string {
		if id := o.(*v1.DeviceFleet).Spec.Broker.ClientID; id != "" {
			return []string{id}
		}
		return nil
	}); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1.DeviceFleet{}).
		WatchesRawSource(source.Channel(r.Sessions.FleetEvents, &handler.EnqueueRequestForObject{})).
		Watches(&v1.DeviceFleet{}, handler.EnqueueRequestsFromMapFunc(r.fleetsSharingClientID)).
		Named("devicefleet").
		Complete(r)
}

// fleetsSharingClientID wakes the fleets that set the same client ID as o,
// so that one refused for a conflict connects once the other is gone.
func (r *DeviceFleetReconciler) fleetsSharingClientID(ctx context.Context, o client.Object) []reconcile.Request {
	id := o.(*v1.DeviceFleet).Spec.Broker.ClientID
	if id == "" {
		return nil
	}
	var list v1.DeviceFleetList
	if err := r.List(ctx, &list, client.MatchingFields{clientIDIndex: id}); err != nil {
		return nil
	}
	var out []reconcile.Request
	for i := range list.Items {
		if list.Items[i].UID != o.GetUID() {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
	}
	return out
}
