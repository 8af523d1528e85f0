package controllers_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/controllers"
	"github.com/heraldiot/herald/internal/devicesim"
	"github.com/heraldiot/herald/internal/testenv"
	"github.com/heraldiot/herald/mqtt"
	"go.uber.org/zap/zapcore"
)

// The package shares one control plane and one broker; each test uses its
// own namespace and topic root, and can start and stop managers.
var (
	cp     *testenv.ControlPlane
	broker *testenv.Broker
	scheme = runtime.NewScheme()
	k8s    client.Client
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.Level(zapcore.Level(zapLevel()))))
	var err error
	if cp, err = testenv.StartControlPlane(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer cp.Stop()
	dir, err := os.MkdirTemp("", "herald-controllers-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if broker, err = testenv.NewBroker(dir, testenv.BrokerOptions{}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer broker.Stop()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1.AddToScheme} {
		if err := add(scheme); err != nil {
			panic(err)
		}
	}
	if k8s, err = client.New(cp.Config, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// zapLevel logs the controllers' info messages only with HERALD_TEST_DEBUG set.
func zapLevel() int8 {
	if os.Getenv("HERALD_TEST_DEBUG") != "" {
		return -1
	}
	return 2
}

// startManager runs the real controllers until stop is called (or the test ends).
func startManager(t testing.TB) (stop func()) {
	t.Helper()
	stop, _ = startManagerWithMetrics(t)
	return stop
}

// startManagerWithMetrics is startManager that also returns the registry
// holding Herald's metrics.
func startManagerWithMetrics(t testing.TB) (stop func(), reg *prometheus.Registry) {
	t.Helper()
	reg = prometheus.NewRegistry()
	mgr, err := ctrl.NewManager(cp.Config, ctrl.Options{
		Scheme:  scheme,
		Metrics: metricsserver.Options{BindAddress: "0"},
		// Tests start a manager each; their controllers share names.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := controllers.Setup(ctx, mgr, controllers.Options{EventInterval: 200 * time.Millisecond, Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	}
	t.Cleanup(stop)
	return stop, reg
}

// newNamespace creates a namespace for one test.
func newNamespace(t testing.TB) string {
	t.Helper()
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(name) > 50 {
		name = name[:50]
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	// envtest runs no namespace controller, so clear the test's objects
	// for later tests' managers not to pick them up. This runs after the
	// test's manager has stopped, so finalizers are lifted by hand.
	t.Cleanup(func() {
		ctx := context.Background()
		var ros v1.FirmwareRolloutList
		if err := k8s.List(ctx, &ros, client.InNamespace(name)); err == nil {
			for i := range ros.Items {
				ro := &ros.Items[i]
				ro.Finalizers = nil
				_ = k8s.Update(ctx, ro)
				_ = k8s.Delete(ctx, ro)
			}
		}
		_ = k8s.DeleteAllOf(ctx, &v1.DeviceFleet{}, client.InNamespace(name))
	})
	return name
}

// eventually polls cond until it holds; the condition observes the
// apiserver, whose state changes are what the test waits for.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		ok, detail := cond()
		if ok {
			return
		}
		last = detail
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last: %s", timeout, what, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func getRollout(t testing.TB, ns, name string) *v1.FirmwareRollout {
	t.Helper()
	var ro v1.FirmwareRollout
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &ro); err != nil {
		t.Fatal(err)
	}
	return &ro
}

// waitPhase waits until the rollout reaches phase and returns it.
func waitPhase(t testing.TB, ns, name string, phase v1.RolloutPhase, timeout time.Duration) *v1.FirmwareRollout {
	t.Helper()
	var ro *v1.FirmwareRollout
	eventually(t, timeout, fmt.Sprintf("rollout %s phase %s", name, phase), func() (bool, string) {
		ro = getRollout(t, ns, name)
		return ro.Status.Phase == phase, fmt.Sprintf("phase %s wave %d totals %+v message %q", ro.Status.Phase, ro.Status.CurrentWave, ro.Status.Totals, ro.Status.Message)
	})
	return ro
}

// simFleet starts n simulated devices under root.
func simFleet(t testing.TB, root string, n int, model, version string, b devicesim.Behavior, labels map[string]string) *devicesim.Fleet {
	t.Helper()
	return simFleetOn(t, broker.URL(), mqtt.V5, 32, root, n, model, version, b, labels)
}

// simFleetOn is simFleet on another broker, speaking v, starting at most
// parallel devices at once.
func simFleetOn(t testing.TB, url string, v mqtt.Version, parallel int, root string, n int, model, version string, b devicesim.Behavior, labels map[string]string) *devicesim.Fleet {
	t.Helper()
	f := &devicesim.Fleet{}
	for i := range n {
		d, err := devicesim.New(devicesim.Config{
			ID: fmt.Sprintf("%s-%04d", model, i), Model: model, FirmwareVersion: version, HardwareRevision: "r2",
			Labels: labels, Broker: url, Version: v, TopicRoot: root, Behavior: b,
		})
		if err != nil {
			t.Fatal(err)
		}
		f.Devices = append(f.Devices, d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := f.StartAll(ctx, parallel); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		f.StopAll(ctx)
	})
	return f
}

func createFleet(t testing.TB, ns, name, root string) *v1.DeviceFleet {
	t.Helper()
	f := &v1.DeviceFleet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1.DeviceFleetSpec{
			Broker:             v1.BrokerSpec{URLs: []string{broker.URL()}},
			TopicRoot:          root,
			OfflineGracePeriod: &metav1.Duration{Duration: time.Minute},
		},
	}
	if err := k8s.Create(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	return f
}

func patchRollout(t testing.TB, ro *v1.FirmwareRollout, mutate func(*v1.FirmwareRollout)) {
	t.Helper()
	update(t, func() *v1.FirmwareRollout { return getRollout(t, ro.Namespace, ro.Name) }, mutate)
}

// update applies mutate to the latest version of an object, retrying on
// conflicts with the controllers' own writes.
func update[T client.Object](t testing.TB, get func() T, mutate func(T)) {
	t.Helper()
	for range 10 {
		cur := get()
		mutate(cur)
		err := k8s.Update(context.Background(), cur)
		if err == nil {
			return
		}
		if !strings.Contains(err.Error(), "the object has been modified") {
			t.Fatal(err)
		}
	}
	t.Fatalf("could not update %T: conflicts", get())
}
