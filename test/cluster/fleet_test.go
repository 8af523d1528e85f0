package cluster

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/internal/devicesim"
	"github.com/heraldiot/herald/internal/devicesim/predict"
	"github.com/heraldiot/herald/internal/testenv"
)

// fleet is a simulated fleet: hack/demo/fleet.yaml's models and versions,
// with outcomes drawn so that every wave of the rollout below has devices
// that succeed, and some that fail or reject (TestFleetPlan checks).
type fleet struct {
	// devices is the fleet's size; prefix starts every device ID, so that
	// no two tests' devices share an MQTT session on the broker.
	devices int
	prefix  string
}

const (
	// failProbability and rejectProbability are fleetsim's flags.
	failProbability   = 0.1
	rejectProbability = 0.05
	// The rollout every fleet test runs: firmware 2.1.0 for the two
	// models on 1.8.0 or later, in three waves, the second one gated.
	targetVersion  = "2.1.0"
	currentVersion = ">=1.8.0, <2.1.0"
)

var (
	targetModels = []string{"th-sensor", "th-sensor-pro"}
	wavePercents = []int32{10, 50, 100}
)

// profile is hack/demo/fleet.yaml with the fleet's prefix and outcome
// probabilities: what fleetsim runs.
func (f fleet) profile(t *testing.T) *devicesim.Profile {
	t.Helper()
	p, err := devicesim.LoadProfile(filepath.Join(repoRoot(t), "hack", "demo", "fleet.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	p.IDPrefix = f.prefix
	p.Behavior.FailProbability = failProbability
	p.Behavior.RejectProbability = rejectProbability
	return p
}

// repoRoot is the repository, also when TestFleetPlan runs without a
// cluster and setup left env empty.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// planRollout predicts what the rollout reports on f: every device's
// first outcome is known in advance.
func planRollout(t *testing.T, f fleet) predict.Outcome {
	t.Helper()
	profile := f.profile(t)
	spec := v1.FirmwareRolloutSpec{
		Firmware: v1.FirmwareSpec{Version: targetVersion, Models: targetModels},
		Selector: &v1.DeviceSelector{CurrentVersion: currentVersion},
	}
	for _, pct := range wavePercents {
		spec.Strategy.Waves = append(spec.Strategy.Waves, v1.Wave{Percent: ptr.To(pct)})
	}
	p, err := predict.Rollout(profile.Specs(f.devices), profile.Behavior.Behavior(), &spec, len(wavePercents))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// The fleets the tests run: small enough to roll out in seconds, large
// enough that every wave has devices.
var (
	rolloutFleet  = fleet{devices: 40, prefix: "ro-"}
	failoverFleet = fleet{devices: 40, prefix: "lead-"}
)

// TestFleetPlan checks the fleets themselves, with no cluster: every wave
// targets devices, and both failures and rejections occur, so the counts
// the rollout tests compare say something.
func TestFleetPlan(t *testing.T) {
	for _, f := range []fleet{rolloutFleet, failoverFleet} {
		p := planRollout(t, f)
		if p.Failed == 0 || p.Rejected == 0 || p.Targeted == f.devices {
			t.Errorf("fleet %q: %+v; want failures, rejections and untargeted devices", f.prefix, p)
		}
		for i, w := range p.Waves {
			if w.Targeted == 0 || w.Succeeded == 0 {
				t.Errorf("fleet %q: wave %d %+v; want devices that succeed in every wave", f.prefix, i+1, w)
			}
		}
	}
}

// TestRollout runs a fleet on the host against the manager in the cluster:
// the DeviceFleet becomes Ready with every device, and a three-wave
// rollout, approved at its gate, succeeds with exact counts.
func TestRollout(t *testing.T) {
	needCluster(t)
	deployKustomize(t)
	r := startRollout(t, "cluster-rollout", rolloutFleet)
	r.approve(t)
	r.finish(t)
}

// TestLeaderFailover kills the leading replica while the rollout waits at
// its approval gate: the other replica takes the lease once it expires,
// never before, goes on from what the broker and the rollout's status say,
// and the rollout completes with exact counts.
func TestLeaderFailover(t *testing.T) {
	needCluster(t)
	deployKustomize(t)
	r := startRollout(t, "cluster-failover", failoverFleet)

	pods, leader := checkManagerPods(t, managerNamespace, managerName, leaseName)
	holder, lease := leaseHolder(t, managerNamespace, leaseName)
	transitions := *lease.Spec.LeaseTransitions
	leaseDuration := time.Duration(*lease.Spec.LeaseDurationSeconds) * time.Second
	pid := containerPID(t, leader)
	// SIGKILL, as a crash or an OOM kill: the lease is not released, and
	// the other replica must wait for it to expire. Deleting the pod at
	// once keeps the kubelet from restarting the container in it, which
	// would compete for the lease too.
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	kubectl(t, nil, "-n", managerNamespace, "delete", "pod", leader.Name, "--grace-period=0", "--force", "--wait=false")
	t.Logf("killed the leader %s (pid %d on the node) at the approval gate", leader.Name, pid)
	// The approval lands while nobody leads: the next leader must see it.
	r.approve(t)

	var next string
	poll(t, "a new leader", leaseDuration+time.Minute, func() (bool, string, error) {
		h, _ := leaseHolder(t, managerNamespace, leaseName)
		next = h
		return h != "" && h != holder, "held by " + h, nil
	})
	takeover := time.Since(killed)
	t.Logf("%s took the lease %s after the kill (lease duration %s)", next, takeover.Round(100*time.Millisecond), leaseDuration)
	// client-go takes an expired lease on its next try, every retry
	// period (2 s, jittered to 2.4 s) after it saw the last renewal,
	// itself up to a retry period before the kill: 5 s of slack covers it
	// and the polling, and a release instead of a crash would show as a
	// takeover well before the lease's end.
	if takeover > leaseDuration+5*time.Second || takeover < leaseDuration/2 {
		t.Errorf("the lease changed hands %s after the kill; want about its duration, %s", takeover, leaseDuration)
	}
	var survivor string
	for _, p := range pods {
		if p.Name != leader.Name {
			survivor = p.Name
		}
	}
	if holderPod(next) == leader.Name {
		t.Errorf("the killed pod %s leads again", leader.Name)
	} else if holderPod(next) != survivor {
		// The Deployment's replacement pod may win the race with the
		// survivor; either is a replica taking over.
		t.Logf("the replacement pod, not the survivor %s, took over", survivor)
	}
	_, lease = leaseHolder(t, managerNamespace, leaseName)
	if *lease.Spec.LeaseTransitions != transitions+1 {
		t.Errorf("lease transitions %d, want %d: one hand-over", *lease.Spec.LeaseTransitions, transitions+1)
	}
	r.finish(t)
	// Both replicas run again, and only the new leader's gauge says it leads.
	pods, leader = checkManagerPods(t, managerNamespace, managerName, leaseName)
	if leader.Name != holderPod(next) {
		t.Errorf("leader %s, want %s, which took over", leader.Name, holderPod(next))
	}
	checkMetrics(t, pods, leader, leaseName, metricsReaderRole)
}

// rollout is one test's fleet and rollout in a namespace of its own.
type rollout struct {
	ns       string
	fleet    fleet
	plan     predict.Outcome
	firmware *firmwareServer
}

// startRollout starts the fleet's devices, applies a DeviceFleet and waits
// until it is Ready with every device, then applies the FirmwareRollout
// and waits until its first wave has completed with exact counts and the
// second waits for approval.
func startRollout(t *testing.T, ns string, f fleet) *rollout {
	t.Helper()
	r := &rollout{ns: ns, fleet: f, plan: planRollout(t, f), firmware: startFirmwareServer(t)}
	createNamespace(t, ns)
	topicRoot := "cluster/" + ns
	startFleetsim(t, f, topicRoot)
	applyFleet(t, ns, topicRoot, f.devices)
	fw := r.firmware
	kubectl(t, []byte(fmt.Sprintf(`apiVersion: herald.dev/v1alpha1
kind: FirmwareRollout
metadata:
  name: th-sensor-%[1]s
  namespace: %[2]s
spec:
  fleetRef: {name: sensors}
  firmware:
    version: %[1]s
    url: %[3]s
    sha256: %[4]s
    size: %[5]d
    models: [%[6]s, %[7]s]
  selector:
    currentVersion: %[8]q
  strategy:
    waves:
    - percent: %[9]d
    - percent: %[10]d
      requireApproval: true
    - percent: %[11]d
`, targetVersion, ns, fw.url, fw.sha256, len(fw.image), targetModels[0], targetModels[1], currentVersion,
		wavePercents[0], wavePercents[1], wavePercents[2])), "apply", "-f", "-")

	want := r.plan.Waves[0]
	ro := r.wait(t, "the first wave done, the second waiting for approval", func(ro *v1.FirmwareRollout) bool {
		return ro.Status.Phase == v1.PhaseWaitingForApproval
	})
	w := ro.Status.Waves
	if len(w) != 3 || w[0].State != v1.WaveCompleted || w[1].State != v1.WaveWaitingForApproval || w[2].State != v1.WavePending ||
		w[0].Targeted != want.Targeted || w[0].Succeeded != want.Succeeded || w[0].Failed != want.Failed || w[0].Rejected != want.Rejected {
		t.Fatalf("at the gate, waves %+v; want wave 1 completed with targeted %d succeeded %d failed %d rejected %d",
			w, want.Targeted, want.Succeeded, want.Failed, want.Rejected)
	}
	return r
}

// approve approves the second wave, as `kubectl herald approve` would.
func (r *rollout) approve(t *testing.T) {
	t.Helper()
	kubectl(t, nil, "-n", r.ns, "patch", "firmwarerollout", "th-sensor-"+targetVersion, "--type=merge", "-p", `{"spec":{"approvedWaves":1}}`)
}

// wait polls the rollout until done says so, failing t as soon as it ends
// otherwise.
func (r *rollout) wait(t *testing.T, what string, done func(*v1.FirmwareRollout) bool) *v1.FirmwareRollout {
	t.Helper()
	var ro v1.FirmwareRollout
	key := client.ObjectKey{Namespace: r.ns, Name: "th-sensor-" + targetVersion}
	poll(t, "FirmwareRollout "+key.String()+": "+what, rolloutDone, func() (bool, string, error) {
		if err := get(key, &ro); err != nil {
			return false, err.Error(), nil
		}
		if done(&ro) {
			return true, "", nil
		}
		st := &ro.Status
		if st.Phase.Terminal() {
			return false, "", fmt.Errorf("the rollout ended %s: %s", st.Phase, st.Message)
		}
		return false, fmt.Sprintf("phase %s, waves %+v, totals %+v", st.Phase, st.Waves, st.Totals), nil
	})
	return &ro
}

// finish waits for the rollout to succeed and compares everything it
// reports with the plan, then the fleet's versions and the downloads.
func (r *rollout) finish(t *testing.T) {
	t.Helper()
	ro := r.wait(t, "Succeeded", func(ro *v1.FirmwareRollout) bool { return ro.Status.Phase == v1.PhaseSucceeded })
	st, want := &ro.Status, r.plan
	if st.ObservedGeneration != ro.Generation {
		t.Errorf("observed generation %d of %d", st.ObservedGeneration, ro.Generation)
	}
	got := st.Totals
	if int(got.Targeted) != want.Targeted || int(got.Succeeded) != want.Succeeded || int(got.Failed) != want.Failed ||
		int(got.Rejected) != want.Rejected || got.Waiting != 0 || got.Notified != 0 || got.InProgress != 0 || got.Canceled != 0 {
		t.Errorf("totals %+v, want targeted %d succeeded %d failed %d rejected %d", got, want.Targeted, want.Succeeded, want.Failed, want.Rejected)
	}
	if st.Progress != fmt.Sprintf("%d/%d", want.Succeeded, want.Targeted) {
		t.Errorf("progress %q, want %d/%d", st.Progress, want.Succeeded, want.Targeted)
	}
	for i, w := range st.Waves {
		ww := want.Waves[i]
		if w.State != v1.WaveCompleted || w.StartTime == nil || w.CompletionTime == nil || w.Targeted != ww.Targeted ||
			w.Notified != ww.Targeted || w.Succeeded != ww.Succeeded || w.Failed != ww.Failed || w.Rejected != ww.Rejected {
			t.Errorf("wave %d: %+v, want targeted %d succeeded %d failed %d rejected %d", i+1, w, ww.Targeted, ww.Succeeded, ww.Failed, ww.Rejected)
		}
	}
	for _, c := range []struct {
		typ    string
		status metav1.ConditionStatus
	}{{v1.ConditionReady, metav1.ConditionTrue}, {v1.ConditionDegraded, metav1.ConditionFalse}, {v1.ConditionPaused, metav1.ConditionFalse}} {
		if cond := apimeta.FindStatusCondition(st.Conditions, c.typ); cond == nil || cond.Status != c.status {
			t.Errorf("condition %s = %+v, want %s", c.typ, cond, c.status)
		}
	}
	if len(st.FailureSample) != min(len(want.Failures), 10) {
		t.Errorf("failure sample has %d devices, want %d", len(st.FailureSample), min(len(want.Failures), 10))
	}
	for _, f := range st.FailureSample {
		if reason, ok := want.Failures[f.Device]; !ok || reason != f.Reason {
			t.Errorf("failure sample %+v: the device fails with %q", f, reason)
		}
	}
	// The fleet's status follows the devices' inventories moments later.
	var fl v1.DeviceFleet
	poll(t, "the fleet's versions after the rollout", fleetReady, func() (bool, string, error) {
		if err := get(client.ObjectKey{Namespace: r.ns, Name: "sensors"}, &fl); err != nil {
			return false, err.Error(), nil
		}
		return countOf(fl.Status.FirmwareVersions, targetVersion) == int32(want.Succeeded) &&
				int(fl.Status.Devices.Online) == r.fleet.devices,
			fmt.Sprintf("versions %+v, devices %+v; want %d on %s", fl.Status.FirmwareVersions, fl.Status.Devices, want.Succeeded, targetVersion), nil
	})
	if got := r.firmware.downloads.Load(); got != int64(want.Accepted) {
		t.Errorf("%d image downloads, want one for each of the %d devices that accepted", got, want.Accepted)
	}
}

func countOf(counts []v1.ValueCount, value string) int32 {
	for _, c := range counts {
		if c.Value == value {
			return c.Count
		}
	}
	return 0
}

// applyFleet applies a DeviceFleet on the package's broker and waits until
// it is Ready with n devices known and online.
func applyFleet(t *testing.T, ns, topicRoot string, n int) {
	t.Helper()
	start := time.Now()
	kubectl(t, []byte(fmt.Sprintf(`apiVersion: herald.dev/v1alpha1
kind: DeviceFleet
metadata:
  name: sensors
  namespace: %s
spec:
  broker:
    urls: [%s]
    protocolVersion: "5"
  topicRoot: %s
`, ns, broker(t).URL(), topicRoot)), "apply", "-f", "-")
	var f v1.DeviceFleet
	poll(t, "DeviceFleet "+ns+"/sensors Ready", fleetReady, func() (bool, string, error) {
		if err := get(client.ObjectKey{Namespace: ns, Name: "sensors"}, &f); err != nil {
			return false, err.Error(), nil
		}
		return apimeta.IsStatusConditionTrue(f.Status.Conditions, v1.ConditionReady) &&
				int(f.Status.Devices.Known) == n && int(f.Status.Devices.Online) == n,
			fmt.Sprintf("devices %+v, conditions %+v", f.Status.Devices, f.Status.Conditions), nil
	})
	t.Logf("DeviceFleet %s/sensors Ready with %d devices %s after the apply", ns, n, time.Since(start).Round(100*time.Millisecond))
}

// startFleetsim runs fleetsim on the host for the test's length.
func startFleetsim(t *testing.T, f fleet, topicRoot string) {
	t.Helper()
	log, err := os.Create(filepath.Join(t.TempDir(), "fleetsim.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(env.fleetsim,
		"--profile", filepath.Join(repoRoot(t), "hack", "demo", "fleet.yaml"),
		"--devices", strconv.Itoa(f.devices), "--id-prefix", f.prefix,
		"--broker", broker(t).URL(), "--topic-root", topicRoot, "--fetch",
		"--fail-probability", strconv.FormatFloat(failProbability, 'g', -1, 64),
		"--reject-probability", strconv.FormatFloat(rejectProbability, 'g', -1, 64),
		// Shorter than the profile's, so a wave takes about 3 s.
		"--download-time", "1s", "--install-time", "1s", "--reboot-time", "500ms")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Errorf("fleetsim ignored SIGTERM for 30 s")
		}
		log.Close()
		if t.Failed() {
			if out, err := os.ReadFile(log.Name()); err == nil {
				t.Logf("fleetsim's log:\n%s", tail(out, 40))
			}
		}
	})
}

// tail returns the last n lines of out.
func tail(out []byte, n int) []byte {
	lines := bytes.Split(bytes.TrimRight(out, "\n"), []byte("\n"))
	return bytes.Join(lines[max(len(lines)-n, 0):], []byte("\n"))
}

// firmwareServer serves one firmware image on the host, which fleetsim's
// devices download and check (--fetch); it counts the downloads.
type firmwareServer struct {
	url, sha256 string
	image       []byte
	downloads   atomic.Int64
}

func startFirmwareServer(t *testing.T) *firmwareServer {
	t.Helper()
	fs := &firmwareServer{image: make([]byte, 64<<10)}
	r := rand.New(rand.NewPCG(17, 2026))
	for i := range fs.image {
		fs.image[i] = byte(r.Uint32())
	}
	sum := sha256.Sum256(fs.image)
	fs.sha256 = hex.EncodeToString(sum[:])
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		fs.downloads.Add(1)
		http.ServeContent(w, req, "firmware.bin", time.Time{}, bytes.NewReader(fs.image))
	}))
	t.Cleanup(srv.Close)
	fs.url = srv.URL + "/firmware/th-sensor-" + targetVersion + ".bin"
	return fs
}
