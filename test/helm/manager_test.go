package helm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/controllers"
	"github.com/heraldiot/herald/internal/testenv"
)

// leaderElectionID is main.go's.
const leaderElectionID = "herald-manager.herald.dev"

// running is the package's manager: Herald's controllers as main.go runs
// them, started by the first test that needs them and stopped in TestMain.
var running struct {
	once   sync.Once
	err    error
	cancel context.CancelFunc
	done   chan error

	// k8s is an administrator's client; collectors are what the
	// controllers registered for metrics; log is the manager's log.
	k8s        client.Client
	collectors *recordingRegisterer
	log        *lockedBuffer
}

// stopManager stops the package's manager, if one runs.
func stopManager() error {
	if running.cancel == nil {
		return nil
	}
	running.cancel()
	return <-running.done
}

// startManager runs Herald's controllers the way the chart's Deployment
// does: as the default release's ServiceAccount, so with exactly the RBAC
// the chart grants, electing a leader through a Lease in the release
// namespace, and registering Herald's metrics with controller-runtime's
// registry, the one the metrics endpoint serves.
func startManager(t testing.TB) {
	t.Helper()
	// Find the tools first: a skip inside once.Do would leave it done.
	helm, cp := helmBinary(t), controlPlane(t)
	running.once.Do(func() { running.err = installAndRun(helm, cp) })
	if running.err != nil {
		t.Fatal(running.err)
	}
}

// installAndRun applies the default release and runs the manager as its
// ServiceAccount.
func installAndRun(helm string, cp *testenv.ControlPlane) error {
	def := releases[0].rel
	objs, err := renderObjects(helm, def)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "herald-chart-manager-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	k, err := newKubectlIn(dir, cp)
	if err != nil {
		return err
	}
	if err := k.ensureNamespaceErr(def.namespace); err != nil {
		return err
	}
	if err := k.applyErr(objs); err != nil {
		return err
	}
	var sa string
	for _, o := range objs {
		if o.GetKind() == "Deployment" {
			sa, _, _ = unstructured.NestedString(o.Object, "spec", "template", "spec", "serviceAccountName")
		}
	}
	if sa == "" {
		return errors.New("the default release's Deployment names no ServiceAccount")
	}
	return runManager(cp.Config, def.namespace, sa)
}

func runManager(admin *rest.Config, namespace, serviceAccount string) error {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := v1.AddToScheme(scheme); err != nil {
		return err
	}
	k8s, err := client.New(admin, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	running.k8s = k8s
	running.log = &lockedBuffer{}
	ctrl.SetLogger(zap.New(zap.WriteTo(running.log)))

	cfg := rest.CopyConfig(admin)
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: fmt.Sprintf("system:serviceaccount:%s:%s", namespace, serviceAccount),
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"},
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        scheme,
		Metrics:                       metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress:        "0",
		LeaderElection:                true,
		LeaderElectionID:              leaderElectionID,
		LeaderElectionNamespace:       namespace,
		LeaderElectionReleaseOnCancel: true,
		// go test -count=2 runs the tests again in this process.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	running.collectors = &recordingRegisterer{Registerer: crmetrics.Registry}
	if err := controllers.Setup(ctx, mgr, controllers.Options{Registerer: running.collectors}); err != nil {
		cancel()
		return err
	}
	running.cancel, running.done = cancel, make(chan error, 1)
	go func() { running.done <- mgr.Start(ctx) }()
	select {
	case <-mgr.Elected():
		return nil
	case err := <-running.done:
		running.cancel = nil
		return fmt.Errorf("manager stopped before it was elected: %v\n%s", err, running.log.String())
	case <-time.After(60 * time.Second):
		return fmt.Errorf("manager not elected leader in 60s (leases in %s forbidden?):\n%s", namespace, running.log.String())
	}
}

// TestManagerWorksWithChartRBAC: a manager that has only the chart's RBAC
// becomes leader, reads a fleet's Secret (finding it missing, not
// forbidden), writes fleet and rollout status, adds the rollout's
// finalizer and records events, and logs no "forbidden" along the way.
func TestManagerWorksWithChartRBAC(t *testing.T) {
	startManager(t)
	k := newKubectl(t, controlPlane(t))
	ns := "rbac-check"
	createFleetAndRollout(t, k, ns)
	ctx := context.Background()

	eventually(t, 60*time.Second, func() error {
		var f v1.DeviceFleet
		if err := running.k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "sensors"}, &f); err != nil {
			return err
		}
		ready := meta.FindStatusCondition(f.Status.Conditions, v1.ConditionReady)
		switch {
		case ready == nil:
			return errors.New("fleet has no Ready condition yet")
		case ready.Reason != v1.ReasonInvalidCredentials || !strings.Contains(ready.Message, "not found"):
			return fmt.Errorf("fleet Ready=%s %s: %q; want InvalidCredentials for the missing Secret", ready.Status, ready.Reason, ready.Message)
		}
		return nil
	})
	eventually(t, 60*time.Second, func() error {
		var ro v1.FirmwareRollout
		if err := running.k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "th-sensor-2.1.0"}, &ro); err != nil {
			return err
		}
		switch {
		case len(ro.Finalizers) == 0:
			return errors.New("rollout has no finalizer yet")
		case ro.Status.ObservedGeneration != ro.Generation:
			return fmt.Errorf("rollout status observed generation %d of %d", ro.Status.ObservedGeneration, ro.Generation)
		}
		return nil
	})
	eventually(t, 60*time.Second, func() error {
		var events eventsv1.EventList
		if err := running.k8s.List(ctx, &events, client.InNamespace(ns)); err != nil {
			return err
		}
		for _, e := range events.Items {
			if e.Regarding.Kind == "DeviceFleet" && e.Reason == v1.ReasonInvalidCredentials {
				return nil
			}
		}
		return fmt.Errorf("no InvalidCredentials event for the fleet among %d events", len(events.Items))
	})
	if log := running.log.String(); strings.Contains(log, "forbidden") {
		t.Errorf("the manager was refused something with the chart's RBAC:\n%s", log)
	}
}

// createFleetAndRollout creates, in namespace ns, a fleet whose
// credentials Secret does not exist (so it never connects) and
// config/samples' rollout for it.
func createFleetAndRollout(t testing.TB, k *kubectl, ns string) {
	t.Helper()
	k.ensureNamespace(t, ns)
	fleet := fmt.Sprintf(`apiVersion: herald.dev/v1alpha1
kind: DeviceFleet
metadata:
  name: sensors
  namespace: %s
spec:
  broker:
    urls: [tcp://127.0.0.1:1]
    credentialsSecretRef: {name: missing-credentials}
  topicRoot: %s/sensors
`, ns, ns)
	if _, err := k.run([]byte(fleet), "apply", "--server-side", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	sample := filepath.Join(repoRoot(t), "config", "samples", "herald_v1alpha1_firmwarerollout.yaml")
	// The manager's finalizer update rewrites the durations ("15m" to
	// "15m0s") and so owns them: a second run (go test -count=2) takes
	// them back.
	if _, err := k.run(nil, "apply", "--server-side", "--force-conflicts", "-n", ns, "-f", sample); err != nil {
		t.Fatal(err)
	}
}

// eventually polls check until it returns nil, failing the test with its
// last error and the package manager's log after timeout.
func eventually(t testing.TB, timeout time.Duration, check func() error) {
	t.Helper()
	poll(t, timeout, check, running.log)
}

// poll polls check until it returns nil, failing the test with its last
// error and the end of log after timeout.
func poll(t testing.TB, timeout time.Duration, check func() error, log *lockedBuffer) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v\nlog:\n%s", timeout, err, log.tail(40))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// recordingRegisterer registers collectors with the registry it wraps and
// keeps them, so that a test can ask each for its descriptions: a metric
// vector shows in Gather only once one of its series exists, but it
// describes itself from the start.
type recordingRegisterer struct {
	prometheus.Registerer
	mu         sync.Mutex
	collectors []prometheus.Collector
}

// Register implements prometheus.Registerer.
func (r *recordingRegisterer) Register(c prometheus.Collector) error {
	if err := r.Registerer.Register(c); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.collectors = append(r.collectors, c)
	return nil
}

// MustRegister implements prometheus.Registerer.
func (r *recordingRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// registered returns the collectors registered so far.
func (r *recordingRegisterer) registered() []prometheus.Collector {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]prometheus.Collector(nil), r.collectors...)
}

// lockedBuffer is the manager's log, written by its goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	if b == nil {
		return ""
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// tail returns the last n lines.
func (b *lockedBuffer) tail(n int) string {
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
