package helm

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/internal/testenv"
)

// TestWatchNamespaces runs the manager binary main.go builds with the
// arguments the chart's Deployment gives it for watchNamespaces, as the
// chart's ServiceAccount with only the chart's RBAC (a Role in each watched
// namespace, nothing cluster-wide). A fleet and rollout in a watched
// namespace are served: the fleet's Secret is read (and found missing, not
// forbidden), status and the finalizer are written. Those in a namespace
// it does not watch, created first, stay untouched, and the manager is
// refused nothing.
//
// It has an apiserver of its own: the package's in-process manager watches
// every namespace and would serve the unwatched fleet itself.
func TestWatchNamespaces(t *testing.T) {
	helm := helmBinary(t)
	if _, err := testenv.AssetsDir(); err != nil {
		missingTool(t, "%v", err)
	}
	tc := releaseNamed(t, "watch namespaces")
	watched, unwatched := tc.watch[0], "team-other"

	cp, err := testenv.StartControlPlane()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cp.Stop(); err != nil {
			t.Errorf("stop control plane: %v", err)
		}
	})
	k := newKubectl(t, cp)
	objs := render(t, helm, tc.rel)
	for _, ns := range namespaces(objs) {
		k.ensureNamespace(t, ns)
	}
	k.apply(t, objs)
	var dep appsv1.Deployment
	convert(t, only(t, objs, "Deployment"), &dep)

	dir := t.TempDir()
	bin := buildManager(t, dir)
	kubeconfig := filepath.Join(dir, "manager.kubeconfig")
	cfg := kubeconfigFor(cp.Config)
	sa := fmt.Sprintf("system:serviceaccount:%s:%s", tc.rel.namespace, dep.Spec.Template.Spec.ServiceAccountName)
	cfg.AuthInfos["admin"].Impersonate = sa
	cfg.AuthInfos["admin"].ImpersonateGroups = []string{"system:serviceaccounts", "system:serviceaccounts:" + tc.rel.namespace, "system:authenticated"}
	if err := clientcmd.WriteToFile(cfg, kubeconfig); err != nil {
		t.Fatal(err)
	}
	probe, err := testenv.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	args := managerArgs(t, &dep, probe)
	if !slices.Contains(args, "--watch-namespace=team-a,team-b") {
		t.Fatalf("the chart's manager arguments %q do not name the watched namespaces", args)
	}
	mgr := startBinary(t, bin, []string{"KUBECONFIG=" + kubeconfig}, args...)
	mgr.waitReady(t, "http://"+probe+"/readyz")

	// The unwatched namespace's objects come first: a manager that
	// watched it would meet them first too.
	createFleetAndRollout(t, k, unwatched)
	createFleetAndRollout(t, k, watched)

	k8s := adminClient(t, cp)
	ctx := context.Background()
	mgr.eventually(t, 60*time.Second, func() error {
		var f v1.DeviceFleet
		if err := k8s.Get(ctx, types.NamespacedName{Namespace: watched, Name: "sensors"}, &f); err != nil {
			return err
		}
		ready := meta.FindStatusCondition(f.Status.Conditions, v1.ConditionReady)
		switch {
		case ready == nil:
			return fmt.Errorf("fleet %s/sensors has no Ready condition yet", watched)
		case ready.Reason != v1.ReasonInvalidCredentials || !strings.Contains(ready.Message, "not found"):
			return fmt.Errorf("fleet %s/sensors Ready=%s %s: %q; want InvalidCredentials for the missing Secret", watched, ready.Status, ready.Reason, ready.Message)
		}
		return nil
	})
	mgr.eventually(t, 60*time.Second, func() error {
		var ro v1.FirmwareRollout
		if err := k8s.Get(ctx, types.NamespacedName{Namespace: watched, Name: "th-sensor-2.1.0"}, &ro); err != nil {
			return err
		}
		if len(ro.Finalizers) == 0 || ro.Status.ObservedGeneration != ro.Generation {
			return fmt.Errorf("rollout %s/th-sensor-2.1.0 not reconciled yet: finalizers %v, observed generation %d of %d",
				watched, ro.Finalizers, ro.Status.ObservedGeneration, ro.Generation)
		}
		return nil
	})

	// Created before the served ones, the others would have been served
	// by now; they must stay so for a while longer too.
	untouched := func() error {
		var f v1.DeviceFleet
		if err := k8s.Get(ctx, types.NamespacedName{Namespace: unwatched, Name: "sensors"}, &f); err != nil {
			return err
		}
		var ro v1.FirmwareRollout
		if err := k8s.Get(ctx, types.NamespacedName{Namespace: unwatched, Name: "th-sensor-2.1.0"}, &ro); err != nil {
			return err
		}
		if len(f.Status.Conditions) > 0 || len(ro.Finalizers) > 0 || ro.Status.Phase != "" {
			return fmt.Errorf("the manager served %s, which it does not watch: fleet conditions %+v, rollout finalizers %v, phase %q",
				unwatched, f.Status.Conditions, ro.Finalizers, ro.Status.Phase)
		}
		return nil
	}
	mgr.consistently(t, 3*time.Second, untouched)
	if log := mgr.log.String(); strings.Contains(log, "forbidden") || strings.Contains(log, unwatched) {
		t.Errorf("the manager was refused something with the chart's namespaced RBAC, or looked at %s:\n%s", unwatched, log)
	}
}

// managerArgs are the Deployment's arguments for the manager, adapted to a
// process on this machine: no metrics server, the health probe on probe,
// and no leader election, which needs to know its namespace from inside a
// pod (TestManagerWorksWithChartRBAC checks the chart's leader election
// rights).
func managerArgs(t testing.TB, dep *appsv1.Deployment, probe string) []string {
	t.Helper()
	var args []string
	for _, a := range managerContainer(t, dep).Args {
		switch {
		case a == "--leader-elect", strings.HasPrefix(a, "--metrics-secure="):
		case strings.HasPrefix(a, "--metrics-bind-address="):
			args = append(args, "--metrics-bind-address=0")
		case strings.HasPrefix(a, "--health-probe-bind-address="):
			args = append(args, "--health-probe-bind-address="+probe)
		default:
			args = append(args, a)
		}
	}
	return args
}

// buildManager builds main.go's manager into dir.
func buildManager(t testing.TB, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "manager")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = repoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build the manager: %v\n%s", err, out)
	}
	return bin
}

// binary is a program a test runs, its output kept for failure reports.
type binary struct {
	cmd  *exec.Cmd
	log  *lockedBuffer
	done chan struct{} // closed once it has exited
	err  error         // Wait's result, valid once done is closed
}

// startBinary starts bin with env added to the test's environment; the
// test's cleanup stops it with SIGTERM, as a pod would be stopped.
func startBinary(t testing.TB, bin string, env []string, args ...string) *binary {
	t.Helper()
	b := &binary{cmd: exec.Command(bin, args...), log: &lockedBuffer{}, done: make(chan struct{})}
	b.cmd.Env = append(os.Environ(), env...)
	b.cmd.Stdout, b.cmd.Stderr = b.log, b.log
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		b.err = b.cmd.Wait()
		close(b.done)
	}()
	t.Cleanup(func() {
		_ = b.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-b.done:
		case <-time.After(20 * time.Second):
			_ = b.cmd.Process.Kill()
			<-b.done
			t.Errorf("%s did not stop within 20s of SIGTERM:\n%s", filepath.Base(bin), b.log.tail(20))
		}
	})
	return b
}

// exited describes how the binary ended, once it has.
func (b *binary) exited() error {
	select {
	case <-b.done:
		return fmt.Errorf("it exited (%v):\n%s", b.err, b.log.tail(40))
	default:
		return nil
	}
}

// waitReady waits until url answers 200.
func (b *binary) waitReady(t testing.TB, url string) {
	t.Helper()
	b.eventually(t, 60*time.Second, func() error {
		resp, err := http.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", url, resp.Status)
		}
		return nil
	})
}

// eventually polls check until it returns nil, failing the test with its
// last error and the binary's log after timeout, or at once when the
// binary has exited.
func (b *binary) eventually(t testing.TB, timeout time.Duration, check func() error) {
	t.Helper()
	poll(t, timeout, func() error {
		if err := b.exited(); err != nil {
			t.Fatal(err)
		}
		return check()
	}, b.log)
}

// consistently fails the test, with the binary's log, as soon as check
// returns an error during d.
func (b *binary) consistently(t testing.TB, d time.Duration, check func() error) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if err := check(); err != nil {
			t.Fatalf("%v\nlog:\n%s", err, b.log.tail(40))
		}
	}
}

// adminClient is an administrator's client for cp, with Herald's types.
func adminClient(t testing.TB, cp *testenv.ControlPlane) client.Client {
	t.Helper()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	c, err := client.New(cp.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
