package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/internal/testenv"
)

// The integration tests share one apiserver, started by the first test
// that needs it, so that the golden tests run without one. No operator
// runs: the tests write status themselves, as the operator would.
var stack struct {
	once sync.Once
	err  error
	dir  string
	cp   *testenv.ControlPlane
	// kubeconfig is an administrator's kubeconfig file for the plugin.
	kubeconfig string
	k8s        client.Client
}

func TestMain(m *testing.M) {
	code := m.Run()
	if stack.cp != nil {
		if err := stack.cp.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop control plane:", err)
		}
	}
	if stack.dir != "" {
		os.RemoveAll(stack.dir)
	}
	os.Exit(code)
}

// apiserver starts the shared control plane on first use.
func apiserver(t *testing.T) client.Client {
	t.Helper()
	stack.once.Do(func() { stack.err = startStack() })
	if stack.err != nil {
		t.Fatal(stack.err)
	}
	return stack.k8s
}

func startStack() error {
	var err error
	if stack.dir, err = os.MkdirTemp("", "kubectl-herald-test-"); err != nil {
		return err
	}
	if stack.cp, err = testenv.StartControlPlane(); err != nil {
		return err
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := v1.AddToScheme(scheme); err != nil {
		return err
	}
	if stack.k8s, err = client.New(stack.cp.Config, client.Options{Scheme: scheme}); err != nil {
		return err
	}
	rc := stack.cp.Config
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: rc.Host, CertificateAuthorityData: rc.CAData}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: rc.CertData, ClientKeyData: rc.KeyData, Token: rc.BearerToken}
	kc.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "admin", Namespace: "default"}
	kc.CurrentContext = "envtest"
	stack.kubeconfig = filepath.Join(stack.dir, "kubeconfig")
	return clientcmd.WriteToFile(*kc, stack.kubeconfig)
}

// newNamespace creates a namespace named after the test.
func newNamespace(t *testing.T) string {
	t.Helper()
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(name) > 50 {
		name = name[:50]
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := apiserver(t).Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return name
}

// createRollout creates a fleet and a three-wave rollout of it, the last
// two waves gated, and returns the rollout as the apiserver stored it.
func createRollout(t *testing.T, ns string, broker v1.BrokerSpec) *v1.FirmwareRollout {
	t.Helper()
	ctx := context.Background()
	k := apiserver(t)
	fleet := &v1.DeviceFleet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sensors"},
		Spec:       v1.DeviceFleetSpec{Broker: broker, TopicRoot: "factory-7/sensors"},
	}
	if err := k.Create(ctx, fleet); err != nil {
		t.Fatal(err)
	}
	ro := &v1.FirmwareRollout{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sensor-2.1.0"},
		Spec: v1.FirmwareRolloutSpec{
			FleetRef: corev1.LocalObjectReference{Name: "sensors"},
			Firmware: v1.FirmwareSpec{
				Version: "2.1.0", URL: "https://firmware.example/sensor-2.1.0.bin",
				SHA256: strings.Repeat("ab", 32), Size: 1 << 20, Models: []string{"sensor-a"},
			},
			Strategy: v1.RolloutStrategy{Waves: []v1.Wave{
				{Percent: ptr.To[int32](10)},
				{Percent: ptr.To[int32](50), RequireApproval: true},
				{Percent: ptr.To[int32](100), RequireApproval: true},
			}},
		},
	}
	if err := k.Create(ctx, ro); err != nil {
		t.Fatal(err)
	}
	return ro
}

// setStatus writes a rollout's status as the operator would.
func setStatus(t *testing.T, ns, name string, change func(st *v1.FirmwareRolloutStatus)) *v1.FirmwareRollout {
	t.Helper()
	ctx := context.Background()
	var ro v1.FirmwareRollout
	if err := apiserver(t).Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &ro); err != nil {
		t.Fatal(err)
	}
	change(&ro.Status)
	if err := apiserver(t).Status().Update(ctx, &ro); err != nil {
		t.Fatal(err)
	}
	return &ro
}

func getRollout(t *testing.T, ns, name string) *v1.FirmwareRollout {
	t.Helper()
	var ro v1.FirmwareRollout
	if err := apiserver(t).Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &ro); err != nil {
		t.Fatal(err)
	}
	return &ro
}

// output is a buffer that commands write to while a test reads it, and
// that tells the test of every write, so that the test waits for what it
// expects to be printed rather than for a while.
type output struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	written chan struct{}
}

func newOutput() *output { return &output{written: make(chan struct{}, 1)} }

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	n, err := o.buf.Write(p)
	select {
	case o.written <- struct{}{}:
	default:
	}
	return n, err
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// waitFor waits until the output holds want, at most timeout, which only
// bounds a failing test.
func (o *output) waitFor(t *testing.T, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for !strings.Contains(o.String(), want) {
		select {
		case <-o.written:
		case <-deadline.C:
			t.Fatalf("output never showed %q; it is:\n%s", want, o.String())
		}
	}
}

// plugin is one run of the plugin in this process.
type plugin struct {
	app    *app
	stdout *output
	stderr *output
}

// newPlugin prepares a run against the test apiserver, in namespace ns,
// with stdin and the terminal flags of a script unless changed.
func newPlugin(t *testing.T) *plugin {
	apiserver(t)
	p := &plugin{stdout: newOutput(), stderr: newOutput()}
	p.app = &app{in: strings.NewReader(""), out: p.stdout, errOut: p.stderr, now: time.Now}
	return p
}

// run runs one command line and returns its stdout and error.
func (p *plugin) run(ctx context.Context, ns string, args ...string) (string, error) {
	root := newRootCommand(p.app)
	root.SetArgs(append([]string{"--kubeconfig", stack.kubeconfig, "-n", ns}, args...))
	err := root.ExecuteContext(ctx)
	return p.stdout.String(), err
}

// runPlugin runs one command line in a fresh plugin.
func runPlugin(t *testing.T, ns string, args ...string) (string, error) {
	t.Helper()
	return newPlugin(t).run(context.Background(), ns, args...)
}
