package helm

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/yaml"

	"github.com/heraldiot/herald/internal/testenv"
)

// helmModule is the module hack/helm/go.mod pins; its version names the
// binary the Makefile builds, bin/helm-<version>.
const helmModule = "helm.sh/helm/v4"

// The package shares one control plane, started by the first test that
// needs it and stopped after the last.
var shared struct {
	once    sync.Once
	cp      *testenv.ControlPlane
	missing error // the binaries are not there: skip, or fail under make
	err     error // they are there but would not start: fail
}

func TestMain(m *testing.M) {
	// controller-runtime warns on first use without a logger; the
	// manager's own log is set when it starts.
	ctrl.SetLogger(logr.Discard())
	code := m.Run()
	if err := stopManager(); err != nil {
		fmt.Fprintln(os.Stderr, "manager:", err)
		code = 1
	}
	if shared.cp != nil {
		if err := shared.cp.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop control plane:", err)
		}
	}
	os.Exit(code)
}

// missingTool skips the test, or fails it when HERALD_REQUIRE_TOOLS=1 (set
// by the Makefile, which builds the tools first), so that `make test` never
// passes by testing nothing.
func missingTool(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("HERALD_REQUIRE_TOOLS") == "1" {
		t.Fatalf("%s (HERALD_REQUIRE_TOOLS=1: a tool the Makefile should have built is missing)", msg)
	}
	t.Skip(msg)
}

// repoRoot is the directory of Herald's go.mod.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// chartDir is charts/herald.
func chartDir(t testing.TB) string {
	return filepath.Join(repoRoot(t), "charts", "herald")
}

// pinnedHelmVersion reads Helm's version from hack/helm/go.mod.
func pinnedHelmVersion(root string) (string, error) {
	path := filepath.Join(root, "hack", "helm", "go.mod")
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "require" {
			fields = fields[1:]
		}
		if len(fields) >= 2 && fields[0] == helmModule && strings.HasPrefix(fields[1], "v") {
			return fields[1], nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("%s does not require %s", path, helmModule)
}

// helmBinary returns $HERALD_HELM, or bin/helm-<pinned version>.
func helmBinary(t testing.TB) string {
	t.Helper()
	if path := os.Getenv("HERALD_HELM"); path != "" {
		if _, err := os.Stat(path); err != nil {
			t.Fatalf("HERALD_HELM: %v", err)
		}
		return path
	}
	root := repoRoot(t)
	version, err := pinnedHelmVersion(root)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "bin", "helm-"+version)
	if _, err := os.Stat(path); err != nil {
		missingTool(t, "helm %s not found at %s; run `make helm` (or set HERALD_HELM)", version, path)
	}
	return path
}

// controlPlane returns the package's kube-apiserver and etcd, starting
// them on first use.
func controlPlane(t testing.TB) *testenv.ControlPlane {
	t.Helper()
	shared.once.Do(func() {
		if _, err := testenv.AssetsDir(); err != nil {
			shared.missing = err
			return
		}
		shared.cp, shared.err = testenv.StartControlPlane()
	})
	if shared.missing != nil {
		missingTool(t, "%v", shared.missing)
	}
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.cp
}

// release is one `helm template` of the chart.
type release struct {
	name, namespace string
	values          map[string]any
}

// render runs helm template, CRDs included, and returns the objects in
// the order helm printed them.
func render(t testing.TB, helm string, r release) []*unstructured.Unstructured {
	t.Helper()
	objs, err := renderObjects(helm, r)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// renderObjects is render without a test to fail.
func renderObjects(helm string, r release) ([]*unstructured.Unstructured, error) {
	out, err := renderErr(helm, r)
	if err != nil {
		return nil, err
	}
	objs, err := decodeObjects(out)
	if err != nil {
		return nil, fmt.Errorf("decode helm template output: %w", err)
	}
	return objs, nil
}

// renderErr runs helm template and returns its output, or an error that
// carries helm's message.
func renderErr(helm string, r release) ([]byte, error) {
	root, err := testenv.RepoRoot()
	if err != nil {
		return nil, err
	}
	// Not t.TempDir: helm splits --values at commas, which subtest names
	// may hold.
	dir, err := os.MkdirTemp("", "herald-chart-test-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	valuesFile := filepath.Join(dir, "values.yaml")
	data, err := yaml.Marshal(r.values)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(valuesFile, data, 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(helm, "template", r.name, filepath.Join(root, "charts", "herald"),
		"--namespace", r.namespace, "--include-crds", "--values", valuesFile)
	cmd.Env = helmEnv(dir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("helm template %s: %w\n%s", r.name, err, stderr.String())
	}
	return stdout.Bytes(), nil
}

// helmEnv keeps helm's cache, configuration and data in dir, away from
// the user's repositories and plugins.
func helmEnv(dir string) []string {
	return append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(dir, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(dir, "config"),
		"HELM_DATA_HOME="+filepath.Join(dir, "data"),
	)
}

// decodeObjects splits a YAML stream into objects, leaving out empty
// documents.
func decodeObjects(stream []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(stream), 4096)
	var objs []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, err
		}
		if len(m) == 0 {
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
}

// objectKey names an object as Kind/namespace/name, or Kind/name when it
// is cluster-scoped.
func objectKey(o *unstructured.Unstructured) string {
	if ns := o.GetNamespace(); ns != "" {
		return o.GetKind() + "/" + ns + "/" + o.GetName()
	}
	return o.GetKind() + "/" + o.GetName()
}

// objectKeys lists the objects' keys, sorted.
func objectKeys(objs []*unstructured.Unstructured) []string {
	keys := make([]string, 0, len(objs))
	for _, o := range objs {
		keys = append(keys, objectKey(o))
	}
	sort.Strings(keys)
	return keys
}

// find returns the object with the given kind and name, failing the test
// when there is none.
func find(t testing.TB, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("no %s %q among %v", kind, name, objectKeys(objs))
	return nil
}

// kubectl runs the control plane's kubectl as an administrator.
type kubectl struct {
	bin, kubeconfig string
}

// newKubectl writes an administrator's kubeconfig for cp into a
// temporary directory.
func newKubectl(t testing.TB, cp *testenv.ControlPlane) *kubectl {
	t.Helper()
	k, err := newKubectlIn(t.TempDir(), cp)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// newKubectlIn writes the kubeconfig into dir.
func newKubectlIn(dir string, cp *testenv.ControlPlane) (*kubectl, error) {
	assets, err := testenv.AssetsDir()
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "kubeconfig")
	if err := clientcmd.WriteToFile(kubeconfigFor(cp.Config), path); err != nil {
		return nil, err
	}
	return &kubectl{bin: filepath.Join(assets, "kubectl"), kubeconfig: path}, nil
}

func kubeconfigFor(c *rest.Config) clientcmdapi.Config {
	server := c.Host
	if !strings.Contains(server, "://") {
		server = "https://" + server
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["envtest"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: c.CAData}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{
		ClientCertificateData: c.CertData,
		ClientKeyData:         c.KeyData,
		Token:                 c.BearerToken,
	}
	cfg.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "admin"}
	cfg.CurrentContext = "envtest"
	return *cfg
}

// run runs kubectl with args and stdin, returning its output or an error
// that carries it.
func (k *kubectl) run(stdin []byte, args ...string) (string, error) {
	cmd := exec.Command(k.bin, append([]string{"--kubeconfig", k.kubeconfig}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("kubectl %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// ensureNamespace creates namespace ns unless it exists.
func (k *kubectl) ensureNamespace(t testing.TB, ns string) {
	t.Helper()
	if err := k.ensureNamespaceErr(ns); err != nil {
		t.Fatal(err)
	}
}

func (k *kubectl) ensureNamespaceErr(ns string) error {
	manifest := fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n", ns)
	_, err := k.run([]byte(manifest), "apply", "--server-side", "-f", "-")
	return err
}

// apply applies objects by server-side apply, with strict field
// validation, and fails the test unless the apiserver accepted every one
// of them.
func (k *kubectl) apply(t testing.TB, objs []*unstructured.Unstructured) {
	t.Helper()
	if err := k.applyErr(objs); err != nil {
		t.Fatal(err)
	}
}

func (k *kubectl) applyErr(objs []*unstructured.Unstructured) error {
	var stream bytes.Buffer
	for _, o := range objs {
		data, err := yaml.Marshal(o.Object)
		if err != nil {
			return err
		}
		stream.WriteString("---\n")
		stream.Write(data)
	}
	out, err := k.run(stream.Bytes(), "apply", "--server-side", "--validate=strict", "--field-manager=herald-chart-test", "-f", "-")
	if err != nil {
		return err
	}
	applied := 0
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.HasSuffix(line, " serverside-applied") {
			applied++
		}
	}
	if applied != len(objs) {
		return fmt.Errorf("the apiserver applied %d of %d objects:\n%s", applied, len(objs), out)
	}
	return nil
}
