package helm

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/diff"
	"sigs.k8s.io/yaml"

	"github.com/heraldiot/herald/internal/testenv"
)

// releaseCase is a release the tests render and apply, with what it must
// contain.
type releaseCase struct {
	name string
	rel  release
	// objects are every object rendered, as objectKey names them.
	objects []string
	// args are the manager container's arguments; image its image.
	args  []string
	image string
	// watch are the namespaces the manager watches, each with a Role for
	// it; none means every namespace, with a ClusterRole.
	watch []string
}

// crdKeys are the chart's CRDs, rendered with --include-crds.
var crdKeys = []string{
	"CustomResourceDefinition/devicefleets.herald.dev",
	"CustomResourceDefinition/firmwarerollouts.herald.dev",
}

// releases cover every switch in values.yaml at least once. Each has its
// own release name and namespace, so that all of them can be applied to
// one apiserver side by side.
var releases = []releaseCase{{
	name: "defaults",
	rel:  release{name: "herald", namespace: "herald-system"},
	objects: append([]string{
		"ClusterRole/herald-manager",
		"ClusterRole/herald-metrics-auth",
		"ClusterRole/herald-metrics-reader",
		"ClusterRoleBinding/herald-manager",
		"ClusterRoleBinding/herald-metrics-auth",
		"Deployment/herald-system/herald-manager",
		"Role/herald-system/herald-leader-election",
		"RoleBinding/herald-system/herald-leader-election",
		"Service/herald-system/herald-metrics",
		"ServiceAccount/herald-system/herald-manager",
	}, crdKeys...),
	args: []string{"--leader-elect", "--metrics-bind-address=:8443", "--metrics-secure=true",
		"--health-probe-bind-address=:8081"},
	image: "ghcr.io/heraldiot/herald:" + chartAppVersion(),
}, {
	name: "monitoring and scheduling",
	rel: release{name: "herald-mon", namespace: "herald-mon", values: map[string]any{
		"image":            map[string]any{"repository": "registry.example.com/herald", "tag": "v1.2.3", "pullPolicy": "Always"},
		"imagePullSecrets": []any{map[string]any{"name": "regcred"}},
		"extraArgs":        []any{"--zap-log-level=debug"},
		"replicas":         3,
		"serviceAccount":   map[string]any{"annotations": map[string]any{"example.com/role": "herald"}},
		"podAnnotations":   map[string]any{"example.com/scrape": "false"},
		"nodeSelector":     map[string]any{"kubernetes.io/os": "linux"},
		"tolerations": []any{map[string]any{
			"key": "dedicated", "operator": "Equal", "value": "operators", "effect": "NoSchedule"}},
		"affinity": map[string]any{"podAntiAffinity": map[string]any{
			"preferredDuringSchedulingIgnoredDuringExecution": []any{map[string]any{
				"weight": 100,
				"podAffinityTerm": map[string]any{
					"topologyKey":   "kubernetes.io/hostname",
					"labelSelector": map[string]any{"matchLabels": map[string]any{"app.kubernetes.io/instance": "herald-mon"}},
				},
			}},
		}},
		"resources": map[string]any{"requests": map[string]any{"cpu": "100m", "memory": "128Mi"}},
		"dashboards": map[string]any{"enabled": true, "namespace": "grafana",
			"annotations": map[string]any{"grafana_folder": "Herald"}},
		"prometheusRule": map[string]any{"enabled": true, "labels": map[string]any{"release": "kube-prometheus-stack"}},
		"serviceMonitor": map[string]any{"enabled": true, "interval": "30s",
			"labels": map[string]any{"release": "kube-prometheus-stack"}},
	}},
	objects: append([]string{
		"ClusterRole/herald-mon-manager",
		"ClusterRole/herald-mon-metrics-auth",
		"ClusterRole/herald-mon-metrics-reader",
		"ClusterRoleBinding/herald-mon-manager",
		"ClusterRoleBinding/herald-mon-metrics-auth",
		"ConfigMap/grafana/herald-mon-dashboards",
		"Deployment/herald-mon/herald-mon-manager",
		"PrometheusRule/herald-mon/herald-mon",
		"Role/herald-mon/herald-mon-leader-election",
		"RoleBinding/herald-mon/herald-mon-leader-election",
		"Service/herald-mon/herald-mon-metrics",
		"ServiceAccount/herald-mon/herald-mon-manager",
		"ServiceMonitor/herald-mon/herald-mon-manager",
	}, crdKeys...),
	args: []string{"--leader-elect", "--metrics-bind-address=:8443", "--metrics-secure=true",
		"--health-probe-bind-address=:8081", "--zap-log-level=debug"},
	image: "registry.example.com/herald:v1.2.3",
}, {
	name: "one replica, plain metrics, existing service account",
	rel: release{name: "edge", namespace: "edge", values: map[string]any{
		"replicas":       1,
		"leaderElection": map[string]any{"enabled": false},
		"metrics":        map[string]any{"secure": false, "port": 8080},
		"serviceAccount": map[string]any{"create": false, "name": "edge-operator"},
		"serviceMonitor": map[string]any{"enabled": true},
	}},
	objects: append([]string{
		"ClusterRole/edge-herald-manager",
		"ClusterRoleBinding/edge-herald-manager",
		"Deployment/edge/edge-herald-manager",
		"Service/edge/edge-herald-metrics",
		"ServiceMonitor/edge/edge-herald-manager",
	}, crdKeys...),
	args:  []string{"--metrics-bind-address=:8080", "--metrics-secure=false", "--health-probe-bind-address=:8081"},
	image: "ghcr.io/heraldiot/herald:" + chartAppVersion(),
}, {
	name: "no metrics",
	rel: release{name: "quiet", namespace: "quiet", values: map[string]any{
		"metrics": map[string]any{"enabled": false},
	}},
	objects: append([]string{
		"ClusterRole/quiet-herald-manager",
		"ClusterRoleBinding/quiet-herald-manager",
		"Deployment/quiet/quiet-herald-manager",
		"Role/quiet/quiet-herald-leader-election",
		"RoleBinding/quiet/quiet-herald-leader-election",
		"ServiceAccount/quiet/quiet-herald-manager",
	}, crdKeys...),
	args:  []string{"--leader-elect", "--metrics-bind-address=0", "--health-probe-bind-address=:8081"},
	image: "ghcr.io/heraldiot/herald:" + chartAppVersion(),
}, {
	name: "one shard",
	rel: release{name: "shard1", namespace: "quiet", values: map[string]any{
		"metrics":       map[string]any{"enabled": false},
		"shardSelector": "sharding.herald.dev/key=shard1",
	}},
	objects: append([]string{
		"ClusterRole/shard1-herald-manager",
		"ClusterRoleBinding/shard1-herald-manager",
		"Deployment/quiet/shard1-herald-manager",
		"Role/quiet/shard1-herald-leader-election",
		"RoleBinding/quiet/shard1-herald-leader-election",
		"ServiceAccount/quiet/shard1-herald-manager",
	}, crdKeys...),
	// Each shard elects its own leader.
	args: []string{"--leader-elect", "--metrics-bind-address=0", "--health-probe-bind-address=:8081",
		"--watch-label-selector=sharding.herald.dev/key=shard1", "--leader-election-id=shard1-herald.herald.dev"},
	image: "ghcr.io/heraldiot/herald:" + chartAppVersion(),
}, {
	name: "watch namespaces",
	rel: release{name: "scoped", namespace: "herald-scoped", values: map[string]any{
		// A repeat is left out.
		"watchNamespaces": []any{"team-a", "team-b", "team-a"},
	}},
	objects: append([]string{
		"ClusterRole/scoped-herald-metrics-auth",
		"ClusterRole/scoped-herald-metrics-reader",
		"ClusterRoleBinding/scoped-herald-metrics-auth",
		"Deployment/herald-scoped/scoped-herald-manager",
		"Role/herald-scoped/scoped-herald-leader-election",
		"Role/team-a/scoped-herald-manager",
		"Role/team-b/scoped-herald-manager",
		"RoleBinding/herald-scoped/scoped-herald-leader-election",
		"RoleBinding/team-a/scoped-herald-manager",
		"RoleBinding/team-b/scoped-herald-manager",
		"Service/herald-scoped/scoped-herald-metrics",
		"ServiceAccount/herald-scoped/scoped-herald-manager",
	}, crdKeys...),
	args: []string{"--leader-elect", "--metrics-bind-address=:8443", "--metrics-secure=true",
		"--health-probe-bind-address=:8081", "--watch-namespace=team-a,team-b", "--leader-election-id=scoped-herald.herald.dev"},
	image: "ghcr.io/heraldiot/herald:" + chartAppVersion(),
	watch: []string{"team-a", "team-b"},
}}

// releaseNamed returns the release case called name.
func releaseNamed(t testing.TB, name string) releaseCase {
	t.Helper()
	for _, tc := range releases {
		if tc.name == name {
			return tc
		}
	}
	t.Fatalf("no release case %q", name)
	return releaseCase{}
}

// chartAppVersion is Chart.yaml's appVersion, the default image tag.
func chartAppVersion() string {
	root, err := testenv.RepoRoot()
	if err != nil {
		return "<" + err.Error() + ">"
	}
	data, err := os.ReadFile(filepath.Join(root, "charts", "herald", "Chart.yaml"))
	if err != nil {
		return "<" + err.Error() + ">"
	}
	var chart struct {
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(data, &chart); err != nil {
		return "<" + err.Error() + ">"
	}
	return chart.AppVersion
}

// TestChartCRDsMatchConfig: the chart installs exactly the CRDs
// controller-gen writes to config/crd/bases. Copy them after
// `make manifests` (`make chart-sync`).
func TestChartCRDsMatchConfig(t *testing.T) {
	root := repoRoot(t)
	want := readDir(t, filepath.Join(root, "config", "crd", "bases"))
	got := readDir(t, filepath.Join(root, "charts", "herald", "crds"))
	if len(want) == 0 {
		t.Fatal("config/crd/bases holds no CRDs")
	}
	for name, data := range want {
		g, ok := got[name]
		switch {
		case !ok:
			t.Errorf("charts/herald/crds/%s is missing; run `make chart-sync`", name)
		case !bytes.Equal(g, data):
			t.Errorf("charts/herald/crds/%s differs from config/crd/bases/%s; run `make chart-sync`", name, name)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("charts/herald/crds/%s is not in config/crd/bases; remove it", name)
		}
	}
}

// TestChartRoleFileMatchesConfig: the rules the chart's ClusterRole is
// rendered from are config/rbac/role.yaml's, byte for byte.
func TestChartRoleFileMatchesConfig(t *testing.T) {
	root := repoRoot(t)
	want := readFile(t, filepath.Join(root, "config", "rbac", "role.yaml"))
	got := readFile(t, filepath.Join(root, "charts", "herald", "files", "manager-role.yaml"))
	if !bytes.Equal(got, want) {
		t.Error("charts/herald/files/manager-role.yaml differs from config/rbac/role.yaml; run `make chart-sync`")
	}
}

func TestLint(t *testing.T) {
	helm := helmBinary(t)
	dir := t.TempDir()
	cmd := exec.Command(helm, "lint", "--strict", chartDir(t))
	cmd.Env = helmEnv(dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("helm lint: %v\n%s", err, out)
	}
}

// TestRender checks, for each release, the objects rendered, the manager's
// arguments and image, that the manager's ClusterRole (or, watching some
// namespaces, its Role in each of them) grants exactly
// config/rbac/role.yaml's rules to the manager's ServiceAccount, and that
// the metrics Service and ServiceMonitor select what they should.
func TestRender(t *testing.T) {
	helm := helmBinary(t)
	wantRules := configRole(t).Rules
	for _, tc := range releases {
		t.Run(tc.name, func(t *testing.T) {
			objs := render(t, helm, tc.rel)
			if got, want := objectKeys(objs), sorted(tc.objects); !slices.Equal(got, want) {
				t.Errorf("objects:\n got %q\nwant %q", got, want)
			}
			var dep appsv1.Deployment
			convert(t, only(t, objs, "Deployment"), &dep)
			c := managerContainer(t, &dep)
			if !slices.Equal(c.Args, tc.args) {
				t.Errorf("manager args:\n got %q\nwant %q", c.Args, tc.args)
			}
			if c.Image != tc.image {
				t.Errorf("manager image %q, want %q", c.Image, tc.image)
			}

			checkManagerRBAC(t, objs, tc, &dep, wantRules)

			podLabels := dep.Spec.Template.Labels
			if sel := dep.Spec.Selector.MatchLabels; !selects(sel, podLabels) {
				t.Errorf("Deployment selector %v does not select its pods %v", sel, podLabels)
			}
			for _, o := range objs {
				switch o.GetKind() {
				case "Service":
					var svc corev1.Service
					convert(t, o, &svc)
					if !selects(svc.Spec.Selector, podLabels) {
						t.Errorf("Service %s selector %v does not select the manager's pods %v", svc.Name, svc.Spec.Selector, podLabels)
					}
					for _, p := range svc.Spec.Ports {
						if !slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool { return cp.Name == p.TargetPort.String() }) {
							t.Errorf("Service %s port %s targets %q, which the manager does not expose", svc.Name, p.Name, p.TargetPort.String())
						}
					}
				case "ServiceMonitor":
					sel, _, _ := unstructured.NestedStringMap(o.Object, "spec", "selector", "matchLabels")
					svc := only(t, objs, "Service")
					if !selects(sel, svc.GetLabels()) {
						t.Errorf("ServiceMonitor selector %v does not select Service %s %v", sel, svc.GetName(), svc.GetLabels())
					}
				}
			}
		})
	}
}

// checkManagerRBAC checks that the manager's rules are granted to its
// ServiceAccount under the Deployment's name: by a ClusterRole and its
// binding, or, watching some namespaces, by a Role and RoleBinding in each
// of them and nothing cluster-wide.
func checkManagerRBAC(t *testing.T, objs []*unstructured.Unstructured, tc releaseCase, dep *appsv1.Deployment, wantRules []rbacv1.PolicyRule) {
	t.Helper()
	wantSubjects := []rbacv1.Subject{{Kind: "ServiceAccount", Name: dep.Spec.Template.Spec.ServiceAccountName, Namespace: tc.rel.namespace}}
	check := func(roleKind, bindingKind, namespace string) {
		var role rbacv1.ClusterRole
		convert(t, findIn(t, objs, roleKind, namespace, dep.Name), &role)
		semanticDiff(t, roleKind+" "+namespace+"/"+role.Name+" rules", role.Rules, wantRules)
		var binding rbacv1.RoleBinding
		convert(t, findIn(t, objs, bindingKind, namespace, dep.Name), &binding)
		wantRef := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: roleKind, Name: role.Name}
		if binding.RoleRef != wantRef || !equality.Semantic.DeepEqual(binding.Subjects, wantSubjects) {
			t.Errorf("%s %s/%s binds %+v to %+v, want %+v to %+v", bindingKind, namespace, binding.Name, binding.RoleRef, binding.Subjects, wantRef, wantSubjects)
		}
	}
	if len(tc.watch) == 0 {
		check("ClusterRole", "ClusterRoleBinding", "")
		return
	}
	for _, ns := range tc.watch {
		check("Role", "RoleBinding", ns)
	}
	for _, o := range objs {
		if (o.GetKind() == "ClusterRole" || o.GetKind() == "ClusterRoleBinding") && o.GetName() == dep.Name {
			t.Errorf("%s: the manager watches only %v, so it should have no cluster-wide rights", objectKey(o), tc.watch)
		}
	}
}

// TestRenderRefuses: values that would give a broken install fail the
// render with a message saying what to change.
func TestRenderRefuses(t *testing.T) {
	helm := helmBinary(t)
	for name, tc := range map[string]struct {
		values map[string]any
		want   string
	}{
		"replicas without leader election": {
			values: map[string]any{"leaderElection": map[string]any{"enabled": false}},
			want:   "replicas is 2 but leaderElection.enabled is false",
		},
		"existing service account without a name": {
			values: map[string]any{"serviceAccount": map[string]any{"create": false}},
			want:   "serviceAccount.name is required when serviceAccount.create is false",
		},
		"watch namespace that is not a name": {
			values: map[string]any{"watchNamespaces": "team-a,Team_B"},
			want:   `watchNamespaces: "Team_B" is not a namespace name`,
		},
		"service monitor without metrics": {
			values: map[string]any{"metrics": map[string]any{"enabled": false}, "serviceMonitor": map[string]any{"enabled": true}},
			want:   "serviceMonitor.enabled needs metrics.enabled",
		},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := renderErr(helm, release{name: "herald", namespace: "herald-system", values: tc.values})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("helm template: got error %v, want one saying %q", err, tc.want)
			}
		})
	}
}

// TestDefaultsMatchConfig: with default values and release "herald" in
// herald-system, the chart renders config/default's RBAC and manager under
// the same names, with the same rules, bindings, probes, resources,
// security contexts and arguments.
func TestDefaultsMatchConfig(t *testing.T) {
	helm := helmBinary(t)
	objs := render(t, helm, releases[0].rel)
	root := repoRoot(t)
	var config []*unstructured.Unstructured
	for _, path := range []string{
		filepath.Join(root, "config", "rbac", "*.yaml"),
		filepath.Join(root, "config", "manager", "manager.yaml"),
	} {
		files, err := filepath.Glob(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if filepath.Base(f) == "kustomization.yaml" {
				continue
			}
			decoded, err := decodeObjects(readFile(t, f))
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			config = append(config, decoded...)
		}
	}
	for _, want := range config {
		kind := want.GetKind()
		if kind == "Namespace" {
			// Helm installs into a namespace it is given (--create-namespace).
			continue
		}
		got := find(t, objs, kind, want.GetName())
		if got.GetNamespace() != want.GetNamespace() {
			t.Errorf("%s: namespace %q, config/ has %q", objectKey(got), got.GetNamespace(), want.GetNamespace())
		}
		switch kind {
		case "ClusterRole", "Role":
			var g, w rbacv1.ClusterRole
			convert(t, got, &g)
			convert(t, want, &w)
			semanticDiff(t, objectKey(got)+" rules", g.Rules, w.Rules)
		case "ClusterRoleBinding", "RoleBinding":
			var g, w rbacv1.RoleBinding
			convert(t, got, &g)
			convert(t, want, &w)
			semanticDiff(t, objectKey(got)+" roleRef", g.RoleRef, w.RoleRef)
			semanticDiff(t, objectKey(got)+" subjects", g.Subjects, w.Subjects)
		case "ServiceAccount":
		case "Deployment":
			var g, w appsv1.Deployment
			convert(t, got, &g)
			convert(t, want, &w)
			compareDeployments(t, &g, &w)
		default:
			t.Errorf("config/ has a %s the test does not compare; teach TestDefaultsMatchConfig about it", kind)
		}
	}
}

// compareDeployments compares what config/manager sets explicitly. The
// chart also sets --metrics-secure=true (the flag's default) and the ports'
// protocol (TCP, the API's default); the image differs by design.
func compareDeployments(t *testing.T, got, want *appsv1.Deployment) {
	t.Helper()
	semanticDiff(t, "replicas", got.Spec.Replicas, want.Spec.Replicas)
	g, w := &got.Spec.Template.Spec, &want.Spec.Template.Spec
	semanticDiff(t, "serviceAccountName", g.ServiceAccountName, w.ServiceAccountName)
	semanticDiff(t, "terminationGracePeriodSeconds", g.TerminationGracePeriodSeconds, w.TerminationGracePeriodSeconds)
	semanticDiff(t, "pod securityContext", g.SecurityContext, w.SecurityContext)
	gc, wc := managerContainer(t, got), managerContainer(t, want)
	args := slices.DeleteFunc(slices.Clone(gc.Args), func(a string) bool { return a == "--metrics-secure=true" })
	semanticDiff(t, "args", args, wc.Args)
	ports := slices.Clone(gc.Ports)
	for i := range ports {
		if ports[i].Protocol == corev1.ProtocolTCP {
			ports[i].Protocol = ""
		}
	}
	semanticDiff(t, "ports", ports, wc.Ports)
	semanticDiff(t, "livenessProbe", gc.LivenessProbe, wc.LivenessProbe)
	semanticDiff(t, "readinessProbe", gc.ReadinessProbe, wc.ReadinessProbe)
	semanticDiff(t, "resources", gc.Resources, wc.Resources)
	semanticDiff(t, "container securityContext", gc.SecurityContext, wc.SecurityContext)
}

// only returns the one object of kind, failing the test unless there is
// exactly one.
func only(t testing.TB, objs []*unstructured.Unstructured, kind string) *unstructured.Unstructured {
	t.Helper()
	var found []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one %s, found %d among %v", kind, len(found), objectKeys(objs))
	}
	return found[0]
}

// findIn returns the object with the given kind, namespace ("" for a
// cluster-scoped one) and name, failing the test when there is none.
func findIn(t testing.TB, objs []*unstructured.Unstructured, kind, namespace, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetNamespace() == namespace && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("no %s %s/%s among %v", kind, namespace, name, objectKeys(objs))
	return nil
}

// selects reports whether a non-empty equality selector matches labels.
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// configRole is config/rbac/role.yaml.
func configRole(t testing.TB) *rbacv1.ClusterRole {
	t.Helper()
	var role rbacv1.ClusterRole
	if err := yaml.UnmarshalStrict(readFile(t, filepath.Join(repoRoot(t), "config", "rbac", "role.yaml")), &role); err != nil {
		t.Fatal(err)
	}
	return &role
}

// convert turns a rendered object into its typed form.
func convert(t testing.TB, o *unstructured.Unstructured, into any) {
	t.Helper()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(o.Object, into, true); err != nil {
		t.Fatalf("%s: %v", objectKey(o), err)
	}
}

// managerContainer is the Deployment's manager container.
func managerContainer(t testing.TB, d *appsv1.Deployment) *corev1.Container {
	t.Helper()
	for i := range d.Spec.Template.Spec.Containers {
		if c := &d.Spec.Template.Spec.Containers[i]; c.Name == "manager" {
			return c
		}
	}
	t.Fatalf("Deployment %s has no manager container", d.Name)
	return nil
}

// semanticDiff fails the test with a diff when got and want differ.
func semanticDiff(t testing.TB, what string, got, want any) {
	t.Helper()
	if !equality.Semantic.DeepEqual(got, want) {
		t.Errorf("%s differs from config/ (-config +chart):\n%s", what, diff.Diff(want, got))
	}
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// readDir returns the .yaml files in dir by name.
func readDir(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := make(map[string][]byte)
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".yaml") {
			files[e.Name()] = readFile(t, filepath.Join(dir, e.Name()))
		}
	}
	return files
}
