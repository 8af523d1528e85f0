package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/internal/demo"
	"github.com/heraldiot/herald/internal/devicesim"
	"github.com/heraldiot/herald/internal/testenv"
	"github.com/heraldiot/herald/mqtt"
	"github.com/heraldiot/herald/protocol"
)

// The fault loops run a rollout while a component is killed again and
// again. `make test` runs them small; `make test-faults` sets these to the
// full form (2,000 devices, 20 kills).
const (
	envFaultDevices = "HERALD_FAULT_DEVICES"
	envFaultKills   = "HERALD_FAULT_KILLS"
	// envFaultSeed replays the kill points and outage lengths of a run,
	// which the test logs.
	envFaultSeed = "HERALD_FAULT_SEED"
)

// TestFaultBrokerKills SIGKILLs mosquitto (persistent, as a production
// broker is) and restarts it, again and again, while a rollout runs. Every
// restart loses what the broker acknowledged but had not written to disk
// yet: devices reconnect by themselves and publish presence, inventory and
// their latest status again (docs/protocol.md §2.3), and the operator
// rebuilds the fleet from the retained messages and publishes again any
// notice the broker lost. The rollout must end with every count exact.
//
// The next kill does not wait for the operator to be back: a broker that
// dies again while the operator reconnects or rebuilds is a fault too.
func TestFaultBrokerKills(t *testing.T) {
	runFaultLoop(t, faultLoop{
		component:  "broker",
		persistent: true,
		kill: func(ctx context.Context, st *demo.Stack, r *rand.Rand) (string, error) {
			if err := st.Broker.Kill(); err != nil {
				return "", err
			}
			// The outage is a fault parameter, not a wait for an event:
			// a longer one makes reconnect attempts fail and back off.
			down := time.Duration(r.Int64N(int64(500 * time.Millisecond)))
			if !demo.Sleep(ctx, down) {
				return "", ctx.Err()
			}
			start := time.Now()
			if err := st.Broker.Start(); err != nil {
				return "", err
			}
			return fmt.Sprintf("down %s, up again in %s", down.Round(time.Millisecond), time.Since(start).Round(time.Millisecond)), nil
		},
	})
}

// TestFaultOperatorKills SIGKILLs the manager process and starts a new one,
// again and again, while a rollout runs. The rollout's progress lives in
// its status in the apiserver and in the broker's retained messages; each
// new manager rebuilds the fleet from those and carries on. The rollout
// must end with every count exact.
//
// Each kill waits until the manager started before it has rebuilt its
// picture and gone on with the rollout, so that every kill interrupts
// one at work, not one still starting.
func TestFaultOperatorKills(t *testing.T) {
	runFaultLoop(t, faultLoop{
		component:     "operator",
		awaitOperator: true,
		kill: func(ctx context.Context, st *demo.Stack, _ *rand.Rand) (string, error) {
			start := time.Now()
			if err := st.RestartManager(ctx, true); err != nil {
				return "", err
			}
			return fmt.Sprintf("new manager ready in %s", time.Since(start).Round(time.Millisecond)), nil
		},
	})
}

// faultLoop is one component to kill while a rollout runs.
type faultLoop struct {
	// component names what is killed, for messages.
	component string
	// persistent starts the broker with persistence.
	persistent bool
	// awaitOperator makes each kill wait until the operator has gone on
	// with the rollout since the last one (see operatorBack).
	awaitOperator bool
	// kill kills the component and brings it back; it describes what it
	// did in a few words.
	kill func(ctx context.Context, st *demo.Stack, r *rand.Rand) (string, error)
}

// faultSize is how big a fault loop is.
type faultSize struct {
	devices, kills int
	seed           uint64
	// pace divides the demo profile's download, install and reboot
	// times: the short form runs its devices faster. Outcomes do not
	// depend on it (devicesim.FirstOutcome).
	pace float64
	// parallel runs the loops side by side. They spend much of the short
	// form waiting for simulated work and reconnects; two full-size
	// fleets on one small machine would measure the machine instead.
	parallel bool
	// timeout bounds the whole test.
	timeout time.Duration
}

// faultSizes reads the fault loop's size from the environment: by default
// the short form that `make test` runs.
func faultSizes(t *testing.T) faultSize {
	t.Helper()
	size := faultSize{devices: 300, kills: 5, seed: uint64(time.Now().UnixNano()), pace: 2, parallel: true}
	for _, v := range []struct {
		env string
		to  *int
	}{{envFaultDevices, &size.devices}, {envFaultKills, &size.kills}} {
		if s := os.Getenv(v.env); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 {
				t.Fatalf("%s=%q: want a positive whole number", v.env, s)
			}
			*v.to = n
			size.pace, size.parallel = 1, false
		}
	}
	if s := os.Getenv(envFaultSeed); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: want a whole number", envFaultSeed, s)
		}
		size.seed = seed
	}
	// A bound, not an estimate: the short form takes about a minute. Each
	// kill may cost up to the operator's 30s reconnect backoff, and every
	// device reconnects and the operator replays every retained message.
	size.timeout = 3*time.Minute + time.Duration(size.kills)*(45*time.Second+time.Duration(size.devices)*10*time.Millisecond)
	return size
}

// killRecord is one kill, for the report.
type killRecord struct {
	finished int // device updates finished when it happened
	at       time.Duration
	what     string
}

func runFaultLoop(t *testing.T, fl faultLoop) {
	size := faultSizes(t)
	if size.parallel {
		t.Parallel()
	}
	n := size.devices
	r := rand.New(rand.NewPCG(size.seed, size.seed^0x2545f4914f6cdd1d))
	t.Logf("%d devices at %gx the demo profile's pace, %d %s kills, seed %d (%s=%d replays the kill points)", n, size.pace, size.kills, fl.component, size.seed, envFaultSeed, size.seed)
	ctx, cancel := context.WithTimeout(context.Background(), size.timeout)
	defer cancel()

	out := &lineLogger{t: t}
	defer out.flush()
	cfg := demo.Config{Root: root, Dir: t.TempDir(), BinDir: binDir, Assets: assets, Out: out}
	// The operator replays about three retained messages per device at
	// every (re)connect, more than mosquitto queues for one client by
	// default (docs/operator.md, broker requirements).
	cfg.BrokerOptions = testenv.BrokerOptions{Persistence: fl.persistent, Config: []string{"max_queued_messages 0"}}
	if fl.persistent {
		// Save the database every second rather than after every change,
		// as testenv's persistent broker does: rewriting 2,000 sessions
		// and 6,000 retained messages after each of a rollout's changes
		// is then all mosquitto does. A kill loses up to a second of
		// acknowledged messages, as it can in production.
		cfg.BrokerOptions.Config = append(cfg.BrokerOptions.Config, "autosave_on_changes false", "autosave_interval 1")
	}
	st, err := demo.StartStack(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := st.Stop(); err != nil {
			t.Errorf("stopping the stack: %v", err)
		}
	}()
	samples, err := st.Samples(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ro := faultRollout(&samples.Rollout, min(size.kills+1, maxWaves))
	profile, err := devicesim.LoadProfile(filepath.Join(root, "hack", "demo", "fleet.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	behavior := profile.Behavior.Behavior()
	want := expect(t, n, behavior, ro, len(ro.Spec.Strategy.Waves))
	// Device updates the rollout will see finish: those already on the
	// target version report nothing.
	total := want.Accepted + want.Rejected
	if total < 2*size.kills {
		t.Fatalf("%d devices make %d updates, too few for %d kills", n, total, size.kills)
	}

	prog := newProgress()
	fleet, fetches := startFleet(ctx, t, st, profile, samples.Fleet.Spec.TopicRoot, n, size.pace, prog)
	defer fetches.CloseIdleConnections()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		fleet.StopAll(sctx)
	}()

	if err := st.Client.Create(ctx, &samples.Fleet); err != nil {
		t.Fatal(err)
	}
	fleetKey := client.ObjectKeyFromObject(&samples.Fleet)
	if err := eventually(ctx, 200*time.Millisecond, func() (bool, error) {
		var f v1.DeviceFleet
		if err := st.Client.Get(ctx, fleetKey, &f); err != nil {
			return false, err
		}
		return apimeta.IsStatusConditionTrue(f.Status.Conditions, v1.ConditionReady) &&
			int(f.Status.Devices.Known) == n && int(f.Status.Devices.Online) == n, nil
	}); err != nil {
		t.Fatalf("DeviceFleet %s never knew all %d devices online: %v", fleetKey.Name, n, err)
	}

	begin := time.Now()
	if err := st.Client.Create(ctx, ro); err != nil {
		t.Fatal(err)
	}
	roKey := client.ObjectKeyFromObject(ro)
	watch := watchRollout(ctx, st.Client, fleetKey, roKey, begin)

	// Kill at progress milestones, counted from the devices' own reports,
	// rather than on a clock, so that the kills land inside the rollout
	// however fast the machine is; and only once some device has finished
	// an update since the last kill, so that the rollout is moving.
	var kills []killRecord
	last := 0
	for i, point := range killPoints(r, size.kills, total) {
		at := max(point, last+1)
		if at >= total {
			failFault(t, st, roKey, watch, fmt.Sprintf("kill %d of %d", i+1, size.kills), fmt.Errorf("the devices had finished %d of %d updates: none was left to kill during", last, total))
		}
		if err := prog.waitFor(ctx, at, st.Manager.Done()); err != nil {
			failFault(t, st, roKey, watch, fmt.Sprintf("waiting for kill %d of %d (at %d of %d device updates finished)", i+1, size.kills, at, total), err)
		}
		finished := prog.finished()
		if finished >= total {
			failFault(t, st, roKey, watch, fmt.Sprintf("kill %d of %d", i+1, size.kills), fmt.Errorf("every device finished (%d updates) before it could happen", total))
		}
		k := killRecord{finished: finished, at: time.Since(begin)}
		what, err := fl.kill(ctx, st, r)
		if err != nil {
			failFault(t, st, roKey, watch, fmt.Sprintf("kill %d of the %s", i+1, fl.component), err)
		}
		k.what = what
		if fl.awaitOperator {
			restarted := time.Now()
			if err := operatorBack(ctx, st, roKey); err != nil {
				failFault(t, st, roKey, watch, fmt.Sprintf("waiting for the operator to go on with the rollout after kill %d", i+1), err)
			}
			k.what += fmt.Sprintf("; it went on with the rollout %s later", time.Since(restarted).Round(time.Millisecond))
		}
		last = prog.finished()
		kills = append(kills, k)
		t.Logf("kill %d/%d of the %s at %s, %d of %d device updates finished: %s", i+1, size.kills, fl.component, k.at.Round(time.Millisecond), k.finished, total, k.what)
	}

	var got v1.FirmwareRollout
	if err := eventually(ctx, 250*time.Millisecond, func() (bool, error) {
		if err := st.Manager.Exited(); err != nil {
			return false, err
		}
		if err := st.Client.Get(ctx, roKey, &got); err != nil {
			return false, err
		}
		return got.Status.Phase.Terminal(), nil
	}); err != nil {
		failFault(t, st, roKey, watch, "waiting for the rollout to end", err)
	}
	took := time.Since(begin)
	watch.stop()
	defer func() {
		if t.Failed() {
			t.Logf("the rollout's status over time:\n%s", strings.Join(watch.timeline, "\n"))
		}
	}()

	checkFaultRollout(t, &got, want)
	checkFaultDevices(ctx, t, fleet, n, want)
	checkFaultFleet(ctx, t, st, fleetKey, n, ro.Spec.Firmware.Version, want)
	if d := st.Firmware.Downloads(); d != int64(want.Accepted) {
		t.Errorf("%d image downloads, want one for each of the %d devices that accepted", d, want.Accepted)
	}
	mlog, err := readManagerLog(st.Manager.Log)
	if err != nil {
		t.Error(err)
	}
	if mlog.races > 0 {
		t.Errorf("the race detector reported %d data races in the manager; see %s", mlog.races, st.Manager.Log)
	}

	// The numbers, for the record.
	tot := got.Status.Totals
	t.Logf("%s kills: %d; rollout %s in %s (status: started %s, completed %s)", fl.component, len(kills), got.Status.Phase, took.Round(time.Millisecond),
		timeOf(got.Status.StartTime), timeOf(got.Status.CompletionTime))
	t.Logf("totals: targeted %d, succeeded %d (%d already current), failed %d, rejected %d, canceled %d, waiting %d, notified %d, in progress %d",
		tot.Targeted, tot.Succeeded, want.Current, tot.Failed, tot.Rejected, tot.Canceled, tot.Waiting, tot.Notified, tot.InProgress)
	for i, w := range got.Status.Waves {
		t.Logf("wave %d: targeted %d, notified %d, succeeded %d, failed %d, rejected %d, %s", i+1, w.Targeted, w.Notified, w.Succeeded, w.Failed, w.Rejected, w.State)
	}
	s := fleet.Stats()
	t.Logf("devices: %d online of %d; %d updates, %d succeeded, %d failed, %d rejected, %d canceled, %d reboots",
		s.Online, s.Devices, s.Updates, s.Succeeded, s.Failed, s.Rejected, s.Canceled, s.Reboots)
	t.Logf("operator: %s", mlog)
	t.Logf("DeviceFleet: %s", watch.fleetOutages())
}

// timeOf renders a status time as 15:04:05, or "-".
func timeOf(t *metav1.Time) string {
	if t == nil {
		return "-"
	}
	return t.Format(time.TimeOnly)
}

// maxWaves is the most waves a FirmwareRollout may have.
const maxWaves = 20

// faultRollout is the sample rollout in a number of waves (a 10% canary,
// then equal steps to 100%), without what a person or chance decides: no
// approval gate, and no failure policy, which would pause the rollout
// depending on the order in which devices happen to finish.
//
// Within a wave devices update without the operator; only the operator
// starts the next one. One wave per kill, and one more (up to the API's
// limit), keeps the rollout going for as long as the kills take, and has
// restarted operators start waves, not only count.
func faultRollout(sample *v1.FirmwareRollout, waves int) *v1.FirmwareRollout {
	ro := sample.DeepCopy()
	ro.Spec.Strategy.Waves = nil
	for i := range waves {
		percent := 10 + 90*i/(waves-1)
		ro.Spec.Strategy.Waves = append(ro.Spec.Strategy.Waves, v1.Wave{Percent: ptr.To(int32(percent))})
	}
	ro.Spec.ApprovedWaves = 0
	ro.Spec.FailurePolicy = nil
	return ro
}

// startFleet connects n devices of the demo profile to the stack's broker,
// in this process, each with its own MQTT connection and the settings
// fleetsim uses by default, pace times as fast as the profile says. They
// fetch the image from the stack's firmware server and report every state
// to prog.
func startFleet(ctx context.Context, t *testing.T, st *demo.Stack, profile *devicesim.Profile, topicRoot string, n int, pace float64, prog *progress) (*devicesim.Fleet, *http.Client) {
	t.Helper()
	behavior := profile.Behavior.Behavior()
	for _, d := range []*time.Duration{&behavior.DownloadTime, &behavior.InstallTime, &behavior.RebootTime} {
		*d = time.Duration(float64(*d) / pace)
	}
	fetches := &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	behavior.Fetch = devicesim.HTTPFetch(fetches)
	fleet := &devicesim.Fleet{}
	for _, s := range profile.Specs(n) {
		d, err := devicesim.New(devicesim.Config{
			ID: s.ID, Model: s.Model, FirmwareVersion: s.FirmwareVersion, HardwareRevision: s.HardwareRevision, Labels: s.Labels,
			Broker: st.Broker.URL(), Version: mqtt.V5, TopicRoot: topicRoot,
			KeepAlive: 30 * time.Second, WillDelay: 30 * time.Second, PersistentSession: true,
			Behavior: behavior, OnState: prog.observe,
		})
		if err != nil {
			t.Fatal(err)
		}
		fleet.Devices = append(fleet.Devices, d)
	}
	start := time.Now()
	if err := fleet.StartAll(ctx, 64); err != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		fleet.StopAll(sctx)
		t.Fatal(err)
	}
	t.Logf("%d devices online in %s", n, time.Since(start).Round(time.Millisecond))
	return fleet, fetches
}

// operatorBack waits until the rollout's counts, current wave or phase
// change after a restart. Only an operator that has rebuilt its picture of the fleet since
// it (or the broker) restarted plans the rollout and writes those; while
// it rebuilds it writes conditions alone. Devices keep finishing updates
// and waves keep starting, so a working operator changes them soon.
func operatorBack(ctx context.Context, st *demo.Stack, key client.ObjectKey) error {
	planned := func(s *v1.FirmwareRolloutStatus) string {
		return fmt.Sprintf("%s %d %+v", s.Phase, s.CurrentWave, s.Totals)
	}
	var ro v1.FirmwareRollout
	if err := st.Client.Get(ctx, key, &ro); err != nil {
		return err
	}
	before := planned(&ro.Status)
	return eventually(ctx, 100*time.Millisecond, func() (bool, error) {
		if err := st.Manager.Exited(); err != nil {
			return false, err
		}
		if err := st.Client.Get(ctx, key, &ro); err != nil {
			return false, err
		}
		return planned(&ro.Status) != before, nil
	})
}

// killPoints returns k counts of finished device updates, out of total, at
// which the kills happen: evenly spread over the first 75% of the updates,
// each moved by up to 40% of the spacing at random, so that they fall on
// different moments of the waves from seed to seed. The last one comes
// well before the last update, so that kills delayed by a burst of
// updates still find work left.
func killPoints(r *rand.Rand, k, total int) []int {
	spacing := 0.75 * float64(total) / float64(k)
	points := make([]int, k)
	prev := 0
	for i := range points {
		at := spacing*float64(i+1) + (2*r.Float64()-1)*0.4*spacing
		points[i] = max(prev+1, int(at))
		prev = points[i]
	}
	return points
}

// checkFaultRollout checks the rollout's status against what the devices
// were bound to do: every count exact, every wave complete.
func checkFaultRollout(t *testing.T, ro *v1.FirmwareRollout, want expected) {
	t.Helper()
	st := &ro.Status
	if st.Phase != v1.PhaseSucceeded || st.ObservedGeneration != ro.Generation {
		t.Errorf("phase %s at observed generation %d of %d (%s), want Succeeded", st.Phase, st.ObservedGeneration, ro.Generation, st.Message)
	}
	got := st.Totals
	if int(got.Targeted) != want.Targeted || int(got.Succeeded) != want.Succeeded || int(got.Failed) != want.Failed ||
		int(got.Rejected) != want.Rejected || got.Waiting != 0 || got.Notified != 0 || got.InProgress != 0 || got.Canceled != 0 {
		t.Errorf("totals %+v, want targeted %d succeeded %d failed %d rejected %d and nothing waiting, notified, in progress or canceled",
			got, want.Targeted, want.Succeeded, want.Failed, want.Rejected)
	}
	if st.Progress != fmt.Sprintf("%d/%d", want.Succeeded, want.Targeted) {
		t.Errorf("progress %q, want %d/%d", st.Progress, want.Succeeded, want.Targeted)
	}
	if len(st.Waves) != len(want.Waves) {
		t.Fatalf("%d waves in status, want %d", len(st.Waves), len(want.Waves))
	}
	for i, w := range st.Waves {
		ww := want.Waves[i]
		if w.State != v1.WaveCompleted || w.StartTime == nil || w.CompletionTime == nil ||
			w.Targeted != ww.Targeted || w.Succeeded != ww.Succeeded || w.Failed != ww.Failed || w.Rejected != ww.Rejected || w.Notified != ww.Targeted {
			t.Errorf("wave %d: %+v, want completed with targeted %d (all notified), succeeded %d, failed %d, rejected %d", i+1, w, ww.Targeted, ww.Succeeded, ww.Failed, ww.Rejected)
		}
	}
	checkFailureSample(t, st.FailureSample, want)
	if len(st.FailureSample) != min(len(want.Failures), 10) {
		t.Errorf("failure sample has %d devices, want %d", len(st.FailureSample), min(len(want.Failures), 10))
	}
}

// checkFaultFleet waits, up to a minute, for the DeviceFleet to show every
// device online and the rollout's firmware on every device it updated (the
// status follows device messages within a few seconds), then checks it.
func checkFaultFleet(ctx context.Context, t *testing.T, st *demo.Stack, key client.ObjectKey, n int, version string, want expected) {
	t.Helper()
	var f v1.DeviceFleet
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	settled := func() bool {
		d := f.Status.Devices
		return int(d.Known) == n && int(d.Online) == n && versionCount(f.Status.FirmwareVersions, version) == int32(want.Succeeded)
	}
	err := eventually(wctx, 250*time.Millisecond, func() (bool, error) {
		if err := st.Client.Get(wctx, key, &f); err != nil {
			return false, err
		}
		return settled(), nil
	})
	if err != nil {
		t.Errorf("DeviceFleet devices %+v, versions %+v (%v); want %d known and online, %d on %s",
			f.Status.Devices, f.Status.FirmwareVersions, err, n, want.Succeeded, version)
	}
}

// checkFaultDevices checks what the devices themselves did: each acted on
// the rollout's notice once, whatever was killed, and ended as predicted.
// Devices reconnect by themselves after a broker restart, some only after
// a backoff that grew over the kills (up to 5s), so it first waits, up to
// a minute, for all of them to be connected again.
func checkFaultDevices(ctx context.Context, t *testing.T, fleet *devicesim.Fleet, n int, want expected) {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var s devicesim.Stats
	_ = eventually(wctx, 100*time.Millisecond, func() (bool, error) {
		s = fleet.Stats()
		return s.Online == n, nil
	})
	if s.Online != n || s.Updates != want.Accepted+want.Rejected || s.Succeeded != want.Succeeded-want.Current ||
		s.Failed != want.Failed || s.Rejected != want.Rejected || s.Canceled != 0 {
		t.Errorf("devices: %d online, %d updates: %d succeeded, %d failed, %d rejected, %d canceled; want %d online and %d updates: %d succeeded, %d failed, %d rejected",
			s.Online, s.Updates, s.Succeeded, s.Failed, s.Rejected, s.Canceled,
			n, want.Accepted+want.Rejected, want.Succeeded-want.Current, want.Failed, want.Rejected)
	}
}

// failFault ends a fault test that could not go on, with the rollout's
// status, how it got there and the end of the manager's log as evidence.
func failFault(t *testing.T, st *demo.Stack, key client.ObjectKey, watch *rolloutWatch, doing string, err error) {
	t.Helper()
	watch.stop()
	t.Logf("the rollout's status over time:\n%s", strings.Join(watch.timeline, "\n"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var ro v1.FirmwareRollout
	status := "unknown"
	if gerr := st.Client.Get(ctx, key, &ro); gerr == nil {
		status = fmt.Sprintf("%s %q, totals %+v, waves %+v", ro.Status.Phase, ro.Status.Message, ro.Status.Totals, ro.Status.Waves)
	}
	t.Fatalf("%s: %v\nrollout: %s\nthe end of %s:\n%s", doing, err, status, st.Manager.Log, st.Manager.Tail(40))
}

// managerLog is what the manager's log (every manager the test started
// writes to it) tells.
type managerLog struct {
	// starts, lost, reconnectFailed and rebuildFailed count the managers
	// started, the fleet session's lost connections and failed reconnect
	// attempts, and rebuilds from retained messages that failed.
	starts, lost, reconnectFailed, rebuildFailed int
	// races counts the race detector's reports of a manager built with
	// -race.
	races int
}

func readManagerLog(path string) (managerLog, error) {
	var m managerLog
	data, err := os.ReadFile(path)
	if err != nil {
		return m, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		switch {
		case strings.HasPrefix(line, "WARNING: DATA RACE"):
			m.races++
		case strings.Contains(line, `"Starting Controller"`) && strings.Contains(line, `"controller":"devicefleet"`):
			m.starts++
		case strings.Contains(line, `"connection lost"`):
			m.lost++
		case strings.Contains(line, `"reconnect failed"`):
			m.reconnectFailed++
		case strings.Contains(line, "rebuilding the fleet from retained messages failed"):
			m.rebuildFailed++
		}
	}
	return m, nil
}

func (m managerLog) String() string {
	return fmt.Sprintf("%d manager starts, %d broker connections lost, %d failed reconnect attempts, %d failed rebuilds",
		m.starts, m.lost, m.reconnectFailed, m.rebuildFailed)
}

// rolloutWatch polls a rollout and its DeviceFleet in the background. It
// records when the fleet falls out of Ready and comes back, how often its
// lastSyncTime (a completed rebuild) changes, and every change of the
// rollout's phase, wave and counts, the evidence when a test fails.
type rolloutWatch struct {
	cancel context.CancelFunc
	done   chan struct{}
	// Written by the watch goroutine until done is closed.
	rebuilds int
	outages  []outage
	timeline []string
}

// outage is a time the DeviceFleet was not Ready, from the rollout's start.
type outage struct {
	from, to time.Duration // to is 0 while it lasts
	reason   string
}

func watchRollout(ctx context.Context, c client.Client, fleet, rollout client.ObjectKey, begin time.Time) *rolloutWatch {
	ctx, cancel := context.WithCancel(ctx)
	w := &rolloutWatch{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		var lastSync time.Time
		var lastLine string
		_ = eventually(ctx, 100*time.Millisecond, func() (bool, error) {
			var ro v1.FirmwareRollout
			if c.Get(ctx, rollout, &ro) == nil {
				s := &ro.Status
				line := fmt.Sprintf("%s wave %d %+v", s.Phase, s.CurrentWave, s.Totals)
				if line != lastLine {
					lastLine = line
					w.timeline = append(w.timeline, fmt.Sprintf("    %5.1fs %s", time.Since(begin).Seconds(), line))
				}
			}
			var f v1.DeviceFleet
			if c.Get(ctx, fleet, &f) != nil {
				return false, nil
			}
			if ls := f.Status.LastSyncTime; ls != nil && !ls.Time.Equal(lastSync) {
				if !lastSync.IsZero() {
					w.rebuilds++
				}
				lastSync = ls.Time
			}
			ready := apimeta.FindStatusCondition(f.Status.Conditions, v1.ConditionReady)
			open := len(w.outages) > 0 && w.outages[len(w.outages)-1].to == 0
			switch {
			case ready != nil && ready.Status != metav1.ConditionTrue && !open:
				w.outages = append(w.outages, outage{from: time.Since(begin), reason: ready.Reason})
			case ready != nil && ready.Status == metav1.ConditionTrue && open:
				w.outages[len(w.outages)-1].to = time.Since(begin)
			}
			return false, nil
		})
	}()
	return w
}

// stop ends the watch; the records can be read after it.
func (w *rolloutWatch) stop() {
	w.cancel()
	<-w.done
}

// fleetOutages describes the rebuilds and the times the fleet was not
// Ready, with their reasons: "17.4s-18.2s (0.8s) ConnectFailed".
func (w *rolloutWatch) fleetOutages() string {
	var parts []string
	var longest time.Duration
	for _, o := range w.outages {
		to := "end"
		if o.to != 0 {
			to = fmt.Sprintf("%.1fs (%.1fs)", o.to.Seconds(), (o.to - o.from).Seconds())
			longest = max(longest, o.to-o.from)
		}
		parts = append(parts, fmt.Sprintf("%.1fs-%s %s", o.from.Seconds(), to, o.reason))
	}
	return fmt.Sprintf("%d rebuilds seen (lastSyncTime changes); not Ready %d times, longest %.1fs: %s",
		w.rebuilds, len(w.outages), longest.Seconds(), strings.Join(parts, ", "))
}

// progress counts the updates the simulated devices have finished, from
// their own reports, and wakes whoever waits for a count.
type progress struct {
	mu    sync.Mutex
	count int
	// changed is closed, and replaced, whenever count grows.
	changed chan struct{}
}

func newProgress() *progress { return &progress{changed: make(chan struct{})} }

// observe is the devices' OnState.
func (p *progress) observe(_ string, s protocol.State) {
	if !s.Terminal() {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.count++
	close(p.changed)
	p.changed = make(chan struct{})
}

func (p *progress) finished() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.count
}

// waitFor waits until n updates have finished. It gives up when ctx ends
// or the operator process exits (stop closed).
func (p *progress) waitFor(ctx context.Context, n int, stop <-chan struct{}) error {
	for {
		p.mu.Lock()
		count, changed := p.count, p.changed
		p.mu.Unlock()
		if count >= n {
			return nil
		}
		select {
		case <-changed:
		case <-stop:
			return errors.New("the operator exited")
		case <-ctx.Done():
			return fmt.Errorf("%d device updates finished: %w", count, ctx.Err())
		}
	}
}

// eventually calls cond every interval until it reports true, returns an
// error, or ctx ends.
func eventually(ctx context.Context, interval time.Duration, cond func() (bool, error)) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
