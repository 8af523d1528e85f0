package main

import (
	"context"
	"fmt"

	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	eventsv1client "k8s.io/client-go/kubernetes/typed/events/v1"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
)

var (
	rolloutsResource = v1.GroupVersion.WithResource("firmwarerollouts")
	fleetsResource   = v1.GroupVersion.WithResource("devicefleets")
)

// userAgent names the plugin in the apiserver's audit log.
const userAgent = "kubectl-herald"

// kubeClients reach the apiserver with the user's kubeconfig: Herald's
// objects through the dynamic client (merge patches are then exactly what
// kubectl patch sends), events and Secrets through the typed one.
type kubeClients struct {
	namespace string
	dynamic   dynamic.Interface
	core      corev1client.CoreV1Interface
	events    eventsv1client.EventsV1Interface
}

// connect builds the clients from the kubeconfig flags, once.
func (a *app) connect() (*kubeClients, error) {
	if a.kube != nil {
		return a.kube, nil
	}
	cfg, err := a.flags.ToRESTConfig()
	if err != nil {
		return nil, err
	}
	cfg.UserAgent = userAgent
	ns, _, err := a.flags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	// Only the two typed clients it uses: the whole clientset would add
	// some 17 MB to the plugin.
	core, err := corev1client.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	events, err := eventsv1client.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	a.kube = &kubeClients{namespace: ns, dynamic: dyn, core: core, events: events}
	return a.kube, nil
}

// userError is an API error said in the user's words; it unwraps to the
// apiserver's error, so apierrors' checks still see through it.
type userError struct {
	msg string
	err error
}

func (e *userError) Error() string { return e.msg }
func (e *userError) Unwrap() error { return e.err }

// apiError says what failed on which object and, for a refusal, what to
// ask for.
func apiError(err error, verb, kind, namespace, name string) error {
	switch {
	case apierrors.IsNotFound(err):
		return &userError{fmt.Sprintf("%s %s/%s not found", kind, namespace, name), err}
	case apierrors.IsForbidden(err):
		return &userError{fmt.Sprintf("cannot %s %s %s/%s: forbidden; ask for %s on %ss in namespace %s", verb, kind, namespace, name, verb, kind, namespace), err}
	}
	return fmt.Errorf("%s %s %s/%s: %w", verb, kind, namespace, name, err)
}

func fromUnstructured[T any](u *unstructured.Unstructured) (*T, error) {
	var out T
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &out); err != nil {
		return nil, fmt.Errorf("decode %s %s: %w", u.GetKind(), u.GetName(), err)
	}
	return &out, nil
}

func (k *kubeClients) getRollout(ctx context.Context, name string) (*v1.FirmwareRollout, error) {
	u, err := k.dynamic.Resource(rolloutsResource).Namespace(k.namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, apiError(err, "get", "firmwarerollout", k.namespace, name)
	}
	return fromUnstructured[v1.FirmwareRollout](u)
}

func (k *kubeClients) getFleet(ctx context.Context, name string) (*v1.DeviceFleet, error) {
	u, err := k.dynamic.Resource(fleetsResource).Namespace(k.namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, apiError(err, "get", "devicefleet", k.namespace, name)
	}
	return fromUnstructured[v1.DeviceFleet](u)
}

// patchRollout sends a JSON merge patch to the rollout's spec.
func (k *kubeClients) patchRollout(ctx context.Context, name string, body []byte) (*v1.FirmwareRollout, error) {
	u, err := k.dynamic.Resource(rolloutsResource).Namespace(k.namespace).Patch(ctx, name, types.MergePatchType, body,
		metav1.PatchOptions{FieldManager: userAgent})
	if err != nil {
		if apierrors.IsConflict(err) {
			return nil, err // the caller retries on the current object
		}
		return nil, apiError(err, "patch", "firmwarerollout", k.namespace, name)
	}
	return fromUnstructured[v1.FirmwareRollout](u)
}

// watchRollout watches the one rollout from resourceVersion on.
func (k *kubeClients) watchRollout(ctx context.Context, name, resourceVersion string) (watch.Interface, error) {
	return k.dynamic.Resource(rolloutsResource).Namespace(k.namespace).Watch(ctx, metav1.ListOptions{
		FieldSelector:       fields.OneTermEqualSelector("metadata.name", name).String(),
		ResourceVersion:     resourceVersion,
		AllowWatchBookmarks: true,
	})
}

// eventsSelector selects the events regarding the object with uid, so a
// deleted and recreated rollout of the same name does not inherit the old
// one's events.
func eventsSelector(uid types.UID) string {
	return fields.OneTermEqualSelector("regarding.uid", string(uid)).String()
}

// listEvents lists the events.k8s.io/v1 events regarding the rollout, and
// the list's resourceVersion to watch from.
func (k *kubeClients) listEvents(ctx context.Context, ro *v1.FirmwareRollout) ([]eventsv1.Event, string, error) {
	list, err := k.events.Events(ro.Namespace).List(ctx, metav1.ListOptions{FieldSelector: eventsSelector(ro.UID)})
	if err != nil {
		return nil, "", err
	}
	return list.Items, list.ResourceVersion, nil
}

func (k *kubeClients) watchEvents(ctx context.Context, ro *v1.FirmwareRollout, resourceVersion string) (watch.Interface, error) {
	return k.events.Events(ro.Namespace).Watch(ctx, metav1.ListOptions{
		FieldSelector:       eventsSelector(ro.UID),
		ResourceVersion:     resourceVersion,
		AllowWatchBookmarks: true,
	})
}

// eventsError words a failure to read events; the view shows it in place
// of the events, since the rest of the view does not need them.
func eventsError(err error) string {
	if apierrors.IsForbidden(err) {
		return "cannot list events: forbidden; ask for list and watch on events.k8s.io events"
	}
	return "cannot list events: " + err.Error()
}
