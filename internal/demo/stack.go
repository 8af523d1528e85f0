package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/internal/testenv"
	"github.com/heraldiot/herald/internal/view"
)

// Config says where a Stack finds what it runs and where it writes.
type Config struct {
	// Root is the repository: config/ and hack/demo/ are read from it.
	Root string
	// Dir receives the kubeconfigs, logs and generated manifests (bin/demo).
	Dir string
	// BinDir holds the manager and fleetsim binaries (bin).
	BinDir string
	// Assets holds kube-apiserver, etcd and kubectl (bin/k8s, see
	// testenv.AssetsDir).
	Assets string
	// Out receives the narration.
	Out io.Writer
	// BrokerOptions are mosquitto's options. The zero value is what
	// `make demo` runs: no persistence and mosquitto's default limits.
	// Tests that kill the broker set Persistence, so that it comes back
	// with its retained messages and sessions.
	BrokerOptions testenv.BrokerOptions
}

// managerUser is the identity the operator runs as: the ServiceAccount
// config/rbac binds the manager's ClusterRole to. RBAC matches a
// ServiceAccount subject by user name, so a client certificate for this
// name gets exactly the rights the operator would get in a cluster.
const managerUser = "system:serviceaccount:herald-system:herald-manager"

// Stack is everything Herald needs, running on this machine: etcd and
// kube-apiserver, Herald's CRDs and RBAC, mosquitto, a firmware download
// server and the operator, started from its real binary.
type Stack struct {
	cfg Config
	// Kubeconfig is an administrator's kubeconfig for the apiserver.
	Kubeconfig string
	// Kubectl is the kubectl binary built with the apiserver.
	Kubectl string
	// Client is an administrator's client.
	Client   client.Client
	Broker   *testenv.Broker
	Firmware *FirmwareServer
	Manager  *Process

	// managerProbe is the operator's health probe address, which a
	// restarted operator keeps.
	managerProbe string

	env   *envtest.Environment
	procs []*Process
	cwd   string
}

// StartStack starts the stack, narrating each step. On error, whatever
// started is stopped again.
func StartStack(ctx context.Context, cfg Config) (_ *Stack, err error) {
	s := &Stack{cfg: cfg, Kubectl: filepath.Join(cfg.Assets, "kubectl")}
	s.cwd, _ = os.Getwd()
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	steps := []func(context.Context) error{s.startControlPlane, s.install, s.startBroker, s.startFirmware, s.startManager}
	for _, step := range steps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := step(ctx); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// say prints one narration line.
func (s *Stack) say(format string, args ...any) {
	fmt.Fprintf(s.cfg.Out, format+"\n", args...)
}

func (s *Stack) startControlPlane(context.Context) error {
	start := time.Now()
	s.env = &envtest.Environment{
		BinaryAssetsDirectory:   s.cfg.Assets,
		ControlPlaneStopTimeout: 30 * time.Second,
	}
	cfg, err := s.env.Start()
	if err != nil {
		s.env = nil
		return fmt.Errorf("start etcd and kube-apiserver from %s: %w", s.cfg.Assets, err)
	}
	s.Kubeconfig = filepath.Join(s.cfg.Dir, "kubeconfig")
	if err := os.WriteFile(s.Kubeconfig, s.env.KubeConfig, 0o600); err != nil {
		return err
	}
	user, err := s.env.AddUser(envtest.User{Name: managerUser, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:herald-system"}}, nil)
	if err != nil {
		return fmt.Errorf("add the operator's user: %w", err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(s.cfg.Dir, "manager.kubeconfig"), kc, 0o600); err != nil {
		return err
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := v1.AddToScheme(scheme); err != nil {
		return err
	}
	if s.Client, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		return err
	}
	s.say("==> control plane: etcd and kube-apiserver (envtest) at %s, up in %s", cfg.Host, since(start))
	s.say("    kubeconfig: %s", s.rel(s.Kubeconfig))
	return nil
}

// install applies config/default, CRDs and RBAC, as `make deploy` does,
// but without its Deployment: there is no kubelet to run it, and the
// operator runs on this machine instead, as the ServiceAccount the
// Deployment would use.
func (s *Stack) install(ctx context.Context) error {
	rendered, err := s.kubectlOut(ctx, "kustomize", filepath.Join(s.cfg.Root, "config", "default"))
	if err != nil {
		return err
	}
	var keep []string
	for _, doc := range strings.Split(rendered, "\n---\n") {
		var meta struct{ Kind string }
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			return fmt.Errorf("config/default: %w", err)
		}
		if meta.Kind != "Deployment" {
			keep = append(keep, strings.TrimPrefix(doc, "---\n"))
		}
	}
	manifest := filepath.Join(s.cfg.Dir, "install.yaml")
	header := "# config/default without its Deployment, written by the demo.\n"
	if err := os.WriteFile(manifest, []byte(header+strings.Join(keep, "\n---\n")), 0o644); err != nil {
		return err
	}
	s.say("==> installing Herald: config/default (CRDs, RBAC) without its Deployment; the operator runs here instead")
	if err := s.kubectlShow(ctx, "apply", "-f", manifest); err != nil {
		return err
	}
	_, err = s.kubectlOut(ctx, "wait", "--for=condition=Established", "--timeout=60s",
		"crd/devicefleets.herald.dev", "crd/firmwarerollouts.herald.dev")
	return err
}

func (s *Stack) startBroker(context.Context) error {
	dir := filepath.Join(s.cfg.Dir, "broker")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := testenv.NewBroker(dir, s.cfg.BrokerOptions)
	if err != nil {
		return err
	}
	s.Broker = b
	persistent := ""
	if s.cfg.BrokerOptions.Persistence {
		persistent = ", persistent"
	}
	s.say("==> broker: mosquitto at %s%s (config: %s)", b.URL(), persistent, s.rel(filepath.Join(dir, "mosquitto.conf")))
	return nil
}

func (s *Stack) startFirmware(context.Context) error {
	fs, err := startFirmwareServer()
	if err != nil {
		return err
	}
	s.Firmware = fs
	s.say("==> firmware server: %s (%d bytes, sha256 %s…)", fs.URL, fs.Size, fs.SHA256[:16])
	return nil
}

func (s *Stack) startManager(ctx context.Context) error {
	probe, err := testenv.FreeAddr()
	if err != nil {
		return err
	}
	bin := filepath.Join(s.cfg.BinDir, "manager")
	kubeconfig := filepath.Join(s.cfg.Dir, "manager.kubeconfig")
	args := []string{"--metrics-bind-address=0", "--health-probe-bind-address=" + probe}
	start := time.Now()
	p, err := s.start("operator", "manager.log", []string{"KUBECONFIG=" + kubeconfig}, bin, args...)
	if err != nil {
		return err
	}
	s.Manager, s.managerProbe = p, probe
	s.say("==> operator: KUBECONFIG=%s %s %s", s.rel(kubeconfig), s.rel(bin), strings.Join(args, " "))
	s.say("    runs as %s; log: %s", managerUser, s.rel(p.Log))
	if err := s.waitManagerReady(ctx, start); err != nil {
		return err
	}
	s.say("    ready in %s", since(start))
	return nil
}

// RestartManager ends the operator and starts it again with the same
// kubeconfig and flags, and waits until it is ready, as StartStack does.
// With kill it ends with SIGKILL, as a crash or an OOM kill would end it,
// so nothing is released or flushed; otherwise it is asked to stop with
// SIGTERM. The new operator's output goes on in the same log. It must not
// be called concurrently with itself or Stop.
func (s *Stack) RestartManager(ctx context.Context, kill bool) error {
	old := s.Manager
	how := "SIGKILL"
	if kill {
		if err := old.Kill(); err != nil {
			return err
		}
	} else {
		how = "SIGTERM"
		if err := old.Stop(20 * time.Second); err != nil {
			return err
		}
	}
	start := time.Now()
	p, err := old.Restart()
	if err != nil {
		return err
	}
	for i := range s.procs {
		if s.procs[i] == old {
			s.procs[i] = p
		}
	}
	s.Manager = p
	if err := s.waitManagerReady(ctx, start); err != nil {
		return err
	}
	s.say("==> operator restarted after %s: ready in %s", how, since(start))
	return nil
}

// waitManagerReady waits until the operator's readiness probe answers 200,
// for up to a minute after start.
func (s *Stack) waitManagerReady(ctx context.Context, start time.Time) error {
	p := s.Manager
	ready := "http://" + s.managerProbe + "/readyz"
	for {
		if err := p.Exited(); err != nil {
			return err
		}
		if resp, err := http.Get(ready); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Since(start) > 60*time.Second {
			return fmt.Errorf("the operator was not ready within a minute; see %s", s.rel(p.Log))
		}
		if !Sleep(ctx, 100*time.Millisecond) {
			return ctx.Err()
		}
	}
	return nil
}

// Samples writes the overlay that points config/samples at this stack's
// broker and firmware server, and returns the objects it renders, for
// callers that create or adapt them themselves.
func (s *Stack) Samples(ctx context.Context) (*Samples, error) {
	return s.writeSamples(ctx)
}

// start starts a process whose log goes into the stack's directory; Stop
// stops it.
func (s *Stack) start(name, log string, env []string, bin string, args ...string) (*Process, error) {
	p, err := startProcess(name, filepath.Join(s.cfg.Dir, log), env, bin, args...)
	if err != nil {
		return nil, err
	}
	s.procs = append(s.procs, p)
	return p, nil
}

// Stop stops everything, the latest started first, and reports what did
// not stop cleanly.
func (s *Stack) Stop() error {
	var errs []error
	for i := len(s.procs) - 1; i >= 0; i-- {
		if err := s.procs[i].Stop(20 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	s.procs = nil
	if s.Firmware != nil {
		errs = append(errs, s.Firmware.Stop())
		s.Firmware = nil
	}
	if s.Broker != nil {
		if err := s.Broker.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stop mosquitto: %w", err))
		}
		s.Broker = nil
	}
	if s.env != nil {
		if err := s.env.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stop etcd and kube-apiserver: %w", err))
		}
		s.env = nil
	}
	return errors.Join(errs...)
}

// kubectlArgs are the arguments of a kubectl command against the stack.
func (s *Stack) kubectlArgs(args ...string) []string {
	return append([]string{"--kubeconfig", s.Kubeconfig}, args...)
}

// kubectlOut runs kubectl and returns its standard output.
func (s *Stack) kubectlOut(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, s.Kubectl, s.kubectlArgs(args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s: %w\n%s", s.command(args...), err, stderr.String())
	}
	return string(out), nil
}

// kubectlShow prints a kubectl command, runs it and prints its output,
// indented.
func (s *Stack) kubectlShow(ctx context.Context, args ...string) error {
	s.say("    $ %s", s.command(args...))
	cmd := exec.CommandContext(ctx, s.Kubectl, s.kubectlArgs(args...)...)
	out, err := cmd.CombinedOutput()
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		if line != "" {
			s.say("    %s", line)
		}
	}
	if err != nil {
		return fmt.Errorf("%s: %w", s.command(args...), err)
	}
	return nil
}

// command renders a kubectl command line for people to copy.
func (s *Stack) command(args ...string) string {
	words := []string{s.rel(s.Kubectl), "--kubeconfig", s.rel(s.Kubeconfig)}
	for _, a := range args {
		words = append(words, view.ShellQuote(s.rel(a)))
	}
	return strings.Join(words, " ")
}

// rel shortens a path below the working directory to a relative one.
func (s *Stack) rel(path string) string {
	if s.cwd == "" || !filepath.IsAbs(path) {
		return path
	}
	r, err := filepath.Rel(s.cwd, path)
	if err != nil || strings.HasPrefix(r, "..") {
		return path
	}
	return r
}

// since renders the time since start for narration: "3.2s".
func since(start time.Time) string {
	return time.Since(start).Round(100 * time.Millisecond).String()
}

// Sleep waits for d or until ctx ends, and reports whether d passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
