package rollout

import (
	"fmt"
	"sort"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/internal/fleet"
	"github.com/heraldiot/herald/internal/window"
	"github.com/heraldiot/herald/protocol"
)

// progress is where one targeted device stands in this rollout.
type progress uint8

const (
	waiting    progress = iota // no notice of ours reaches it
	notified                   // a notice reaches it; no answer yet
	inProgress                 // accepted, downloading or installing
	succeeded
	failed // reported failure or timed out
	rejected
	canceled
	skipped // listed in spec.skipDevices before it finished
	// retrying: failed or rejected with a retry left (spec.retryPolicy);
	// its retry notice is due at retryAt. Not finished.
	retrying
)

func (p progress) finished() bool { return p >= succeeded && p != retrying }

// target is one device the rollout targets.
type target struct {
	id     string
	model  string
	cohort int
	wave   int // index of the wave that covers it; len(waves) if none
	progress
	// current is set for a device that ran the target version before
	// this rollout reached it: a success outside the failure policy.
	current bool
	// offline is set for a device offline beyond the fleet's grace.
	offline  bool
	online   bool
	timedOut bool
	reason   string
	// reportedAt is when the operator received the device's report (or
	// when its timeout expired), unix seconds.
	reportedAt int64
	// presenceSince is when the device's presence last changed.
	presenceSince int64
	// deadline is when an in-progress device times out, unix seconds; 0
	// for none. Notified devices get theirs once their notice is known.
	deadline int64
	// attempt is the notice attempt the device's state is about, from 1:
	// its report's, or a later retry notice's that it has not answered.
	attempt int
	// retryAt is when a retrying device's retry notice is due, unix
	// seconds; exhausted marks a device that failed its last retry.
	retryAt   int64
	exhausted bool
	retryFrom progress // failed or rejected, for a retrying target
}

// selection is the compiled spec.selector and firmware of a rollout.
type selection struct {
	models     map[string]bool
	labels     labels.Selector
	constraint *protocol.Constraint
	version    string
	// perDevice is set when only per-device notices may be used: a group
	// notice reaches every device of a model and cohort, including ones
	// that join later with labels the selector excludes.
	perDevice       bool
	deviceTimeout   time.Duration
	responseTimeout time.Duration
	skip            map[string]bool
	retries         *retryRules
	// windows are the maintenance windows; nil is always open.
	windows   *window.Windows
	deadlines map[int64]int64 // deviceDeadline's answers by report second
	// snapshot is the frozen target set of Snapshot targeting, once
	// taken (Input.Snapshot); nil otherwise.
	snapshot Snapshot
}

// compile checks and compiles what selects the rollout's devices. Its
// errors are spec errors a person must fix.
func compile(ro *v1.FirmwareRollout) (*selection, error) {
	spec := &ro.Spec
	s := &selection{
		models:          map[string]bool{},
		labels:          labels.Everything(),
		version:         spec.Firmware.Version,
		deviceTimeout:   DefaultDeviceTimeout,
		responseTimeout: DefaultResponseTimeout,
	}
	for _, m := range spec.Firmware.Models {
		s.models[m] = true
	}
	if sel := spec.Selector; sel != nil {
		if sel.Labels != nil {
			var err error
			if s.labels, err = metav1.LabelSelectorAsSelector(sel.Labels); err != nil {
				return nil, fmt.Errorf("selector.labels: %w", err)
			}
			s.perDevice = !s.labels.Empty()
		}
		if sel.CurrentVersion != "" {
			var err error
			// Devices evaluate the same grammar (docs/protocol.md).
			if s.constraint, err = protocol.ParseConstraint(sel.CurrentVersion); err != nil {
				return nil, fmt.Errorf("selector.currentVersion %q: %w", sel.CurrentVersion, err)
			}
		}
	}
	// Devices compare versions as exact strings (docs/protocol.md).
	if err := protocol.ValidVersion(s.version); err != nil {
		return nil, fmt.Errorf("firmware.version %q: %w", s.version, err)
	}
	if spec.DeviceTimeout != nil && spec.DeviceTimeout.Duration > 0 {
		s.deviceTimeout = spec.DeviceTimeout.Duration
	}
	if spec.ResponseTimeout != nil && spec.ResponseTimeout.Duration > 0 {
		s.responseTimeout = spec.ResponseTimeout.Duration
	}
	s.retries = compileRetries(spec.RetryPolicy)
	if len(spec.MaintenanceWindows) > 0 {
		specs := make([]window.Spec, len(spec.MaintenanceWindows))
		for i, w := range spec.MaintenanceWindows {
			specs[i] = window.Spec{Schedule: w.Schedule, Duration: w.Duration.Duration, TimeZone: w.TimeZone}
		}
		var err error
		if s.windows, err = window.Compile(specs); err != nil {
			return nil, err
		}
	}
	if spec.Targeting == v1.TargetingSnapshot {
		// A group notice would reach devices that join later.
		s.perDevice = true
	}
	if len(spec.SkipDevices) > 0 {
		s.skip = make(map[string]bool, len(spec.SkipDevices))
		for _, id := range spec.SkipDevices {
			s.skip[id] = true
		}
	}
	return s, nil
}

// selectTargets finds the devices the rollout targets and where each
// stands by its own reports. Every time is the operator's: a device's
// clock may be anywhere.
func selectTargets(in *Input, sel *selection) []target {
	uid := string(in.Rollout.UID)
	now := in.Now.Unix()
	out := make([]target, 0, in.SizeHint)
	in.Devices(uid, func(d *fleet.Device, rep *fleet.Report) {
		if !d.HasInventory || !sel.models[d.Model] || in.SupersededModels[d.Model] {
			return
		}
		// A device this rollout updated reports on it; only devices that
		// were on the target already count as "current". Neither is
		// subject to the version constraint, which selects devices before
		// their update.
		onTarget := d.FirmwareVersion == sel.version
		current := onTarget && rep == nil
		switch {
		case sel.snapshot != nil:
			// Frozen at the start: membership is the whole question.
			if !sel.snapshot.Has(d.ID) {
				return
			}
		case !sel.labels.Matches(labels.Set(d.Labels)):
			return
		case !onTarget && rep == nil && sel.constraint != nil && !allows(sel.constraint, d.FirmwareVersion):
			return
		}
		t := target{
			id: d.ID, model: d.Model, cohort: int(d.Cohort), current: current,
			online: d.Online, presenceSince: d.PresenceSince, attempt: 1,
		}
		t.offline = !d.Online && (!d.SeenPresence || in.Now.Sub(time.Unix(d.PresenceSince, 0)) >= in.OfflineGrace)
		switch {
		case current:
			t.progress = succeeded
		case rep != nil:
			t.reportedAt, t.reason = rep.Seen, rep.Reason
			t.attempt = max(int(rep.Attempt), 1)
			switch rep.State {
			case protocol.StateAccepted, protocol.StateDownloading, protocol.StateInstalling:
				t.progress = inProgress
				// Only time inside maintenance windows counts: a device
				// waits in accepted for its window.
				t.deadline = sel.deviceDeadline(rep.Seen)
				if now >= t.deadline {
					t.progress, t.timedOut, t.reportedAt = failed, true, t.deadline
					t.reason = fmt.Sprintf("timeout: no outcome within %s of %s", sel.deviceTimeout, rep.State)
				}
			case protocol.StateSucceeded:
				// The device reports success before it reboots into the
				// new version; trust the report.
				t.progress = succeeded
			case protocol.StateFailed:
				t.progress = failed
			case protocol.StateRejected:
				t.progress = rejected
			case protocol.StateCanceled:
				t.progress = canceled
			}
		}
		if sel.skip[d.ID] && !t.progress.finished() {
			t.progress, t.deadline = skipped, 0
		}
		out = append(out, t)
	})
	assignWaves(in.Rollout.Spec.Strategy.Waves, out)
	return out
}

// assignWaves puts each target in the first wave that covers it: by cohort
// for percent waves, by rank in (cohort, ID) order for count waves, so a
// device's wave is stable as the fleet grows. Only count waves need the
// targets in order (sorting a large fleet is most of a plan's cost).
func assignWaves(waves []v1.Wave, targets []target) {
	if len(waves) > 0 && waves[0].Count != nil {
		sort.Slice(targets, func(i, j int) bool { return targetBefore(&targets[i], &targets[j]) })
	}
	for rank := range targets {
		t := &targets[rank]
		t.wave = len(waves) // beyond the last wave: never notified
		for i, w := range waves {
			if (w.Percent != nil && t.cohort < int(*w.Percent)) || (w.Count != nil && rank < int(*w.Count)) {
				t.wave = i
				break
			}
		}
	}
}

// targetBefore orders targets by (cohort, ID).
func targetBefore(a, b *target) bool {
	if a.cohort != b.cohort {
		return a.cohort < b.cohort
	}
	return a.id < b.id
}

// reach marks the devices a notice of this rollout reaches as notified and
// gives each online one its response deadline: it must answer within the
// response timeout of the moment the notice could first reach it (the
// later of the notice appearing and the device coming online). Offline
// devices cannot answer and get no deadline.
func reach(in *Input, sel *selection, targets []target) {
	uid := string(in.Rollout.UID)
	// Which devices and groups a notice of ours reaches: built once from
	// the notices (few groups, or one per device), not per device from
	// topic strings.
	type groupKey struct {
		model  string
		cohort int
	}
	byDevice := map[string]fleet.NoticeRef{}
	byGroup := map[groupKey]fleet.NoticeRef{}
	for topic, ref := range in.Notices {
		if ref.RolloutUID != uid {
			continue
		}
		if id, kind, err := in.Topics.ParseDeviceTopic(topic); err == nil && kind == protocol.TopicNotice {
			byDevice[id] = ref
		} else if model, cohort, isGroup, err := in.Topics.ParseGroupNoticeTopic(topic); isGroup && err == nil {
			byGroup[groupKey{model, cohort}] = ref
		}
	}
	for i := range targets {
		t := &targets[i]
		ref, own := byDevice[t.id]
		// A device's attempt is at most the highest one offered to it:
		// a report claiming more is not believed.
		offered := 1
		if own {
			offered = max(ref.Attempt, 1)
		}
		t.attempt = min(t.attempt, offered)
		lift := t.progress == waiting || t.progress == failed || t.progress == rejected || t.progress == canceled
		if own && offered > t.attempt && lift && !t.current && !sel.skip[t.id] {
			// A retry notice the device has not answered yet: what it
			// reported is about an earlier attempt that ended. A device
			// still at work on that attempt, or that succeeded in it,
			// is counted by what it reports (once on the target
			// version, it stays silent about the retry).
			t.progress, t.attempt, t.reason, t.timedOut, t.deadline = waiting, offered, "", false, 0
		}
		if t.progress != waiting {
			continue
		}
		ref, ok := byDevice[t.id]
		if !ok {
			ref, ok = byGroup[groupKey{t.model, t.cohort}]
		}
		if !ok {
			continue
		}
		t.progress = notified
		if !t.online {
			continue
		}
		from := max(ref.SeenAt.Unix(), t.presenceSince)
		t.deadline = addSeconds(from, sel.responseTimeout)
		if in.Now.Unix() >= t.deadline {
			t.progress, t.timedOut, t.reportedAt = failed, true, t.deadline
			t.reason = fmt.Sprintf("no answer: the notice reached the device and it did not answer within %s", sel.responseTimeout)
		}
	}
}

// deviceDeadline is when a device that reported progress at seen (unix
// seconds) times out: deviceTimeout later, counting only time inside
// maintenance windows.
// Devices that reported in the same second share the answer: a window
// walk costs microseconds, and a wave's reports bunch up.
func (sel *selection) deviceDeadline(seen int64) int64 {
	if sel.windows == nil {
		return addSeconds(seen, sel.deviceTimeout)
	}
	if d, ok := sel.deadlines[seen]; ok {
		return d
	}
	if sel.deadlines == nil {
		sel.deadlines = map[int64]int64{}
	}
	d := sel.windows.AddOpen(time.Unix(seen, 0), sel.deviceTimeout).Unix()
	sel.deadlines[seen] = d
	return d
}

// addSeconds adds d to a unix time in seconds, saturating instead of
// overflowing.
func addSeconds(unix int64, d time.Duration) int64 {
	s := int64(d / time.Second)
	if unix > 0 && s > (1<<62)-unix {
		return 1 << 62
	}
	return unix + s
}

func allows(c *protocol.Constraint, version string) bool {
	ok, err := c.Allows(version)
	return err == nil && ok
}
