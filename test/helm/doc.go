// Package helm tests the Helm chart in charts/herald: that it renders for
// every kind of values, that a real kube-apiserver accepts everything it
// renders, that its CRDs and the manager's ClusterRole are those
// config/ holds, that a manager running as the chart's ServiceAccount can do
// its work with the chart's RBAC, and that its Grafana dashboard and alerts
// ask only for metrics the manager exports.
//
// The tests run helm from bin/helm-<version>, built by `make helm` (the
// version is pinned in hack/helm/go.mod), or from $HERALD_HELM, and the
// control plane from bin/k8s (`make envtest-bin`). A missing tool skips the
// tests that need it, unless HERALD_REQUIRE_TOOLS=1, as under make, where it
// fails them.
package helm
