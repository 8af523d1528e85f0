package rollout

import (
	"fmt"
	"math"
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

// target is one device the rollout targets. It keeps only what plans
// read after deriving it, in as few bytes as that allows: a tracker holds
// one per device of a million-device fleet.
type target struct {
	id     string
	model  string
	reason string
	// reportedAt is when the operator received the device's report (or
	// when its timeout expired), unix seconds.
	reportedAt int64
	// retryAt is when a retrying device's retry notice is due, unix
	// seconds.
	retryAt int64
	// wake is when what the target says next changes with time alone (a
	// deadline passes, the offline grace ends, a retry falls due), unix
	// nanoseconds; 0 for never. The tracker derives it again then.
	wake int64
	// slot is the device's fleet.Device.Slot (or its index, in a plan
	// from scratch); gpos its index in its group's members.
	slot, gpos int32
	wave       int16 // index of the wave that covers it; len(waves) if none
	// attempt is the notice attempt the device's state is about, from 1:
	// its report's, or a later retry notice's that it has not answered.
	attempt int16
	cohort  uint8
	progress
	// current is set for a device that ran the target version before
	// this rollout reached it: a success outside the failure policy.
	current bool
	// offline is set for a device offline beyond the fleet's grace.
	offline   bool
	timedOut  bool
	exhausted bool // failed its last retry
	// Per-device notice bookkeeping (noticework.go): the work it was
	// counted under; whether its own notice is one of its group's owned
	// ones or a loose one; whether it is in its group's queue; whether
	// its retry is due, and queued.
	work                                 noticeWork
	owned, loose, queued, due, dueQueued bool
}

// deriving is what deriving a target reads about the device beyond what
// the target keeps.
type deriving struct {
	online        bool
	presenceSince int64 // when the device's presence last changed
	// deadline is when an in-progress or notified device times out, unix
	// seconds; 0 for none. timeout is an in-progress report's deadline,
	// which holds even for a device spec.skipDevices lists.
	deadline, timeout int64
	// noticeDue is when the device's own notice, if out, is to be
	// published again (seenNotice.due), unix nanoseconds.
	noticeDue int64
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
	// windowsKey is their protocol.WindowsKey, as notices carry it.
	windows    *window.Windows
	windowsKey string
	deadlines  map[int64]int64 // deviceDeadline's answers by report second
	// reasons and noAnswer are the reasons of timed-out devices, made
	// once.
	reasons  map[protocol.State]string
	noAnswer string
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
	s.windowsKey = protocol.WindowsKey(NoticeWindows(ro))
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

// groupKey names the devices one group notice reaches.
type groupKey struct {
	model  string
	cohort int
}

// noticeIndex is which devices and groups a notice of the rollout
// reaches, built from the notices (few groups, or one per device) rather
// than per device from topic strings, and kept as they change. It keeps
// what plans read of each notice in 16 bytes: a million devices' notices
// take tens of megabytes, not the hundreds full copies did.
type noticeIndex struct {
	// byDevice holds device notices by device ID. The IDs are parts of
	// the state's topic strings, which the state keeps anyway.
	byDevice map[string]deviceNotice
	byGroup  map[groupKey]seenNotice
	// others holds by topic every notice that is not a device notice:
	// group notices, and any that parse as neither.
	others map[string]seenNotice
	// windowsKey is the maintenance windows' key notices of the spec
	// carry (seenNotice.sameWindows).
	windowsKey string
}

// seenNotice is what plans read of a retained notice.
type seenNotice struct {
	// seenAt is fleet.NoticeRef.SeenAt in unix nanoseconds, clamped to
	// int64.
	seenAt  int64
	attempt int32 // from 1
	// sameWindows is set when the notice carries the maintenance windows
	// the spec has now; otherwise it must go out again.
	sameWindows bool
}

// deviceNotice is a device's own notice, and the slot of the target that
// stands for the device (holder, 1 + the slot; 0 for none): a device that
// traded slots with another between two plans is derived at its new slot
// before its old one is cleared, and its notice must not look abandoned.
type deviceNotice struct {
	seenNotice
	holder int32
}

func (idx *noticeIndex) seen(ref fleet.NoticeRef) seenNotice {
	return seenNotice{seenAt: clampedUnixNano(ref.SeenAt), attempt: int32(min(max(ref.Attempt, 1), math.MaxInt32)),
		sameWindows: ref.Windows == idx.windowsKey}
}

// fresh reports whether n is what a publish of attempt would retain, and
// young enough to stay: a notice carries an MQTT 5 message expiry, so it
// goes out again, with the same bytes, well before the broker drops it.
func (n seenNotice) fresh(attempt int, now int64) bool {
	return int(n.attempt) == max(attempt, 1) && n.sameWindows && n.seenAt > now-int64(NoticeExpiry/2)
}

// clampedUnixNano is t in unix nanoseconds, clamped to what int64 holds.
func clampedUnixNano(t time.Time) int64 {
	switch {
	case t.Before(time.Unix(0, math.MinInt64)):
		return math.MinInt64
	case t.After(time.Unix(0, math.MaxInt64)):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// indexNotices indexes the rollout's notices: state's when it follows
// one (returning the notice log's position), in.Notices otherwise.
func indexNotices(in *Input, sel *selection, state *fleet.State) (idx noticeIndex, cursor uint64) {
	idx = noticeIndex{byDevice: map[string]deviceNotice{}, byGroup: map[groupKey]seenNotice{}, others: map[string]seenNotice{},
		windowsKey: sel.windowsKey}
	uid := string(in.Rollout.UID)
	add := func(topic string, ref fleet.NoticeRef) {
		if ref.RolloutUID == uid {
			idx.set(in.Topics, topic, idx.seen(ref), true, func(string) {}, func(groupKey) {})
		}
	}
	if state == nil {
		for topic, ref := range in.Notices {
			add(topic, ref)
		}
		return idx, 0
	}
	return idx, state.EachNotice(add)
}

// lookup returns the indexed notice at topic.
func (idx *noticeIndex) lookup(topics protocol.Topics, topic string) (seenNotice, bool) {
	if id, kind, err := topics.ParseDeviceTopic(topic); err == nil && kind == protocol.TopicNotice {
		n, ok := idx.byDevice[id]
		return n.seenNotice, ok
	}
	n, ok := idx.others[topic]
	return n, ok
}

// catchUp brings the index up to date with the notices state logged as
// changed since cursor, calling device or group for each notice of the
// rollout that came, went or changed. ok is false when the log no longer
// reaches back to cursor.
func (idx *noticeIndex) catchUp(in *Input, state *fleet.State, cursor uint64, device func(id string), group func(k groupKey)) (next uint64, ok bool) {
	uid := string(in.Rollout.UID)
	return state.CatchNotices(cursor, func(topic string, ref fleet.NoticeRef, present bool) {
		old, had := idx.lookup(in.Topics, topic)
		switch ours := present && ref.RolloutUID == uid; {
		case ours:
			if n := idx.seen(ref); !had || n != old {
				idx.set(in.Topics, topic, n, true, device, group)
			}
		case had:
			idx.set(in.Topics, topic, old, false, device, group)
		}
	})
}

// set records that the rollout's notice at topic is n (present), or is
// gone, and calls device or group for what it reaches.
func (idx *noticeIndex) set(topics protocol.Topics, topic string, n seenNotice, present bool, device func(id string), group func(k groupKey)) {
	if id, kind, err := topics.ParseDeviceTopic(topic); err == nil && kind == protocol.TopicNotice {
		if present {
			idx.byDevice[id] = deviceNotice{n, idx.byDevice[id].holder}
		} else {
			delete(idx.byDevice, id)
		}
		device(id)
		return
	}
	if present {
		idx.others[topic] = n
	} else {
		delete(idx.others, topic)
	}
	if model, cohort, isGroup, err := topics.ParseGroupNoticeTopic(topic); isGroup && err == nil {
		k := groupKey{model, cohort}
		if present {
			idx.byGroup[k] = n
		} else {
			delete(idx.byGroup, k)
		}
		group(k)
	}
}

// derive decides whether the rollout targets device d and where it
// stands, from its report on the rollout (nil when it made none), the
// rollout's notices and the time: everything about one target but its
// wave under count waves, which depends on the others. Every time is the
// operator's: a device's clock may be anywhere.
//
// ending derives for a rollout that has ended or is ending: nothing is
// retried any more, so failures are final.
func (sel *selection) derive(in *Input, idx *noticeIndex, d *fleet.Device, rep *fleet.Report, ending bool) (target, bool) {
	if !d.HasInventory || !sel.models[d.Model] || in.SupersededModels[d.Model] {
		return target{}, false
	}
	// A device this rollout updated reports on it; only devices that
	// were on the target already count as "current". Neither is subject
	// to the version constraint, which selects devices before their
	// update.
	onTarget := d.FirmwareVersion == sel.version
	current := onTarget && rep == nil
	switch {
	case sel.snapshot != nil:
		// Frozen at the start: membership is the whole question.
		if !sel.snapshot.Has(d.ID) {
			return target{}, false
		}
	case !sel.labels.Matches(labels.Set(d.Labels)):
		return target{}, false
	case !onTarget && rep == nil && sel.constraint != nil && !allows(sel.constraint, d.FirmwareVersion):
		return target{}, false
	}
	now := in.Now.Unix()
	t := target{id: d.ID, model: d.Model, slot: d.Slot, cohort: d.Cohort, current: current, attempt: 1}
	x := deriving{online: d.Online, presenceSince: d.PresenceSince}
	t.wave = int16(percentWave(in.Rollout.Spec.Strategy.Waves, int(t.cohort)))
	t.offline = !d.Online && (!d.SeenPresence || in.Now.Sub(time.Unix(d.PresenceSince, 0)) >= in.OfflineGrace)
	switch {
	case current:
		t.progress = succeeded
	case rep != nil:
		t.reportedAt, t.reason = rep.Seen, rep.Reason
		t.attempt = int16(max(rep.Attempt, 1))
		switch rep.State {
		case protocol.StateAccepted, protocol.StateDownloading, protocol.StateInstalling:
			t.progress = inProgress
			// Only time inside maintenance windows counts: a device
			// waits in accepted for its window. A timed-out device has
			// finished, and is no longer skipped: its timeout counts
			// even when spec.skipDevices lists it.
			x.deadline = sel.deviceDeadline(rep.Seen)
			x.timeout = x.deadline
			if now >= x.deadline {
				t.progress, t.timedOut, t.reportedAt = failed, true, x.deadline
				t.reason = sel.timeoutReason(rep.State)
			}
		case protocol.StateSucceeded:
			// The device reports success before it reboots into the new
			// version; trust the report.
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
		t.progress, x.deadline = skipped, 0
	}
	sel.reach(in, idx, &t, &x)
	if !ending {
		sel.markRetry(&t)
	}
	t.wake = wakeOf(in, &t, &x)
	return t, true
}

// percentWave is the first percent wave that covers a device of the
// cohort, len(waves) if none does; count waves are assigned by rank
// (assignCountWaves).
func percentWave(waves []v1.Wave, cohort int) int {
	for i, w := range waves {
		if w.Percent != nil && cohort < int(*w.Percent) {
			return i
		}
	}
	return len(waves)
}

// countWaves reports whether any wave is a count wave: its devices then
// depend on the whole target set's order.
func countWaves(waves []v1.Wave) bool {
	for _, w := range waves {
		if w.Count != nil {
			return true
		}
	}
	return false
}

// assignCountWaves puts each target in the first wave that covers it:
// by cohort for percent waves, by rank in (cohort, ID) order for count
// waves, so a device's wave is stable as the fleet grows. Only count
// waves need the targets in order (sorting a large fleet is most of a
// full plan's cost).
func assignCountWaves(waves []v1.Wave, targets []target) {
	if len(waves) > 0 && waves[0].Count != nil {
		sort.Slice(targets, func(i, j int) bool { return targetBefore(&targets[i], &targets[j]) })
	}
	for rank := range targets {
		t := &targets[rank]
		t.wave = int16(len(waves)) // beyond the last wave: never notified
		for i, w := range waves {
			if (w.Percent != nil && int(t.cohort) < int(*w.Percent)) || (w.Count != nil && rank < int(*w.Count)) {
				t.wave = int16(i)
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

// reach marks a target a notice of this rollout reaches as notified and
// gives it, when online, its response deadline: it must answer within
// the response timeout of the moment the notice could first reach it (the
// later of the notice appearing and the device coming online). Offline
// devices cannot answer and get no deadline.
func (sel *selection) reach(in *Input, idx *noticeIndex, t *target, x *deriving) {
	mine, own := idx.byDevice[t.id]
	ref := mine.seenNotice
	if own {
		x.noticeDue = ref.due()
	}
	// A device's attempt is at most the highest one offered to it: a
	// report claiming more is not believed.
	offered := int16(1)
	if own {
		offered = int16(min(ref.attempt, math.MaxInt16))
	}
	t.attempt = min(t.attempt, offered)
	lift := t.progress == waiting || t.progress == failed || t.progress == rejected || t.progress == canceled
	if own && offered > t.attempt && lift && !t.current && !sel.skip[t.id] {
		// A retry notice the device has not answered yet: what it
		// reported is about an earlier attempt that ended. A device
		// still at work on that attempt, or that succeeded in it, is
		// counted by what it reports (once on the target version, it
		// stays silent about the retry).
		t.progress, t.attempt, t.reason, t.timedOut, x.deadline = waiting, offered, "", false, 0
	}
	if t.progress != waiting {
		return
	}
	if !own {
		var ok bool
		if ref, ok = idx.byGroup[groupKey{t.model, int(t.cohort)}]; !ok {
			return
		}
	}
	t.progress = notified
	if !x.online {
		return
	}
	from := max(ref.seenAt/int64(time.Second), x.presenceSince)
	x.deadline = addSeconds(from, sel.responseTimeout)
	if in.Now.Unix() >= x.deadline {
		t.progress, t.timedOut, t.reportedAt = failed, true, x.deadline
		t.reason = sel.noAnswerReason()
	}
}

// maxWakeSeconds bounds the unix seconds that convert to nanoseconds.
const maxWakeSeconds = (1<<63 - 1) / int64(time.Second)

// wakeOf is when t next changes with time alone, unix nanoseconds, 0 for
// never: its deadline or in-progress timeout passing, its offline grace
// ending, its retry falling due. derive then decides differently than it
// did at in.Now.
func wakeOf(in *Input, t *target, x *deriving) int64 {
	now := in.Now.UnixNano()
	var wake int64
	consider := func(at int64) {
		if at > now && (wake == 0 || at < wake) {
			wake = at
		}
	}
	seconds := func(s int64) {
		if s > 0 && s < maxWakeSeconds {
			consider(s * int64(time.Second))
		}
	}
	switch t.progress {
	case inProgress, notified:
		seconds(x.deadline)
	case retrying:
		seconds(t.retryAt)
	}
	seconds(x.timeout)
	if x.noticeDue > 0 {
		consider(x.noticeDue) // its notice work changes
	}
	if !x.online && !t.offline && x.presenceSince < maxWakeSeconds-int64(in.OfflineGrace/time.Second)-1 {
		// Online until the grace ends: offline from then on.
		consider(x.presenceSince*int64(time.Second) + int64(in.OfflineGrace))
	}
	return wake
}

// timeoutReason is the reason of a device that timed out in state: one
// string per state, not one per device of a wave that timed out.
func (sel *selection) timeoutReason(state protocol.State) string {
	if r, ok := sel.reasons[state]; ok {
		return r
	}
	if sel.reasons == nil {
		sel.reasons = map[protocol.State]string{}
	}
	r := fmt.Sprintf("timeout: no outcome within %s of %s", sel.deviceTimeout, state)
	sel.reasons[state] = r // only the three in-progress states come here
	return r
}

// noAnswerReason is the reason of a device that did not answer its
// notice.
func (sel *selection) noAnswerReason() string {
	if sel.noAnswer == "" {
		sel.noAnswer = fmt.Sprintf("no answer: the notice reached the device and it did not answer within %s", sel.responseTimeout)
	}
	return sel.noAnswer
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
	if sel.deadlines == nil || len(sel.deadlines) >= maxDeadlineCache {
		// A tracker keeps its selection for the rollout's life: start
		// over rather than keep a second of every report ever made.
		sel.deadlines = map[int64]int64{}
	}
	d := sel.windows.AddOpen(time.Unix(seen, 0), sel.deviceTimeout).Unix()
	sel.deadlines[seen] = d
	return d
}

// maxDeadlineCache bounds deviceDeadline's answers kept.
const maxDeadlineCache = 4096

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
