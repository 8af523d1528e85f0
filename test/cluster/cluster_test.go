package cluster

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/internal/testenv"
)

// The cluster the tests run on and what they share, set by TestMain when
// HERALD_CLUSTER_DIR names a running cluster.
var env struct {
	// skip says why the tests cannot run here; empty when they can.
	skip string
	// root is the repository; dir the cluster's (bin/cluster).
	root, dir string
	// kubeconfig is the cluster administrator's; kubectl the one built
	// with the cluster's apiserver (bin/k8s).
	kubeconfig, kubectl string
	// nodeIP is the node's address: the apiserver's, the kubelet's, and
	// the broker's, which pods reach through their bridge's gateway.
	nodeIP string
	// sock is the node's containerd.
	sock string
	// img names the manager image; imageTar is the tarball it is in.
	img, imageTar string
	// fleetsim and helm are the host's binaries.
	fleetsim, helm string
	// client is the administrator's.
	client client.Client
	// broker is started by the first test that needs it, in brokerDir.
	broker    *testenv.Broker
	brokerDir string
}

// Timeouts for what waits on the cluster, generous enough for a machine
// three times slower than the 2-core one they were measured on.
const (
	// podsReady: a Deployment's pods from apply to Ready (about 5 s here).
	podsReady = 3 * time.Minute
	// fleetReady: fleetsim's devices online and learnt by the operator.
	fleetReady = 2 * time.Minute
	// rolloutDone: a three-wave rollout from one gate to its end (about
	// 15 s here).
	rolloutDone = 4 * time.Minute
	// deleted: an object with a finalizer the operator removes, or a
	// namespace with what it holds.
	deleted = 2 * time.Minute
)

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	if err := setup(); err != nil {
		fmt.Fprintln(os.Stderr, "cluster tier:", err)
		os.Exit(1)
	}
	code := m.Run()
	if env.broker != nil {
		if err := env.broker.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop mosquitto:", err)
			code = 1
		}
	}
	if env.brokerDir != "" {
		os.RemoveAll(env.brokerDir)
	}
	os.Exit(code)
}

// setup fills env. Without HERALD_CLUSTER_DIR it only records why the tests
// skip; with it, anything missing is an error, so that `make cluster-test`
// never passes by testing nothing.
func setup() error {
	env.dir = os.Getenv("HERALD_CLUSTER_DIR")
	if env.dir == "" {
		env.skip = "the cluster tier runs under `make cluster-test` (root: it starts a single-node cluster); " +
			"to run it against a cluster from `make cluster-up`, set HERALD_CLUSTER_DIR=bin/cluster"
		return nil
	}
	var err error
	if env.root, err = testenv.RepoRoot(); err != nil {
		return err
	}
	// go test runs in the package's directory; people name the cluster's
	// from the repository's.
	if !filepath.IsAbs(env.dir) {
		env.dir = filepath.Join(env.root, env.dir)
	}
	env.kubeconfig = filepath.Join(env.dir, "admin.kubeconfig")
	env.sock = filepath.Join(env.dir, "containerd", "containerd.sock")
	ip, err := os.ReadFile(filepath.Join(env.dir, "run", "node-ip"))
	if err != nil {
		return fmt.Errorf("HERALD_CLUSTER_DIR=%s is not a running cluster (make cluster-up): %w", env.dir, err)
	}
	env.nodeIP = strings.TrimSpace(string(ip))
	if net.ParseIP(env.nodeIP) == nil {
		return fmt.Errorf("%s/run/node-ip: %q is not an address", env.dir, env.nodeIP)
	}
	bin := filepath.Join(env.root, "bin")
	env.kubectl = orDefault(os.Getenv("HERALD_CLUSTER_KUBECTL"), filepath.Join(bin, "k8s", "kubectl"))
	env.img = orDefault(os.Getenv("HERALD_CLUSTER_IMG"), "ghcr.io/heraldiot/herald:dev")
	env.imageTar = orDefault(os.Getenv("HERALD_CLUSTER_IMAGE_TAR"), filepath.Join(bin, "herald-manager-image.tar"))
	env.fleetsim = orDefault(os.Getenv("HERALD_CLUSTER_FLEETSIM"), filepath.Join(bin, "fleetsim"))
	env.helm = os.Getenv("HERALD_HELM")
	for what, path := range map[string]string{
		"kubectl (make envtest-bin)":                 env.kubectl,
		"the manager image (make image-tar)":         env.imageTar,
		"fleetsim (make demo-bin)":                   env.fleetsim,
		"the cluster's kubeconfig (make cluster-up)": env.kubeconfig,
	} {
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	if _, err := testenv.MosquittoPath(); err != nil {
		return err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", env.kubeconfig)
	if err != nil {
		return err
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := v1.AddToScheme(scheme); err != nil {
		return err
	}
	env.client, err = client.New(cfg, client.Options{Scheme: scheme})
	return err
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// needCluster skips t unless the tests can run here.
func needCluster(t *testing.T) {
	t.Helper()
	if env.skip != "" {
		t.Skip(env.skip)
	}
}

// broker returns the package's mosquitto, started on first use on the
// node's address, where the host's fleetsim and the pods both reach it.
// Its retained messages outlive a test, so each test's fleet has a topic
// root of its own.
func broker(t *testing.T) *testenv.Broker {
	t.Helper()
	if env.broker == nil {
		// In the cluster's directory: a run cut short leaves it, and its
		// mosquitto, to cluster-down, which removes what names that directory.
		dir, err := os.MkdirTemp(env.dir, "broker-")
		if err != nil {
			t.Fatal(err)
		}
		env.brokerDir = dir
		b, err := testenv.NewBroker(dir, testenv.BrokerOptions{Host: env.nodeIP})
		if err != nil {
			t.Fatal(err)
		}
		env.broker = b
	}
	return env.broker
}

// kubectl runs the cluster's kubectl as its administrator, with stdin when
// not nil, and returns what it wrote to stdout; it fails t on error.
func kubectl(t *testing.T, stdin []byte, args ...string) string {
	t.Helper()
	out, err := kubectlErr(stdin, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func kubectlErr(stdin []byte, args ...string) (string, error) {
	cmd := exec.Command(env.kubectl, append([]string{"--kubeconfig", env.kubeconfig}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %w\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// run runs a command of the host in the repository, with the cluster's
// kubeconfig, and fails t unless it succeeds.
func run(t *testing.T, extraEnv []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = env.root
	cmd.Env = append(append(os.Environ(), "KUBECONFIG="+env.kubeconfig), extraEnv...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// poll calls check every 250 ms until it reports done, and fails t when
// timeout passes first, with what check last said about why it was not
// done. An error from check ends the wait at once.
func poll(t *testing.T, what string, timeout time.Duration, check func() (done bool, state string, err error)) {
	t.Helper()
	start := time.Now()
	for {
		done, state, err := check()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if done {
			return
		}
		if time.Since(start) > timeout {
			t.Fatalf("%s: not within %s; %s", what, timeout, state)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// apiTimeout bounds one call to the apiserver.
const apiTimeout = 30 * time.Second

// get reads one object, as the administrator.
func get(key client.ObjectKey, obj client.Object) error {
	c, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	return env.client.Get(c, key, obj)
}

// list lists objects, as the administrator.
func list(objs client.ObjectList, opts ...client.ListOption) error {
	c, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	return env.client.List(c, objs, opts...)
}

// createNamespace creates a namespace for t and deletes it, with what it
// holds, when t ends: the operator must still be running then to remove
// its finalizers, so callers register their own cleanups after this one.
func createNamespace(t *testing.T, name string) {
	t.Helper()
	kubectl(t, nil, "create", "namespace", name)
	t.Cleanup(func() {
		// Herald's objects first, while the operator can finalize them:
		// a namespace's deletion would otherwise wait for them.
		if _, err := kubectlErr(nil, "-n", name, "delete", "firmwarerollouts,devicefleets", "--all", "--ignore-not-found",
			"--timeout="+deleted.String()); err != nil {
			t.Errorf("delete Herald's objects in %s: %v", name, err)
		}
		if _, err := kubectlErr(nil, "delete", "namespace", name, "--ignore-not-found", "--timeout="+deleted.String()); err != nil {
			t.Errorf("delete namespace %s: %v", name, err)
		}
	})
}
