package demo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/internal/devicesim"
	"github.com/heraldiot/herald/internal/view"
)

// Options configure Run.
type Options struct {
	Config
	// Profile is the fleetsim profile (default hack/demo/fleet.yaml).
	Profile string
	// Devices is the fleet's size; 0 means the profile's.
	Devices int
	// FleetsimArgs are more fleetsim flags, such as --fail-probability 0.3.
	FleetsimArgs []string
	// ApprovePause is how long the demo waits at an approval gate before
	// it approves it.
	ApprovePause time.Duration
	// Timeout bounds the rollout, from its creation to its end (default 5m).
	Timeout time.Duration
	// Keep leaves everything running after the rollout until ctx ends.
	Keep bool
}

// Result is what a run saw.
type Result struct {
	// Samples are the objects the demo applied.
	Samples *Samples
	// Devices is the size of the simulated fleet.
	Devices int
	// Rollout and Fleet are the objects as they were at the end.
	Rollout *v1.FirmwareRollout
	Fleet   *v1.DeviceFleet
	// Downloads counts the firmware image's downloads.
	Downloads int64
}

// RolloutError says why a rollout did not succeed.
type RolloutError struct {
	Phase   v1.RolloutPhase
	Message string
}

func (e *RolloutError) Error() string {
	return fmt.Sprintf("the rollout ended %s: %s", e.Phase, e.Message)
}

// Run is the demo: it starts the stack and a simulated fleet, applies
// config/samples, narrates the rollout, approves its gates, and reports
// the outcome: nil when the rollout succeeded, a *RolloutError when it
// paused on failures or ended otherwise, another error when something
// broke. Whatever it started is stopped before it returns.
func Run(ctx context.Context, o Options) (res *Result, err error) {
	begin := time.Now()
	if o.Profile == "" {
		o.Profile = filepath.Join(o.Root, "hack", "demo", "fleet.yaml")
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Minute
	}
	profile, err := devicesim.LoadProfile(o.Profile)
	if err != nil {
		return nil, err
	}
	n := o.Devices
	if n == 0 {
		n = max(profile.Devices, 1)
	}
	st, err := StartStack(ctx, o.Config)
	if err != nil {
		return nil, err
	}
	var sim *Process
	defer func() {
		st.say("==> stopping fleetsim, the operator, mosquitto, kube-apiserver and etcd")
		stopped := time.Now()
		stopErr := st.Stop()
		if sim != nil {
			st.say("    %s", lastLine(sim.Log))
		}
		st.say("    stopped in %s; the demo ran %s", since(stopped), since(begin))
		if stopErr != nil {
			err = errors.Join(err, stopErr)
		}
	}()

	samples, err := st.writeSamples(ctx)
	if err != nil {
		return nil, err
	}
	res = &Result{Samples: samples, Devices: n}
	if sim, err = st.startFleet(ctx, o, samples, profile, n); err != nil {
		return res, err
	}
	st.say("==> applying config/samples, pointed at this machine by %s", st.rel(filepath.Join(samples.Overlay, "kustomization.yaml")))
	if len(samples.LeftOut) > 0 {
		st.say("    the demo runs one rollout, %s; it leaves out %s", samples.Rollout.Name, strings.Join(samples.LeftOut, ", "))
	}
	if err := st.kubectlShow(ctx, "apply", "-k", samples.Overlay); err != nil {
		return res, err
	}
	if res.Fleet, err = st.waitFleet(ctx, samples, n, sim); err != nil {
		return res, err
	}
	st.introducePlugin(samples, o.Keep)
	res.Rollout, err = st.watchRollout(ctx, o, samples, sim)
	res.Downloads = st.Firmware.Downloads()
	if res.Rollout != nil && ctx.Err() == nil {
		res.Fleet = st.summarize(ctx, samples, res.Rollout, res.Downloads)
	}
	if o.Keep {
		if err != nil {
			st.say("==> the demo failed: %v", err)
		}
		st.keep(ctx, samples)
	}
	return res, err
}

// startFleet starts fleetsim and waits until every device is online.
func (s *Stack) startFleet(ctx context.Context, o Options, samples *Samples, profile *devicesim.Profile, n int) (*Process, error) {
	bin := filepath.Join(s.cfg.BinDir, "fleetsim")
	args := []string{
		"--profile", o.Profile, "--devices", strconv.Itoa(n),
		"--broker", s.Broker.URL(), "--topic-root", samples.Fleet.Spec.TopicRoot, "--fetch",
	}
	args = append(args, o.FleetsimArgs...)
	start := time.Now()
	p, err := s.start("fleetsim", "fleetsim.log", nil, bin, args...)
	if err != nil {
		return nil, err
	}
	words := []string{s.rel(bin)}
	for _, a := range args {
		words = append(words, view.ShellQuote(s.rel(a)))
	}
	s.say("==> fleet: %s", strings.Join(words, " "))
	s.say("    log: %s", s.rel(p.Log))
	if err := waitOnline(ctx, s.Broker.URL(), samples.Fleet.Spec.TopicRoot, n, p); err != nil {
		return p, err
	}
	s.say("    %d devices online in %s, each with its own MQTT connection:", n, since(start))
	for _, line := range describeFleet(profile.Specs(n)) {
		s.say("      %s", line)
	}
	return p, nil
}

// describeFleet counts devices by model and version, a line per model.
func describeFleet(specs []devicesim.Spec) []string {
	var lines []string
	for _, m := range devicesim.CountByModel(specs) {
		lines = append(lines, fmt.Sprintf("%-14s %4d devices: %s", m.Model, m.Devices, devicesim.FormatCounts(m.Versions, 0)))
	}
	return lines
}

// waitFleet waits until the DeviceFleet is Ready and knows every device.
func (s *Stack) waitFleet(ctx context.Context, samples *Samples, n int, sim *Process) (*v1.DeviceFleet, error) {
	key := client.ObjectKeyFromObject(&samples.Fleet)
	deadline := time.Now().Add(time.Minute)
	var f v1.DeviceFleet
	for {
		if err := s.processesUp(sim); err != nil {
			return nil, err
		}
		err := s.Client.Get(ctx, key, &f)
		if err == nil && apimeta.IsStatusConditionTrue(f.Status.Conditions, v1.ConditionReady) &&
			int(f.Status.Devices.Known) == n && int(f.Status.Devices.Online) == n {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("DeviceFleet %s did not become Ready with %d devices within a minute: devices %+v, conditions %+v, error %v",
				key, n, f.Status.Devices, f.Status.Conditions, err)
		}
		if !Sleep(ctx, 200*time.Millisecond) {
			return nil, ctx.Err()
		}
	}
	s.say("==> DeviceFleet %s is Ready: the operator learnt %d devices from their retained messages", key.Name, f.Status.Devices.Known)
	if err := s.kubectlShow(ctx, inNamespace(key.Namespace, "get", "devicefleets")...); err != nil {
		return nil, err
	}
	return &f, nil
}

// processesUp reports an operator or fleetsim that has exited.
func (s *Stack) processesUp(sim *Process) error {
	for _, p := range []*Process{s.Manager, sim} {
		if p == nil {
			continue
		}
		if err := p.Exited(); err != nil {
			return err
		}
	}
	return nil
}

// watchRollout narrates the rollout until it ends or pauses on failures,
// approving its gates on the way, and returns it as it was at the end.
func (s *Stack) watchRollout(ctx context.Context, o Options, samples *Samples, sim *Process) (*v1.FirmwareRollout, error) {
	ro := &samples.Rollout
	key := client.ObjectKeyFromObject(ro)
	s.say("==> FirmwareRollout %s: %s", key.Name, describeRollout(ro))
	start := time.Now()
	deadline := start.Add(o.Timeout)
	var (
		prev      v1.FirmwareRolloutStatus
		lastLine  string
		lastPrint time.Time
		approveAt time.Time
		header    bool
	)
	for {
		if err := s.processesUp(sim); err != nil {
			return nil, err
		}
		var cur v1.FirmwareRollout
		if err := s.Client.Get(ctx, key, &cur); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		}
		st := &cur.Status
		s.narrateWaves(&prev, st, len(cur.Spec.Strategy.Waves))
		line := fmt.Sprintf("%-19s %4d %9s %8d %6d %8d", st.Phase, st.CurrentWave, st.Progress,
			st.Totals.Notified+st.Totals.InProgress, st.Totals.Failed, st.Totals.Rejected)
		if line != lastLine && (st.Phase != prev.Phase || st.CurrentWave != prev.CurrentWave || time.Since(lastPrint) >= 2*time.Second || st.Phase.Terminal()) {
			if !header {
				s.say("    %-5s %-19s %4s %9s %8s %6s %8s", "TIME", "PHASE", "WAVE", "PROGRESS", "UPDATING", "FAILED", "REJECTED")
				header = true
			}
			s.say("    %-5s %s", clock(time.Since(start)), line)
			lastLine, lastPrint = line, time.Now()
		}
		prev = *st.DeepCopy()

		switch {
		case st.Phase == v1.PhaseSucceeded:
			return &cur, nil
		case st.Phase == v1.PhaseAborted || st.Phase == v1.PhaseFailed || st.Phase == v1.PhaseCanceled:
			return &cur, &RolloutError{Phase: st.Phase, Message: st.Message}
		case st.Phase == v1.PhasePaused && apimeta.IsStatusConditionTrue(st.Conditions, v1.ConditionDegraded):
			s.say("==> the failure policy paused the rollout: %s", st.Message)
			s.say("    `%s` lists every failed device with its reason, read from the broker", pluginCommand(key.Namespace, "devices", key.Name, "--state", "failed"))
			settled, err := s.settle(ctx, key)
			if err != nil {
				return &cur, err
			}
			return settled, &RolloutError{Phase: settled.Status.Phase, Message: settled.Status.Message}
		case st.Phase == v1.PhaseWaitingForApproval:
			if approveAt.IsZero() {
				approveAt = time.Now().Add(o.ApprovePause)
				s.say("==> %s", st.Message)
				s.showRollout(ctx, &cur)
				header = false // the table goes on below the view
				approve := pluginCommand(key.Namespace, "approve", key.Name)
				if o.ApprovePause > 0 {
					s.say("    a person would look at wave %d first, then approve with `%s`; in %s the demo sends the same patch:", st.CurrentWave, approve, o.ApprovePause)
				} else {
					s.say("    the demo approves at once, with the patch `%s` sends:", approve)
				}
			}
			if !time.Now().Before(approveAt) {
				patch := fmt.Sprintf(`{"spec":{"approvedWaves":%d}}`, gatesUpTo(&cur))
				if err := s.kubectlShow(ctx, inNamespace(key.Namespace, "patch", "firmwarerollout", key.Name, "--type=merge", "-p", patch)...); err != nil {
					return &cur, err
				}
				approveAt = time.Time{}
				// The next status shows the approval taken.
				for cur.Status.Phase == v1.PhaseWaitingForApproval && ctx.Err() == nil {
					if !Sleep(ctx, 100*time.Millisecond) || s.Client.Get(ctx, key, &cur) != nil {
						break
					}
				}
			}
		}
		if time.Now().After(deadline) {
			return &cur, fmt.Errorf("FirmwareRollout %s did not finish within %s: phase %s, %s", key.Name, o.Timeout, st.Phase, st.Message)
		}
		if !Sleep(ctx, 250*time.Millisecond) {
			return &cur, ctx.Err()
		}
	}
}

// narrateWaves says when waves start and complete.
func (s *Stack) narrateWaves(prev, cur *v1.FirmwareRolloutStatus, waves int) {
	for i := range cur.Waves {
		w := &cur.Waves[i]
		var was v1.WaveStatus
		if i < len(prev.Waves) {
			was = prev.Waves[i]
		}
		if w.StartTime != nil && was.StartTime == nil {
			s.say("    -> wave %d of %d started: notices reach %d more devices", i+1, waves, w.Targeted)
		}
		if w.CompletionTime != nil && was.CompletionTime == nil {
			s.say("    -> wave %d of %d completed: %d devices, %d succeeded, %d failed, %d rejected", i+1, waves, w.Targeted, w.Succeeded, w.Failed, w.Rejected)
		}
	}
}

// settle waits, up to a minute, for the devices already notified to
// finish after the rollout paused, so that the counts are final.
func (s *Stack) settle(ctx context.Context, key client.ObjectKey) (*v1.FirmwareRollout, error) {
	deadline := time.Now().Add(time.Minute)
	var ro v1.FirmwareRollout
	for {
		if err := s.Client.Get(ctx, key, &ro); err != nil {
			return nil, err
		}
		t := ro.Status.Totals
		if t.Notified == 0 && t.InProgress == 0 {
			s.say("    every device notified so far has finished: %d succeeded (with those already current), %d failed, %d rejected; %d wait for a wave that does not start",
				t.Succeeded, t.Failed, t.Rejected, t.Waiting)
			return &ro, nil
		}
		if time.Now().After(deadline) {
			return &ro, fmt.Errorf("after the pause, %d devices were still updating a minute later", t.Notified+t.InProgress)
		}
		if !Sleep(ctx, 250*time.Millisecond) {
			return &ro, ctx.Err()
		}
	}
}

// gatesUpTo is the approvedWaves value that approves the first wave
// waiting for approval: the number of gated waves up to and including it.
func gatesUpTo(ro *v1.FirmwareRollout) int32 {
	var gates int32
	for i, w := range ro.Spec.Strategy.Waves {
		if w.RequireApproval {
			gates++
		}
		if i < len(ro.Status.Waves) && ro.Status.Waves[i].State == v1.WaveWaitingForApproval {
			return gates
		}
	}
	return ro.Spec.ApprovedWaves + 1
}

// summarize prints the outcome, as the plugin shows the rollout and its
// fleet, and returns the fleet as it is then.
func (s *Stack) summarize(ctx context.Context, samples *Samples, ro *v1.FirmwareRollout, downloads int64) *v1.DeviceFleet {
	st := &ro.Status
	took := ""
	if st.StartTime != nil && st.CompletionTime != nil {
		took = " in " + st.CompletionTime.Sub(st.StartTime.Time).String()
	}
	s.say("==> FirmwareRollout %s %s%s: %s", ro.Name, st.Phase, took, st.Message)
	s.showRollout(ctx, ro)
	s.say("    firmware image downloads served: %d", downloads)
	// The fleet's status follows the devices' inventories within a
	// second or so; wait for it to show the new firmware before printing.
	key := client.ObjectKeyFromObject(&samples.Fleet)
	var f v1.DeviceFleet
	deadline := time.Now().Add(10 * time.Second)
	for s.Client.Get(ctx, key, &f) == nil && time.Now().Before(deadline) {
		if st.Phase != v1.PhaseSucceeded || countOf(f.Status.FirmwareVersions, ro.Spec.Firmware.Version) >= st.Totals.Succeeded {
			break
		}
		if !Sleep(ctx, 200*time.Millisecond) {
			break
		}
	}
	s.say("==> DeviceFleet %s after the rollout:", f.Name)
	s.showFleet(&f)
	if untargeted := int(f.Status.Devices.Known) - int(st.Totals.Targeted); untargeted > 0 {
		s.say("    (%d devices were not targeted: their model, labels or version are outside the rollout's selection)", untargeted)
	}
	_ = s.kubectlShow(ctx, inNamespace(key.Namespace, "get", "devicefleets,firmwarerollouts")...)
	return &f
}

func countOf(counts []v1.ValueCount, value string) int32 {
	for _, c := range counts {
		if c.Value == value {
			return c.Count
		}
	}
	return 0
}

// keep prints how to use what runs, and narrates every rollout's changes
// until ctx ends.
func (s *Stack) keep(ctx context.Context, samples *Samples) {
	host, port, _ := strings.Cut(s.Broker.Addr, ":")
	kubectl := s.rel(s.Kubectl) + " --kubeconfig " + s.rel(s.Kubeconfig)
	s.say("==> DEMO_KEEP: everything keeps running until you press Ctrl-C. In another terminal, try:")
	s.say("    %s", s.pluginEnv())
	s.say("    %s", pluginCommand(samples.Rollout.Namespace, "get", "rollout", samples.Rollout.Name, "--watch"))
	s.say("    %s", pluginCommand(samples.Rollout.Namespace, "devices", samples.Rollout.Name, "--state", "failed", "-o", "wide"))
	s.say("    %s", pluginCommand(samples.Fleet.Namespace, "fleet", samples.Fleet.Name))
	s.say("    %s get devicefleets,firmwarerollouts", kubectl)
	s.say("    %s describe firmwarerollout %s", kubectl, samples.Rollout.Name)
	s.say("    %s get events --sort-by=.metadata.creationTimestamp", kubectl)
	s.say("    %s sub -h %s -p %s -V 5 -v -t '%s/devices/+/status'", s.rel(filepath.Join(s.cfg.BinDir, "mqttc")), host, port, samples.Fleet.Spec.TopicRoot)
	s.say("    # edit config/samples (say, a new FirmwareRollout name and version), then:")
	s.say("    %s apply -k %s", kubectl, s.rel(samples.Overlay))
	s.say("    logs: %s, %s", s.rel(filepath.Join(s.cfg.Dir, "manager.log")), s.rel(filepath.Join(s.cfg.Dir, "fleetsim.log")))
	seen := map[string]string{}
	for Sleep(ctx, time.Second) {
		var list v1.FirmwareRolloutList
		if err := s.Client.List(ctx, &list); err != nil {
			continue
		}
		for _, ro := range list.Items {
			st := &ro.Status
			line := fmt.Sprintf("%s/%s %s wave %d progress %s failed %d", ro.Namespace, ro.Name, st.Phase, st.CurrentWave, st.Progress, st.Totals.Failed)
			if seen[ro.Namespace+"/"+ro.Name] != line {
				seen[ro.Namespace+"/"+ro.Name] = line
				s.say("    %s %s", time.Now().Format("15:04:05"), line)
			}
		}
	}
}

// describeRollout tells what a rollout asks for, in a line.
func describeRollout(ro *v1.FirmwareRollout) string {
	sp := &ro.Spec
	text := fmt.Sprintf("firmware %s for %s", sp.Firmware.Version, strings.Join(sp.Firmware.Models, ", "))
	if sp.Selector != nil && sp.Selector.CurrentVersion != "" {
		text += fmt.Sprintf(" running %s", sp.Selector.CurrentVersion)
	}
	var waves []string
	for _, w := range sp.Strategy.Waves {
		var size string
		if w.Percent != nil {
			size = fmt.Sprintf("%d%%", *w.Percent)
		} else if w.Count != nil {
			size = fmt.Sprintf("%d devices", *w.Count)
		}
		if w.RequireApproval {
			size += " after approval"
		}
		waves = append(waves, size)
	}
	text += "; waves " + strings.Join(waves, ", ")
	if p := sp.FailurePolicy; p != nil {
		var limits []string
		if p.MaxFailedPercent != nil {
			limits = append(limits, fmt.Sprintf("more than %d%% of at least %d finished devices fail", *p.MaxFailedPercent, p.MinFinished))
		}
		if p.MaxFailed != nil {
			limits = append(limits, fmt.Sprintf("more than %d devices fail", *p.MaxFailed))
		}
		text += fmt.Sprintf("; failure policy: %s when %s", p.Action, strings.Join(limits, " or "))
	}
	return text
}

// inNamespace adds -n namespace to kubectl arguments, unless it is the
// kubeconfig's, default.
func inNamespace(namespace string, args ...string) []string {
	if namespace == "default" {
		return args
	}
	return append(args, "-n", namespace)
}

// clock renders a duration as m:ss.
func clock(d time.Duration) string {
	d = d.Round(time.Second)
	return fmt.Sprintf("%d:%02d", int(d.Minutes()), int(d.Seconds())%60)
}

// lastLine returns the last line of a file: fleetsim's summary.
func lastLine(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return lines[len(lines)-1]
}
