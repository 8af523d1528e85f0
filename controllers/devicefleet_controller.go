package controllers

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
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
	"github.com/heraldiot/herald/internal/fleet"
	"github.com/heraldiot/herald/mqtt"
)

// +kubebuilder:rbac:groups=herald.dev,resources=devicefleets,verbs=get;list;watch
// +kubebuilder:rbac:groups=herald.dev,resources=devicefleets/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// histogramSize bounds the version and model histograms in status.
const histogramSize = 10

// DeviceFleetReconciler keeps a broker session per DeviceFleet and
// reports the fleet it sees in status.
type DeviceFleetReconciler struct {
	client.Client
	Sessions *fleet.Manager
	Recorder events.EventRecorder
}

// Reconcile ensures the fleet's session runs with its current settings and
// summarises the fleet.
func (r *DeviceFleetReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := ctrl.LoggerFrom(ctx)
	var f v1.DeviceFleet
	if err := r.Get(ctx, req.NamespacedName, &f); err != nil {
		if apierrors.IsNotFound(err) {
			r.Sessions.Remove(req.NamespacedName)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if !f.DeletionTimestamp.IsZero() {
		r.Sessions.Remove(req.NamespacedName)
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

	cfg, err := r.brokerConfig(ctx, &f)
	if err != nil {
		r.setReady(&f, false, v1.ReasonInvalidCredentials, err.Error())
		setCondition(&f.Status.Conditions, f.Generation, v1.ConditionBrokerConnected, metav1.ConditionFalse, v1.ReasonInvalidCredentials, err.Error())
		setAbnormal(&f.Status.Conditions, f.Generation, v1.ConditionStalled, true, v1.ReasonInvalidCredentials, err.Error())
		// Secrets are watched; this is only a safety net.
		return ctrl.Result{RequeueAfter: time.Minute}, nil
	}
	setAbnormal(&f.Status.Conditions, f.Generation, v1.ConditionStalled, false, "", "")
	s, err := r.Sessions.Ensure(req.NamespacedName, cfg)
	if err != nil {
		return ctrl.Result{}, err
	}
	r.summarise(&f, s)
	return ctrl.Result{}, nil
}

func (r *DeviceFleetReconciler) summarise(f *v1.DeviceFleet, s *fleet.Session) {
	up, connErr := s.Connected()
	synced, syncedAt := s.Synced()
	wasUp := apimeta.IsStatusConditionTrue(f.Status.Conditions, v1.ConditionBrokerConnected)
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
	case up:
		r.setReady(f, false, v1.ReasonConnected, "replaying retained device messages")
		setAbnormal(&f.Status.Conditions, f.Generation, v1.ConditionReconciling, true, v1.ReasonConnected, "replaying retained device messages")
	default:
		c := apimeta.FindStatusCondition(f.Status.Conditions, v1.ConditionBrokerConnected)
		r.setReady(f, false, c.Reason, c.Message)
		setAbnormal(&f.Status.Conditions, f.Generation, v1.ConditionReconciling, true, c.Reason, c.Message)
	}
	sum := s.State.Summarize()
	f.Status.Devices = v1.DeviceCounts{Known: int32(sum.Known), Online: int32(sum.Online), Offline: int32(sum.Offline)}
	f.Status.FirmwareVersions = topN(sum.Versions, histogramSize)
	f.Status.Models = topN(sum.Models, histogramSize)
	if sum.Malformed > f.Status.MalformedMessages {
		r.Recorder.Eventf(f, nil, corev1.EventTypeWarning, "MalformedMessages", "Parse",
			"%d device messages could not be used (see docs/protocol.md)", sum.Malformed-f.Status.MalformedMessages)
	}
	f.Status.MalformedMessages = sum.Malformed
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
// and TLS material from Secrets. Secret contents are never logged.
func (r *DeviceFleetReconciler) brokerConfig(ctx context.Context, f *v1.DeviceFleet) (fleet.Config, error) {
	b := &f.Spec.Broker
	cfg := fleet.Config{
		URLs:      b.URLs,
		Version:   mqtt.V5,
		ClientID:  b.ClientID,
		KeepAlive: 30 * time.Second,
		TopicRoot: f.Spec.TopicRoot,
	}
	if b.ProtocolVersion == v1.ProtocolV311 {
		cfg.Version = mqtt.V311
	}
	if cfg.ClientID == "" {
		cfg.ClientID = fmt.Sprintf("herald-%s-%s", f.Namespace, f.Name)
	}
	if b.KeepAlive != nil {
		cfg.KeepAlive = b.KeepAlive.Duration
	}
	secret := func(name string) (*corev1.Secret, error) {
		var s corev1.Secret
		if err := r.Get(ctx, types.NamespacedName{Namespace: f.Namespace, Name: name}, &s); err != nil {
			return nil, fmt.Errorf("secret %q: %w", name, err)
		}
		return &s, nil
	}
	if ref := b.CredentialsSecretRef; ref != nil {
		s, err := secret(ref.Name)
		if err != nil {
			return cfg, err
		}
		user, ok := s.Data["username"]
		if !ok {
			return cfg, fmt.Errorf("secret %q has no key \"username\"", ref.Name)
		}
		cfg.Username, cfg.Password = string(user), s.Data["password"]
	}
	if t := b.TLS; t != nil {
		tc := &tls.Config{ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify, MinVersion: tls.VersionTLS12}
		h := sha256.New()
		if ref := t.CASecretRef; ref != nil {
			s, err := secret(ref.Name)
			if err != nil {
				return cfg, err
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(s.Data["ca.crt"]) {
				return cfg, fmt.Errorf("secret %q: key \"ca.crt\" holds no PEM certificate", ref.Name)
			}
			tc.RootCAs = pool
			h.Write(s.Data["ca.crt"])
		}
		if ref := t.ClientCertSecretRef; ref != nil {
			s, err := secret(ref.Name)
			if err != nil {
				return cfg, err
			}
			cert, err := tls.X509KeyPair(s.Data["tls.crt"], s.Data["tls.key"])
			if err != nil {
				return cfg, fmt.Errorf("secret %q: tls.crt/tls.key: %w", ref.Name, errors.Unwrap(err))
			}
			tc.Certificates = []tls.Certificate{cert}
			h.Write(s.Data["tls.crt"])
			h.Write(s.Data["tls.key"])
		}
		fmt.Fprintf(h, "|%s|%t", t.ServerName, t.InsecureSkipVerify)
		cfg.TLS = tc
		cfg.TLSFingerprint = hex.EncodeToString(h.Sum(nil))
	}
	return cfg, nil
}

// SetupWithManager registers the controller: fleets, the Secrets they
// reference, and the broker sessions' change notifications.
func (r *DeviceFleetReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1.DeviceFleet{}).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.fleetsForSecret)).
		WatchesRawSource(source.Channel(r.Sessions.FleetEvents, &handler.EnqueueRequestForObject{})).
		Named("devicefleet").
		Complete(r)
}

func (r *DeviceFleetReconciler) fleetsForSecret(ctx context.Context, o client.Object) []reconcile.Request {
	var list v1.DeviceFleetList
	if err := r.List(ctx, &list, client.InNamespace(o.GetNamespace())); err != nil {
		return nil
	}
	var out []reconcile.Request
	for _, f := range list.Items {
		b := f.Spec.Broker
		refs := []*corev1.LocalObjectReference{b.CredentialsSecretRef}
		if b.TLS != nil {
			refs = append(refs, b.TLS.CASecretRef, b.TLS.ClientCertSecretRef)
		}
		for _, ref := range refs {
			if ref != nil && ref.Name == o.GetName() {
				out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&f)})
				break
			}
		}
	}
	return out
}
