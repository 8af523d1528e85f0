package helm

import (
	"path/filepath"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// monitoringCRDs are the trimmed Prometheus Operator CRDs in testdata, so
// that the apiserver checks the chart's PrometheusRule and ServiceMonitor
// too instead of the test leaving them out.
var monitoringCRDs = []string{
	"monitoring.coreos.com_prometheusrules.yaml",
	"monitoring.coreos.com_servicemonitors.yaml",
}

// TestApply applies every release's render, CRDs included, to a real
// kube-apiserver by server-side apply with strict field validation: every
// object must be accepted as it is.
func TestApply(t *testing.T) {
	helm := helmBinary(t)
	k := newKubectl(t, controlPlane(t))
	installMonitoringCRDs(t, k)
	for _, tc := range releases {
		t.Run(tc.name, func(t *testing.T) {
			objs := render(t, helm, tc.rel)
			for _, ns := range namespaces(objs) {
				k.ensureNamespace(t, ns)
			}
			k.apply(t, objs)
		})
	}
}

// installMonitoringCRDs installs testdata's monitoring.coreos.com CRDs and
// waits until they are served.
func installMonitoringCRDs(t testing.TB, k *kubectl) {
	t.Helper()
	args := []string{"apply", "--server-side", "--field-manager=herald-chart-test"}
	for _, f := range monitoringCRDs {
		args = append(args, "-f", filepath.Join("testdata", f))
	}
	if _, err := k.run(nil, args...); err != nil {
		t.Fatal(err)
	}
	if _, err := k.run(nil, "wait", "--for=condition=Established", "--timeout=60s",
		"crd/prometheusrules.monitoring.coreos.com", "crd/servicemonitors.monitoring.coreos.com"); err != nil {
		t.Fatal(err)
	}
}

// namespaces lists the namespaces objects live in.
func namespaces(objs []*unstructured.Unstructured) []string {
	var out []string
	for _, o := range objs {
		if ns := o.GetNamespace(); ns != "" && !slices.Contains(out, ns) {
			out = append(out, ns)
		}
	}
	return out
}
