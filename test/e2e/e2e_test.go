package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/internal/demo"
	"github.com/heraldiot/herald/internal/devicesim"
	"github.com/heraldiot/herald/internal/devicesim/predict"
	"github.com/heraldiot/herald/internal/testenv"
)

var (
	root, assets string
	// binDir holds the manager and fleetsim that TestMain builds.
	binDir string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctrl.SetLogger(logr.Discard())
	var err error
	if root, err = testenv.RepoRoot(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if assets, err = testenv.AssetsDir(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if _, err := testenv.MosquittoPath(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if binDir, err = os.MkdirTemp("", "herald-e2e-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(binDir)
	for out, pkg := range map[string]string{"manager": ".", "fleetsim": "./cmd/fleetsim"} {
		args := []string{"build", "-o", filepath.Join(binDir, out)}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, pkg)...)
		cmd.Dir = root
		if output, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "go build %s: %v\n%s", pkg, err, output)
			return 1
		}
	}
	return m.Run()
}

// runDemo runs the demo with n devices and extra fleetsim flags, logging
// its narration to the test.
func runDemo(t *testing.T, n int, fleetsimArgs ...string) (*demo.Result, error) {
	t.Helper()
	out := &lineLogger{t: t}
	defer out.flush()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	return demo.Run(ctx, demo.Options{
		Config: demo.Config{
			Root: root, Dir: t.TempDir(), BinDir: binDir, Assets: assets, Out: out,
		},
		Devices:      n,
		FleetsimArgs: fleetsimArgs,
		Timeout:      2 * time.Minute,
	})
}

// expected is what a rollout must report, computed from the fleet profile
// and the devices' predictable outcomes, and the fleet's device IDs.
type expected struct {
	predict.Outcome
	devices map[string]bool
}

// expect computes what the sample rollout reports on the first n devices
// of the demo fleet with behavior b, once the waves before upTo have run.
func expect(t *testing.T, n int, b devicesim.Behavior, ro *v1.FirmwareRollout, upTo int) expected {
	t.Helper()
	profile, err := devicesim.LoadProfile(filepath.Join(root, "hack", "demo", "fleet.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	specs := profile.Specs(n)
	out, err := predict.Rollout(specs, b, &ro.Spec, upTo)
	if err != nil {
		t.Fatal(err)
	}
	e := expected{Outcome: out, devices: map[string]bool{}}
	for _, d := range specs {
		e.devices[d.ID] = true
	}
	return e
}

// TestDemoRollout runs the demo on 60 devices: three waves, the approval
// gate, and a few devices that fail or reject; the outcome of every device
// is known in advance, so every count must be exact.
func TestDemoRollout(t *testing.T) {
	const n = 60
	res, err := runDemo(t, n)
	if err != nil {
		t.Fatal(err)
	}
	ro, st := res.Rollout, &res.Rollout.Status
	profile, err := devicesim.LoadProfile(filepath.Join(root, "hack", "demo", "fleet.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := expect(t, n, profile.Behavior.Behavior(), ro, len(ro.Spec.Strategy.Waves))
	if want.Failed == 0 || want.Targeted == n {
		t.Fatalf("the demo fleet should have failures and untargeted devices: %+v", want)
	}

	if st.Phase != v1.PhaseSucceeded || st.ObservedGeneration != ro.Generation {
		t.Fatalf("phase %s at observed generation %d of %d", st.Phase, st.ObservedGeneration, ro.Generation)
	}
	got := st.Totals
	if int(got.Targeted) != want.Targeted || int(got.Succeeded) != want.Succeeded || int(got.Failed) != want.Failed ||
		int(got.Rejected) != want.Rejected || got.Waiting != 0 || got.Notified != 0 || got.InProgress != 0 || got.Canceled != 0 {
		t.Fatalf("totals %+v, want targeted %d succeeded %d failed %d rejected %d", got, want.Targeted, want.Succeeded, want.Failed, want.Rejected)
	}
	if st.Progress != fmt.Sprintf("%d/%d", want.Succeeded, want.Targeted) {
		t.Errorf("progress %q", st.Progress)
	}
	for i, w := range st.Waves {
		ww := want.Waves[i]
		if w.State != v1.WaveCompleted || w.StartTime == nil || w.CompletionTime == nil ||
			w.Targeted != ww.Targeted || w.Succeeded != ww.Succeeded || w.Failed != ww.Failed || w.Rejected != ww.Rejected || w.Notified != ww.Targeted {
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
	checkFailureSample(t, st.FailureSample, want)
	if len(st.FailureSample) != min(len(want.Failures), 10) {
		t.Errorf("failure sample has %d devices, want %d", len(st.FailureSample), min(len(want.Failures), 10))
	}

	fl := res.Fleet.Status
	if fl.Devices.Known != n || fl.Devices.Online != n {
		t.Errorf("fleet devices %+v, want %d known and online", fl.Devices, n)
	}
	if got := versionCount(fl.FirmwareVersions, ro.Spec.Firmware.Version); got != int32(want.Succeeded) {
		t.Errorf("fleet versions %+v: %d devices run %s, want %d", fl.FirmwareVersions, got, ro.Spec.Firmware.Version, want.Succeeded)
	}
	if res.Downloads != int64(want.Accepted) {
		t.Errorf("%d image downloads, want one for each of the %d devices that accepted", res.Downloads, want.Accepted)
	}
}

// TestDemoFailurePolicyPauses has a third of the devices fail: the sample's
// failure policy pauses the rollout in its second wave, with the Degraded
// condition, a failure sample of real devices, and the third wave never
// started.
func TestDemoFailurePolicyPauses(t *testing.T) {
	const n = 60
	failure := 1.0 / 3
	res, err := runDemo(t, n, "--fail-probability", strconv.FormatFloat(failure, 'g', -1, 64))
	var rerr *demo.RolloutError
	if !errors.As(err, &rerr) || rerr.Phase != v1.PhasePaused {
		t.Fatalf("demo error %v, want a rollout paused by its failure policy", err)
	}
	ro, st := res.Rollout, &res.Rollout.Status
	profile, err := devicesim.LoadProfile(filepath.Join(root, "hack", "demo", "fleet.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	b := profile.Behavior.Behavior()
	b.FailProbability = failure
	// The policy needs 20 finished devices: the 60-device fleet reaches
	// them in wave 2, whose devices all finish; wave 3 never starts.
	want := expect(t, n, b, ro, 2)

	if w := st.Waves[2]; st.CurrentWave != 2 || w.StartTime != nil || w.State != v1.WavePending || w.Notified != want.Waves[2].Succeeded {
		t.Fatalf("paused in wave %d, wave 3 %+v; want wave 3 never started: more than 10%% of the devices that finished by the end of wave 2 failed (%d of %d), so the failure policy holds wave 3 back",
			st.CurrentWave, w, want.Failed, want.Failed+want.Succeeded-want.Current)
	}
	degraded := apimeta.FindStatusCondition(st.Conditions, v1.ConditionDegraded)
	if degraded == nil || degraded.Status != metav1.ConditionTrue || degraded.Reason != v1.ReasonFailureThreshold {
		t.Fatalf("Degraded condition %+v, want True with reason %s", degraded, v1.ReasonFailureThreshold)
	}
	if !apimeta.IsStatusConditionTrue(st.Conditions, v1.ConditionPaused) || apimeta.IsStatusConditionTrue(st.Conditions, v1.ConditionReady) {
		t.Fatalf("conditions %+v, want Paused and not Ready", st.Conditions)
	}
	got := st.Totals
	if int(got.Targeted) != want.Targeted || int(got.Succeeded) != want.Succeeded || int(got.Failed) != want.Failed ||
		int(got.Rejected) != want.Rejected || int(got.Waiting) != want.Waiting || got.Notified != 0 || got.InProgress != 0 {
		t.Fatalf("totals %+v, want targeted %d succeeded %d failed %d rejected %d waiting %d",
			got, want.Targeted, want.Succeeded, want.Failed, want.Rejected, want.Waiting)
	}
	if len(st.FailureSample) != min(len(want.Failures), 10) {
		t.Fatalf("failure sample has %d devices, want %d", len(st.FailureSample), min(len(want.Failures), 10))
	}
	checkFailureSample(t, st.FailureSample, want)
}

// checkFailureSample checks that every sampled failure names a device of
// the fleet that was bound to fail, with the reason it gave.
func checkFailureSample(t *testing.T, sample []v1.DeviceFailure, want expected) {
	t.Helper()
	for _, f := range sample {
		if !want.devices[f.Device] {
			t.Errorf("failure sample names %q, which is not a device of the fleet", f.Device)
			continue
		}
		if reason, ok := want.Failures[f.Device]; !ok || reason != f.Reason {
			t.Errorf("failure sample %+v: the device fails with %q", f, reason)
		}
	}
}

func versionCount(counts []v1.ValueCount, version string) int32 {
	for _, c := range counts {
		if c.Value == version {
			return c.Count
		}
	}
	return 0
}

// lineLogger sends the demo's narration to the test log, a line at a time.
type lineLogger struct {
	t   *testing.T
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	for {
		line, err := l.buf.ReadString('\n')
		if err != nil {
			l.buf.WriteString(line)
			return len(p), nil
		}
		l.t.Log(strings.TrimRight(line, "\n"))
	}
}

func (l *lineLogger) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buf.Len() > 0 {
		l.t.Log(l.buf.String())
		l.buf.Reset()
	}
}
