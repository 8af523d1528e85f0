package cluster

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// chartRelease is the release README.md installs: named "herald", its
// objects have config/default's names.
const chartRelease = "herald"

// TestHelmChart installs the chart as README.md says, in place of the
// kustomize install (both own the CRDs and the names): both replicas
// become Ready and run as they do under `make deploy`, the metrics
// endpoint has the same guard, the manager does its work with the chart's
// RBAC (a DeviceFleet becomes Ready with every device), and `helm
// uninstall` removes everything but the CRDs, which Helm leaves by design.
func TestHelmChart(t *testing.T) {
	needCluster(t)
	if env.helm == "" {
		t.Fatal("HERALD_HELM names no helm binary; make cluster-test sets it (make helm builds it)")
	}
	if installed == "kustomize" {
		undeployKustomize(t)
	}
	importImage(t)
	repo, tag, ok := strings.Cut(env.img, ":")
	if !ok || strings.Contains(tag, "/") {
		t.Fatalf("HERALD_CLUSTER_IMG=%s: want repository:tag", env.img)
	}
	start := time.Now()
	helm(t, "install", chartRelease, filepath.Join(env.root, "charts", "herald"),
		"--namespace", managerNamespace, "--create-namespace",
		"--set", "image.repository="+repo, "--set", "image.tag="+tag,
		// The image is on the node and nowhere else.
		"--set", "image.pullPolicy=Never",
		"--wait", "--timeout", podsReady.String())
	installed = "helm"
	t.Logf("helm install: both replicas Ready %s after the install began", time.Since(start).Round(100*time.Millisecond))
	// Registered first, so it runs last: the cleanups of the namespaces
	// below need the manager to remove their fleets' finalizers.
	t.Cleanup(func() {
		if installed == "helm" {
			uninstallChart(t)
		}
	})

	pods, leader := checkManagerPods(t, managerNamespace, managerName, leaseName)
	checkMetrics(t, pods, leader, leaseName, metricsReaderRole)

	ns := "cluster-helm"
	createNamespace(t, ns)
	topicRoot := "cluster/" + ns
	f := fleet{devices: 10, prefix: "helm-"}
	startFleetsim(t, f, topicRoot)
	applyFleet(t, ns, topicRoot, f.devices)
}

// uninstallChart uninstalls the release and checks that it took every one
// of its objects with it, then deletes what Helm leaves by design: the
// CRDs, and the namespace --create-namespace made.
func uninstallChart(t *testing.T) {
	t.Helper()
	helm(t, "uninstall", chartRelease, "--namespace", managerNamespace, "--wait", "--timeout", deleted.String())
	installed = ""
	instance := "app.kubernetes.io/instance=" + chartRelease
	// The pods go after their ReplicaSet, by garbage collection: below.
	if out := kubectl(t, nil, "get", "deployments,replicasets,services,serviceaccounts,roles,rolebindings,configmaps,secrets",
		"-n", managerNamespace, "-l", instance, "-o", "name"); out != "" {
		t.Errorf("helm uninstall left in %s:\n%s", managerNamespace, out)
	}
	if out := kubectl(t, nil, "get", "clusterroles,clusterrolebindings", "-l", instance, "-o", "name"); out != "" {
		t.Errorf("helm uninstall left:\n%s", out)
	}
	var pods corev1.PodList
	poll(t, "the chart's pods gone", deleted, func() (bool, string, error) {
		if err := list(&pods, client.InNamespace(managerNamespace)); err != nil {
			return false, err.Error(), nil
		}
		return len(pods.Items) == 0, fmt.Sprintf("pods %v", podNames(pods.Items)), nil
	})
	kubectl(t, nil, "delete", "crd", "devicefleets.herald.dev", "firmwarerollouts.herald.dev", "--timeout="+deleted.String())
	kubectl(t, nil, "delete", "namespace", managerNamespace, "--timeout="+deleted.String())
	checkGone(t, "helm uninstall", managerNamespace)
}

// helm runs the chart's helm against the cluster, with its cache,
// configuration and data in a temporary directory.
func helm(t *testing.T, args ...string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "herald-cluster-helm-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	return run(t, []string{
		"HELM_CACHE_HOME=" + filepath.Join(dir, "cache"),
		"HELM_CONFIG_HOME=" + filepath.Join(dir, "config"),
		"HELM_DATA_HOME=" + filepath.Join(dir, "data"),
	}, env.helm, args...)
}
