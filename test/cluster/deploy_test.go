package cluster

import (
	"archive/tar"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

const (
	// managerNamespace, managerName and leaseName are what config/default
	// installs, and what the chart installs as release "herald".
	managerNamespace = "herald-system"
	managerName      = "herald-manager"
	leaseName        = "herald-manager.herald.dev"
	// metricsReaderRole is the ClusterRole a scraper needs.
	metricsReaderRole = "herald-metrics-reader"
	// managerUID is the image's user and group.
	managerUID = "65532"
)

// installed says how Herald is installed on the cluster now: "" (not by
// this run), "kustomize" (make deploy) or "helm". Each test installs what
// it needs, so that any one of them runs alone.
var installed string

// imported records that the image is in the node's containerd.
var imported bool

// deployKustomize installs Herald with `make deploy`, as README.md says,
// unless it is installed so already, and waits until both replicas are
// Ready. The Helm release goes first: both own the same CRDs and names.
func deployKustomize(t *testing.T) {
	t.Helper()
	if installed == "kustomize" {
		return
	}
	if installed == "helm" {
		uninstallChart(t)
	}
	importImage(t)
	// -o manifests: make deploy regenerates the CRDs and RBAC first, which
	// would write into the source tree; `make test` checks that they are
	// current (verify-generated), so what is applied is what it would write.
	start := time.Now()
	run(t, nil, "make", "--no-print-directory", "-o", "manifests", "deploy",
		"IMG="+env.img, "KUBECTL="+env.kubectl)
	waitDeployment(t, managerNamespace, managerName)
	t.Logf("make deploy: both replicas Ready %s after the apply", time.Since(start).Round(100*time.Millisecond))
	installed = "kustomize"
}

// importImage loads the manager image into the node's containerd, which
// needs no registry: the pods' image is there and is never pulled.
func importImage(t *testing.T) {
	t.Helper()
	if imported {
		return
	}
	run(t, nil, "ctr", "--address", env.sock, "-n", "k8s.io", "images", "import", env.imageTar)
	imported = true
}

// TestDeploy installs Herald with `make deploy`: both replicas of the
// manager become Ready through their probes, run the image built here
// (never pulled) as its non-root user with nothing privileged, one holds
// the lease, and the metrics endpoint serves only a token allowed to
// read it.
func TestDeploy(t *testing.T) {
	needCluster(t)
	deployKustomize(t)
	pods, leader := checkManagerPods(t, managerNamespace, managerName, leaseName)
	checkMetrics(t, pods, leader, leaseName, metricsReaderRole)
}

// waitDeployment waits until a Deployment has rolled out: every replica
// updated, Ready and available, no other pod left, and returns its pods.
func waitDeployment(t *testing.T, ns, name string) []corev1.Pod {
	t.Helper()
	var pods []corev1.Pod
	poll(t, "Deployment "+ns+"/"+name+" rolled out", podsReady, func() (bool, string, error) {
		var d appsv1.Deployment
		if err := get(client.ObjectKey{Namespace: ns, Name: name}, &d); err != nil {
			return false, err.Error(), nil
		}
		s := d.Status
		want := *d.Spec.Replicas
		if s.ObservedGeneration != d.Generation || s.Replicas != want || s.UpdatedReplicas != want ||
			s.ReadyReplicas != want || s.AvailableReplicas != want {
			return false, fmt.Sprintf("replicas %d, status %+v", want, s), nil
		}
		var found corev1.PodList
		if err := list(&found, client.InNamespace(ns), client.MatchingLabels(d.Spec.Selector.MatchLabels)); err != nil {
			return false, err.Error(), nil
		}
		if int32(len(found.Items)) != want {
			return false, fmt.Sprintf("%d pods, want %d", len(found.Items), want), nil
		}
		pods = found.Items
		return true, "", nil
	})
	return pods
}

// checkManagerPods checks the manager's pods as the kubelet runs them and
// returns them with the one that leads.
func checkManagerPods(t *testing.T, ns, deployment, lease string) ([]corev1.Pod, *corev1.Pod) {
	t.Helper()
	var d appsv1.Deployment
	if err := get(client.ObjectKey{Namespace: ns, Name: deployment}, &d); err != nil {
		t.Fatal(err)
	}
	if *d.Spec.Replicas != 2 {
		t.Fatalf("%d replicas, want 2 (leader election between two pods)", *d.Spec.Replicas)
	}
	wantArgs := d.Spec.Template.Spec.Containers[0].Args
	pods := waitDeployment(t, ns, deployment)
	wantImageID := imageID(t)
	for i := range pods {
		p := &pods[i]
		ready := false
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady {
				ready = c.Status == corev1.ConditionTrue
			}
		}
		if !ready || len(p.Status.ContainerStatuses) != 1 {
			t.Fatalf("pod %s: Ready %t, containers %+v", p.Name, ready, p.Status.ContainerStatuses)
		}
		cs := p.Status.ContainerStatuses[0]
		if !cs.Ready || cs.RestartCount != 0 || cs.State.Running == nil {
			t.Errorf("pod %s: container ready %t, %d restarts, state %+v; want running and ready, never restarted", p.Name, cs.Ready, cs.RestartCount, cs.State)
		}
		if cs.Image != env.img || cs.ImageID != wantImageID {
			t.Errorf("pod %s runs image %s (%s), want %s (%s), the one imported from %s", p.Name, cs.Image, cs.ImageID, env.img, wantImageID, env.imageTar)
		}
		checkNotPulled(t, p)
		checkProcess(t, p, wantArgs)
		checkMemoryLimit(t, p)
		// What the kubelet's probes asked, asked again from the node.
		for _, path := range []string{"/readyz", "/healthz"} {
			resp, err := http.Get("http://" + net.JoinHostPort(p.Status.PodIP, "8081") + path)
			if err != nil {
				t.Fatalf("pod %s: %v", p.Name, err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("pod %s: %s answers %s", p.Name, path, resp.Status)
			}
		}
	}
	// Readiness does not wait for the election: the lease comes moments
	// after the pods are Ready, or a lease duration after a leader died.
	var leader *corev1.Pod
	poll(t, "a pod of "+deployment+" leading", podsReady, func() (bool, string, error) {
		var l coordinationv1.Lease
		if err := get(client.ObjectKey{Namespace: ns, Name: lease}, &l); err != nil {
			return false, err.Error(), nil
		}
		holder := ptr.Deref(l.Spec.HolderIdentity, "")
		for i := range pods {
			if holderPod(holder) == pods[i].Name {
				leader = &pods[i]
				return true, "", nil
			}
		}
		return false, fmt.Sprintf("held by %q, none of the pods %v", holder, podNames(pods)), nil
	})
	return pods, leader
}

// checkMemoryLimit checks that the manager found its container's memory
// limit in the cgroup the kubelet made and set the runtime's soft limit to
// 90% of it (--memory-limit-ratio), as its log says.
func checkMemoryLimit(t *testing.T, p *corev1.Pod) {
	t.Helper()
	limit := p.Spec.Containers[0].Resources.Limits.Memory()
	if limit.IsZero() {
		t.Fatalf("pod %s has no memory limit", p.Name)
	}
	want := fmt.Sprintf(`"softLimitBytes":%d`, int64(float64(limit.Value())*0.9))
	logs := kubectl(t, nil, "-n", p.Namespace, "logs", p.Name)
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, "soft memory limit set") {
			if !strings.Contains(line, want) || !strings.Contains(line, fmt.Sprintf(`"limitBytes":%d`, limit.Value())) {
				t.Errorf("pod %s: %s; want limitBytes %d and %s", p.Name, line, limit.Value(), want)
			}
			return
		}
	}
	t.Errorf("pod %s never logged its soft memory limit:\n%s", p.Name, logs)
}

// imageID is the ID of the image in the tarball: its config's digest,
// which the tarball names, and which the kubelet reports as the
// container's imageID when it runs that image.
func imageID(t *testing.T) string {
	t.Helper()
	f, err := os.Open(env.imageTar)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s: no manifest.json: %v", env.imageTar, err)
		}
		if h.Name != "manifest.json" {
			continue
		}
		var m []struct{ Config string }
		if err := json.NewDecoder(tr).Decode(&m); err != nil || len(m) != 1 || !strings.HasPrefix(m[0].Config, "sha256:") {
			t.Fatalf("%s: manifest.json %+v: %v", env.imageTar, m, err)
		}
		return m[0].Config
	}
}

// checkNotPulled checks that the kubelet found the image on the node: it
// says so in a Pulled event, and never tried to pull it.
func checkNotPulled(t *testing.T, p *corev1.Pod) {
	t.Helper()
	present := fmt.Sprintf("Container image %q already present on machine", env.img)
	// Events are recorded asynchronously, moments after the fact.
	poll(t, "the Pulled event of pod "+p.Name, time.Minute, func() (bool, string, error) {
		var events corev1.EventList
		if err := list(&events, client.InNamespace(p.Namespace), client.MatchingFields{"involvedObject.name": p.Name}); err != nil {
			return false, err.Error(), nil
		}
		var seen []string
		found := false
		for _, e := range events.Items {
			seen = append(seen, e.Reason+": "+e.Message)
			if e.Reason == "Pulling" || e.Reason == "Failed" && strings.Contains(e.Message, "pull") {
				return false, "", fmt.Errorf("pod %s: the kubelet pulled the image: %s", p.Name, e.Message)
			}
			found = found || e.Reason == "Pulled" && strings.HasPrefix(e.Message, present)
		}
		return found, fmt.Sprintf("events %q", seen), nil
	})
}

// checkProcess reads the manager's process on the node: it is the image's
// entrypoint with the Deployment's arguments, runs as the image's user and
// group, with no capabilities, no way to gain privileges, the runtime's
// seccomp filter and a read-only root filesystem.
func checkProcess(t *testing.T, p *corev1.Pod, wantArgs []string) {
	t.Helper()
	pid := containerPID(t, p)
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Split(strings.TrimSuffix(string(cmdline), "\x00"), "\x00"), append([]string{"/manager"}, wantArgs...); !slices.Equal(got, want) {
		t.Errorf("pod %s runs %q, want %q", p.Name, got, want)
	}
	status := procStatus(t, pid)
	ids := strings.Join([]string{managerUID, managerUID, managerUID, managerUID}, "\t")
	for field, want := range map[string]string{
		"Uid": ids, "Gid": ids, "Groups": managerUID,
		"CapInh": "0000000000000000", "CapPrm": "0000000000000000", "CapEff": "0000000000000000",
		"CapBnd": "0000000000000000", "CapAmb": "0000000000000000",
		"NoNewPrivs": "1",
		"Seccomp":    "2", // filter mode: RuntimeDefault
	} {
		if status[field] != want {
			t.Errorf("pod %s: process %d has %s %q, want %q", p.Name, pid, field, status[field], want)
		}
	}
	mountinfo, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		t.Fatal(err)
	}
	rootRO := false
	for _, line := range strings.Split(string(mountinfo), "\n") {
		// Fields: ID, parent, major:minor, root, mount point, options.
		f := strings.Fields(line)
		if len(f) > 5 && f[4] == "/" {
			rootRO = slices.Contains(strings.Split(f[5], ","), "ro")
		}
	}
	if !rootRO {
		t.Errorf("pod %s: the root filesystem is writable (readOnlyRootFilesystem)", p.Name)
	}
}

// containerPID is the node's PID of a pod's only container, from the
// node's containerd, which names the task after the container.
func containerPID(t *testing.T, p *corev1.Pod) int {
	t.Helper()
	if len(p.Status.ContainerStatuses) != 1 {
		t.Fatalf("pod %s has %d containers", p.Name, len(p.Status.ContainerStatuses))
	}
	id, ok := strings.CutPrefix(p.Status.ContainerStatuses[0].ContainerID, "containerd://")
	if !ok {
		t.Fatalf("pod %s: container %q is not containerd's", p.Name, p.Status.ContainerStatuses[0].ContainerID)
	}
	out, err := exec.Command("ctr", "--address", env.sock, "-n", "k8s.io", "tasks", "ls").CombinedOutput()
	if err != nil {
		t.Fatalf("ctr tasks ls: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == id && f[2] == "RUNNING" {
			pid, err := strconv.Atoi(f[1])
			if err != nil {
				t.Fatalf("ctr tasks ls: %q", line)
			}
			return pid
		}
	}
	t.Fatalf("pod %s: no running task %s in\n%s", p.Name, id, out)
	return 0
}

// procStatus reads /proc/<pid>/status into its fields.
func procStatus(t *testing.T, pid int) map[string]string {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	fields := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			fields[k] = strings.TrimSpace(v)
		}
	}
	return fields
}

// leaseHolder returns the lease's holder, "" while there is none.
func leaseHolder(t *testing.T, ns, name string) (string, *coordinationv1.Lease) {
	t.Helper()
	var l coordinationv1.Lease
	if err := get(client.ObjectKey{Namespace: ns, Name: name}, &l); err != nil {
		t.Fatalf("lease %s/%s: %v", ns, name, err)
	}
	if l.Spec.HolderIdentity == nil {
		return "", &l
	}
	return *l.Spec.HolderIdentity, &l
}

// holderPod is the pod a holder identity names: client-go's is the host
// name, which is the pod's name, an underscore and a UUID.
func holderPod(holder string) string {
	pod, _, _ := strings.Cut(holder, "_")
	return pod
}

func podNames(pods []corev1.Pod) []string {
	var names []string
	for _, p := range pods {
		names = append(names, p.Name)
	}
	return names
}

// checkMetrics scrapes every replica's metrics endpoint from the node,
// through the pod's address: no token gets 401, a token the apiserver
// refuses 500, a service account without readerRole 403, one bound to it
// 200, with the leader's gauge 1 on the leader only.
func checkMetrics(t *testing.T, pods []corev1.Pod, leader *corev1.Pod, lease, readerRole string) {
	t.Helper()
	ns := "metrics-check"
	createNamespace(t, ns)
	kubectl(t, nil, "-n", ns, "create", "serviceaccount", "reader")
	kubectl(t, nil, "-n", ns, "create", "serviceaccount", "stranger")
	binding := "herald-cluster-test-metrics-reader"
	kubectl(t, nil, "create", "clusterrolebinding", binding, "--clusterrole", readerRole, "--serviceaccount", ns+":reader")
	t.Cleanup(func() {
		if _, err := kubectlErr(nil, "delete", "clusterrolebinding", binding, "--ignore-not-found"); err != nil {
			t.Error(err)
		}
	})
	reader := strings.TrimSpace(kubectl(t, nil, "-n", ns, "create", "token", "reader"))
	stranger := strings.TrimSpace(kubectl(t, nil, "-n", ns, "create", "token", "stranger"))

	for i := range pods {
		p := &pods[i]
		url := "https://" + net.JoinHostPort(p.Status.PodIP, "8443") + "/metrics"
		for _, c := range []struct {
			who, token string
			want       int
		}{
			{"no token", "", http.StatusUnauthorized},
			// The apiserver's TokenReview refuses it with an error in its
			// status, which controller-runtime's filter takes for a failure
			// to authenticate at all: 500 "Authentication failed".
			{"a token the apiserver did not issue", "not-a-token", http.StatusInternalServerError},
			{"a service account without " + readerRole, stranger, http.StatusForbidden},
		} {
			if code, body := scrape(t, url, c.token); code != c.want || strings.Contains(body, "leader_election") {
				t.Errorf("pod %s, %s: metrics answer %d, want %d and no metrics:\n%s", p.Name, c.who, code, c.want, tail([]byte(body), 5))
			}
		}
		want := 0
		if p.Name == leader.Name {
			want = 1
		}
		line := fmt.Sprintf("leader_election_master_status{name=%q} %d", lease, want)
		// RBAC reaches the apiserver's authorizer moments after the
		// binding, and the manager caches a denial for a while: poll.
		poll(t, "pod "+p.Name+" serving metrics to "+ns+"/reader", 2*time.Minute, func() (bool, string, error) {
			code, body := scrape(t, url, reader)
			if code != http.StatusOK {
				return false, fmt.Sprintf("last answer %d", code), nil
			}
			return slices.Contains(strings.Split(body, "\n"), line), fmt.Sprintf("the metrics lack %q (leader %s)", line, leader.Name), nil
		})
	}
}

// metricsClient skips certificate checks: the manager serves metrics with
// a certificate it signs itself at start, which nothing else knows.
var metricsClient = &http.Client{
	Timeout:   20 * time.Second,
	Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
}

// scrape GETs url with a bearer token, none when empty, and returns the
// status code and body.
func scrape(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := metricsClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

// undeployKustomize removes the kustomize install with `make undeploy`
// and checks that it took everything with it.
func undeployKustomize(t *testing.T) {
	t.Helper()
	run(t, nil, "make", "--no-print-directory", "undeploy", "KUBECTL="+env.kubectl)
	installed = ""
	checkGone(t, "make undeploy", managerNamespace)
}

// checkGone fails t unless the namespace and Herald's cluster-wide objects
// are gone.
func checkGone(t *testing.T, after, ns string) {
	t.Helper()
	poll(t, "namespace "+ns+" gone after "+after, deleted, func() (bool, string, error) {
		err := get(client.ObjectKey{Name: ns}, &corev1.Namespace{})
		if apierrors.IsNotFound(err) {
			return true, "", nil
		}
		return false, fmt.Sprintf("namespace: %v", err), nil
	})
	out := kubectl(t, nil, "get", "crd,clusterrole,clusterrolebinding", "-o", "name")
	var left []string
	for _, name := range strings.Fields(out) {
		if strings.Contains(name, "herald") {
			left = append(left, name)
		}
	}
	if len(left) > 0 {
		t.Fatalf("after %s, still there: %v", after, left)
	}
}
