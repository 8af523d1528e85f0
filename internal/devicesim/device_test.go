package devicesim_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldiot/herald/internal/devicesim"
	"github.com/heraldiot/herald/internal/testenv"
	"github.com/heraldiot/herald/mqtt"
	"github.com/heraldiot/herald/protocol"
)

const root = "test/fleet"

var topics, _ = protocol.NewTopics(root)

// operator stands in for Herald: it publishes notices and records, in
// order, what devices publish.
type operator struct {
	t *testing.T
	c *mqtt.Client

	mu   sync.Mutex
	msgs []record
	seen chan struct{} // pinged on every message
}

// record is one message a device published, decoded.
type record struct {
	device string
	kind   protocol.TopicKind
	retain bool
	status protocol.Status
	inv    protocol.Inventory
	pres   protocol.Presence
}

func (r record) String() string {
	switch r.kind {
	case protocol.TopicStatus:
		return fmt.Sprintf("%s status %s %s", r.device, r.status.State, r.status.Reason)
	case protocol.TopicInventory:
		return fmt.Sprintf("%s inventory %s", r.device, r.inv.FirmwareVersion)
	case protocol.TopicPresence:
		return fmt.Sprintf("%s presence %s", r.device, r.pres.State)
	}
	return r.device + " " + r.kind.String()
}

func newOperator(t *testing.T, b *testenv.Broker) *operator {
	t.Helper()
	o := &operator{t: t, seen: make(chan struct{}, 1)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := mqtt.Dial(ctx, mqtt.Options{Servers: []string{b.URL()}, ClientID: "operator-" + t.Name(), CleanStart: true})
	if err != nil {
		t.Fatal(err)
	}
	o.c = c
	t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	// Retain As Published keeps the RETAIN flag of live messages, so the
	// test sees that devices publish retained.
	err = c.Subscribe(ctx, o.handle,
		mqtt.Subscription{Filter: topics.AllPresence(), QoS: 1, RetainAsPublished: true},
		mqtt.Subscription{Filter: topics.AllInventory(), QoS: 1, RetainAsPublished: true},
		mqtt.Subscription{Filter: topics.AllStatus(), QoS: 1, RetainAsPublished: true})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func (o *operator) handle(m *mqtt.Message) {
	id, kind, err := topics.ParseDeviceTopic(m.Topic)
	if err != nil || len(m.Payload) == 0 {
		return
	}
	r := record{device: id, kind: kind, retain: m.Retain}
	switch kind {
	case protocol.TopicStatus:
		r.status, err = protocol.ParseStatus(m.Payload)
	case protocol.TopicInventory:
		r.inv, err = protocol.ParseInventory(m.Payload)
	case protocol.TopicPresence:
		r.pres, err = protocol.ParsePresence(m.Payload)
	}
	if err != nil {
		o.t.Errorf("device %s published an invalid %s: %v: %s", id, kind, err, m.Payload)
		return
	}
	o.mu.Lock()
	o.msgs = append(o.msgs, r)
	o.mu.Unlock()
	select {
	case o.seen <- struct{}{}:
	default:
	}
}

// history returns what device published, as strings, in order.
func (o *operator) history(device string) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.historyLocked(device)
}

func (o *operator) historyLocked(device string) []string {
	var out []string
	for _, r := range o.msgs {
		if r.device == device {
			out = append(out, r.String())
		}
	}
	return out
}

// waitFor waits until device has published a message for which match holds.
func (o *operator) waitFor(device, what string, match func(record) bool) {
	o.t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		o.mu.Lock()
		for _, r := range o.msgs {
			if r.device == device && match(r) {
				o.mu.Unlock()
				return
			}
		}
		o.mu.Unlock()
		select {
		case <-o.seen:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			o.t.Fatalf("device %s: no %s; it published %q", device, what, o.history(device))
		}
	}
}

func (o *operator) waitStatus(device string, s protocol.State) {
	o.t.Helper()
	o.waitFor(device, "status "+string(s), func(r record) bool { return r.kind == protocol.TopicStatus && r.status.State == s })
}

// publish sends a notice, retained (update) or not (cancel), or clears the
// topic when n is nil.
func (o *operator) publish(topic string, n *protocol.Notice) {
	o.t.Helper()
	m := &mqtt.Message{Topic: topic, QoS: 1, Retain: true}
	if n != nil {
		payload, err := protocol.MarshalNotice(n)
		if err != nil {
			o.t.Fatal(err)
		}
		m.Payload, m.Retain = payload, n.Action == protocol.ActionUpdate
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := o.c.Publish(ctx, m); err != nil {
		o.t.Fatal(err)
	}
}

func notice(uid, version string, issued time.Time) *protocol.Notice {
	return &protocol.Notice{
		Action: protocol.ActionUpdate, Rollout: protocol.RolloutRef{Namespace: "default", Name: "r-" + strings.ToLower(uid), UID: uid},
		TargetVersion: version, Models: []string{"sensor"},
		Artifacts: []protocol.Artifact{{URL: "http://firmware.invalid/fw.bin"}},
		SHA256:    strings.Repeat("ab", 32), Size: 1024, IssuedAt: issued,
	}
}

// fast is a behavior quick enough for tests.
func fast() devicesim.Behavior {
	return devicesim.Behavior{DownloadTime: 20 * time.Millisecond, InstallTime: 20 * time.Millisecond, RebootTime: 20 * time.Millisecond}
}

// startDevice starts one device on b and stops it when the test ends.
func startDevice(t *testing.T, b *testenv.Broker, id string, cfg devicesim.Config) *devicesim.Device {
	t.Helper()
	cfg.ID, cfg.Model, cfg.TopicRoot, cfg.Broker = id, "sensor", root, b.URL()
	if cfg.FirmwareVersion == "" {
		cfg.FirmwareVersion = "1.0.0"
	}
	if cfg.HardwareRevision == "" {
		cfg.HardwareRevision = "rev A"
	}
	if cfg.Version == 0 {
		cfg.Version = mqtt.V5
	}
	d, err := devicesim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = d.Stop(ctx)
	})
	return d
}

// TestUpdateSucceeds follows one device through an update on both MQTT
// versions: it reports success only after rebooting, once its inventory
// shows the new version, and the retained notice it meets again after the
// reboot changes nothing.
func TestUpdateSucceeds(t *testing.T) {
	for _, v := range []mqtt.Version{mqtt.V5, mqtt.V311} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			b := testenv.StartBroker(t, testenv.BrokerOptions{})
			op := newOperator(t, b)
			d := startDevice(t, b, "sensor-0042", devicesim.Config{Version: v, PersistentSession: true, WillDelay: 5 * time.Second, Behavior: fast()})
			op.waitFor(d.ID(), "online presence", func(r record) bool {
				return r.kind == protocol.TopicPresence && r.pres.State == protocol.PresenceOnline
			})
			op.waitFor(d.ID(), "inventory", func(r record) bool { return r.kind == protocol.TopicInventory && r.inv.FirmwareVersion == "1.0.0" })

			issued := time.Now()
			op.publish(topics.GroupNotice("sensor", protocol.Cohort(d.ID())), notice("uid-1", "2.0.0", issued))
			op.waitStatus(d.ID(), protocol.StateSucceeded)
			want := []string{
				"sensor-0042 presence online", "sensor-0042 inventory 1.0.0",
				"sensor-0042 status accepted ", "sensor-0042 status downloading ", "sensor-0042 status installing ",
				"sensor-0042 presence offline", "sensor-0042 presence online", "sensor-0042 inventory 2.0.0",
				"sensor-0042 status succeeded ",
			}
			if got := op.history(d.ID()); strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("device published\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if v := d.FirmwareVersion(); v != "2.0.0" {
				t.Fatalf("device runs %s", v)
			}
			// The same notice again (a QoS 1 duplicate) does nothing: a
			// notice published after it, on the same topic so that it
			// arrives after it, is only the second one acted on.
			f := &devicesim.Fleet{Devices: []*devicesim.Device{d}}
			op.publish(topics.DeviceNotice(d.ID()), notice("uid-1", "2.0.0", issued))
			op.publish(topics.GroupNotice("sensor", protocol.Cohort(d.ID())), nil)
			op.publish(topics.DeviceNotice(d.ID()), notice("uid-2", "2.1.0", issued.Add(time.Second)))
			op.waitFor(d.ID(), "status on uid-2", func(r record) bool { return r.kind == protocol.TopicStatus && r.status.RolloutUID == "uid-2" })
			if s := f.Stats(); s.Updates != 2 {
				t.Fatalf("the device acted on %d notices, want 2: %q", s.Updates, op.history(d.ID()))
			}
		})
	}
}

// TestOutcomes checks rejections and failures, with the reasons of
// docs/protocol.md, and that FirstOutcome predicts them.
func TestOutcomes(t *testing.T) {
	broker := testenv.StartBroker(t, testenv.BrokerOptions{})
	op := newOperator(t, broker)
	for _, tc := range []struct {
		name     string
		behavior devicesim.Behavior
		state    protocol.State
		reason   string
		version  string
		reboots  bool
	}{
		{"reject", devicesim.Behavior{RejectProbability: 1, RejectReasons: []string{protocol.ReasonInsufficientStorage}}, protocol.StateRejected, protocol.ReasonInsufficientStorage, "1.0.0", false},
		{"reject-default-reason", devicesim.Behavior{RejectProbability: 1}, protocol.StateRejected, protocol.ReasonLowBattery, "1.0.0", false},
		{"fail", devicesim.Behavior{FailProbability: 1}, protocol.StateFailed, protocol.ReasonInstallFailed, "1.0.0", false},
		{"fail-compat-reason", devicesim.Behavior{FailProbability: 1, FailReason: "flash-write-error"}, protocol.StateFailed, "flash-write-error", "1.0.0", false},
		{"rolled-back", devicesim.Behavior{FailProbability: 1, FailReasons: []string{protocol.ReasonRolledBack}}, protocol.StateFailed, protocol.ReasonRolledBack, "1.0.0", true},
		{"succeed", devicesim.Behavior{}, protocol.StateSucceeded, "", "2.0.0", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := "dev-" + tc.name
			b := tc.behavior
			b.DownloadTime, b.InstallTime = 10*time.Millisecond, 10*time.Millisecond
			if out := devicesim.FirstOutcome(id, b); out.State != tc.state || out.Reason != tc.reason {
				t.Fatalf("FirstOutcome = %+v, want %s %s", out, tc.state, tc.reason)
			}
			d := startDevice(t, broker, id, devicesim.Config{Behavior: b})
			op.publish(topics.DeviceNotice(id), notice("uid-"+tc.name, "2.0.0", time.Now()))
			op.waitStatus(id, tc.state)
			var final record
			op.waitFor(id, "final status", func(r record) bool {
				final = r
				return r.kind == protocol.TopicStatus && r.status.State.Terminal()
			})
			if final.status.Reason != tc.reason || !final.retain {
				t.Fatalf("final status %+v (retained %t), want reason %q, retained", final.status, final.retain, tc.reason)
			}
			if v := d.FirmwareVersion(); v != tc.version {
				t.Fatalf("device runs %s, want %s", v, tc.version)
			}
			rebooted := strings.Contains(strings.Join(op.history(id), "\n"), "presence offline")
			if rebooted != tc.reboots {
				t.Fatalf("rebooted %t, want %t: %q", rebooted, tc.reboots, op.history(id))
			}
		})
	}
}

// TestCancelAndWithdrawal: a cancel notice stops a download and is
// reported; a bare withdrawal (an empty retained message) does not stop
// anything (docs/protocol.md §8.3).
func TestCancelAndWithdrawal(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	op := newOperator(t, b)
	slow := fast()
	slow.DownloadTime = 2 * time.Second
	slow.ProgressInterval = 100 * time.Millisecond

	canceled := startDevice(t, b, "dev-canceled", devicesim.Config{Behavior: slow})
	n := notice("uid-c", "2.0.0", time.Now())
	op.publish(topics.DeviceNotice(canceled.ID()), n)
	op.waitStatus(canceled.ID(), protocol.StateDownloading)
	op.publish(topics.DeviceNotice(canceled.ID()), &protocol.Notice{Action: protocol.ActionCancel, Rollout: n.Rollout, IssuedAt: time.Now()})
	op.publish(topics.DeviceNotice(canceled.ID()), nil)
	op.waitFor(canceled.ID(), "canceled by the operator", func(r record) bool {
		return r.kind == protocol.TopicStatus && r.status.State == protocol.StateCanceled && r.status.Reason == protocol.ReasonCanceledByOperator
	})

	kept := startDevice(t, b, "dev-kept", devicesim.Config{Behavior: slow})
	op.publish(topics.DeviceNotice(kept.ID()), notice("uid-k", "2.0.0", time.Now()))
	op.waitStatus(kept.ID(), protocol.StateDownloading)
	op.publish(topics.DeviceNotice(kept.ID()), nil)
	op.waitStatus(kept.ID(), protocol.StateSucceeded)
	if strings.Contains(strings.Join(op.history(kept.ID()), "\n"), "canceled") {
		t.Fatalf("a withdrawal stopped the update: %q", op.history(kept.ID()))
	}
}

// TestSupersede: a newer notice stops the job in progress, which reports
// canceled (superseded) before the device reports on the new rollout.
func TestSupersede(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	op := newOperator(t, b)
	slow := fast()
	slow.DownloadTime = 2 * time.Second
	d := startDevice(t, b, "dev-s", devicesim.Config{Behavior: slow})
	now := time.Now()
	op.publish(topics.GroupNotice("sensor", protocol.Cohort(d.ID())), notice("uid-old", "2.0.0", now))
	op.waitStatus(d.ID(), protocol.StateDownloading)
	// An older notice on the other topic changes nothing; a newer one wins.
	op.publish(topics.DeviceNotice(d.ID()), notice("uid-older", "1.9.0", now.Add(-time.Minute)))
	op.publish(topics.DeviceNotice(d.ID()), notice("uid-new", "2.1.0", now.Add(time.Minute)))
	op.waitFor(d.ID(), "success on the new rollout", func(r record) bool {
		return r.kind == protocol.TopicStatus && r.status.State == protocol.StateSucceeded
	})
	var statuses []string
	op.mu.Lock()
	for _, r := range op.msgs {
		if r.device == d.ID() && r.kind == protocol.TopicStatus {
			statuses = append(statuses, r.status.RolloutUID+" "+string(r.status.State)+" "+r.status.Reason)
		}
	}
	op.mu.Unlock()
	want := []string{
		"uid-old accepted ", "uid-old downloading ", "uid-old canceled superseded",
		"uid-new accepted ", "uid-new downloading ", "uid-new installing ", "uid-new succeeded ",
	}
	if strings.Join(statuses, "\n") != strings.Join(want, "\n") {
		t.Fatalf("statuses\n%s\nwant\n%s", strings.Join(statuses, "\n"), strings.Join(want, "\n"))
	}
	if v := d.FirmwareVersion(); v != "2.1.0" {
		t.Fatalf("device runs %s", v)
	}
}

// TestFetch downloads the image over HTTP and checks it.
func TestFetch(t *testing.T) {
	image := []byte(strings.Repeat("firmware", 4096))
	sum := sha256.Sum256(image)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/fw.bin" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(image)
	}))
	defer srv.Close()
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	op := newOperator(t, b)
	behavior := fast()
	behavior.Fetch = devicesim.HTTPFetch(srv.Client())
	for _, tc := range []struct {
		name   string
		urls   []string
		sha    string
		size   int64
		state  protocol.State
		reason string
	}{
		{"ok", []string{srv.URL + "/fw.bin"}, hex.EncodeToString(sum[:]), int64(len(image)), protocol.StateSucceeded, ""},
		{"mirror", []string{srv.URL + "/missing.bin", srv.URL + "/fw.bin"}, hex.EncodeToString(sum[:]), int64(len(image)), protocol.StateSucceeded, ""},
		{"digest", []string{srv.URL + "/fw.bin"}, strings.Repeat("0", 64), int64(len(image)), protocol.StateFailed, protocol.ReasonChecksumMismatch},
		{"size", []string{srv.URL + "/fw.bin"}, hex.EncodeToString(sum[:]), int64(len(image)) - 1, protocol.StateFailed, protocol.ReasonChecksumMismatch},
		{"missing", []string{srv.URL + "/missing.bin"}, hex.EncodeToString(sum[:]), int64(len(image)), protocol.StateFailed, protocol.ReasonDownloadFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := "fetch-" + tc.name
			startDevice(t, b, id, devicesim.Config{Behavior: behavior})
			n := notice("uid-"+tc.name, "2.0.0", time.Now())
			n.Artifacts = nil
			for _, u := range tc.urls {
				n.Artifacts = append(n.Artifacts, protocol.Artifact{URL: u})
			}
			n.SHA256, n.Size = tc.sha, tc.size
			op.publish(topics.DeviceNotice(id), n)
			op.waitFor(id, "the outcome", func(r record) bool { return r.kind == protocol.TopicStatus && r.status.State.Terminal() })
			op.waitFor(id, string(tc.state)+" "+tc.reason, func(r record) bool {
				return r.kind == protocol.TopicStatus && r.status.State == tc.state && r.status.Reason == tc.reason
			})
		})
	}
}

// TestPresence: Kill leaves the broker to publish the Will; GoOffline says
// goodbye, and Start brings the device back with its presence and
// inventory.
func TestPresence(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	op := newOperator(t, b)
	offline := func(r record) bool {
		return r.kind == protocol.TopicPresence && r.pres.State == protocol.PresenceOffline
	}

	killed := startDevice(t, b, "dev-killed", devicesim.Config{})
	killed.Kill()
	op.waitFor(killed.ID(), "the Will", func(r record) bool { return offline(r) && r.pres.Time.IsZero() })
	if err := killed.Start(context.Background()); err == nil {
		t.Fatal("a killed device started again")
	}

	ctx := context.Background()
	d := startDevice(t, b, "dev-churn", devicesim.Config{PersistentSession: true, WillDelay: time.Minute})
	if !d.GoOffline(ctx, false) || d.Online() {
		t.Fatal("the device did not go offline")
	}
	op.waitFor(d.ID(), "offline presence", func(r record) bool { return offline(r) && !r.pres.Time.IsZero() })
	if d.GoOffline(ctx, false) {
		t.Fatal("an offline device went offline again")
	}
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if !d.Online() {
		t.Fatal("the device is not online after Start")
	}
	op.waitFor(d.ID(), "a second inventory", func(r record) bool {
		return strings.Count(strings.Join(op.historyLocked(d.ID()), ","), "inventory") == 2
	})
	got := op.history(d.ID())
	if want := []string{"dev-churn presence online", "dev-churn inventory 1.0.0", "dev-churn presence offline", "dev-churn presence online", "dev-churn inventory 1.0.0"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("device published %q, want %q", got, want)
	}
}

// TestBrokerRestart: a broker that lost everything (no persistence) gets
// the device's presence and inventory again when the client reconnects
// by itself.
func TestBrokerRestart(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	d := startDevice(t, b, "dev-restart", devicesim.Config{})
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	op := newOperator(t, b)
	op.waitFor(d.ID(), "inventory after the restart", func(r record) bool { return r.kind == protocol.TopicInventory })
	op.waitFor(d.ID(), "online presence after the restart", func(r record) bool {
		return r.kind == protocol.TopicPresence && r.pres.State == protocol.PresenceOnline
	})
	// Both are retained: a later subscriber finds them.
	later := newOperator(t, b)
	later.waitFor(d.ID(), "retained inventory", func(r record) bool { return r.kind == protocol.TopicInventory && r.retain })
	later.waitFor(d.ID(), "retained presence", func(r record) bool { return r.kind == protocol.TopicPresence && r.retain })
}

// TestFleetStats runs a small fleet through an update and counts it.
func TestFleetStats(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	op := newOperator(t, b)
	f := &devicesim.Fleet{}
	for i := range 12 {
		d, err := devicesim.New(devicesim.Config{
			ID: fmt.Sprintf("stat-%02d", i), Model: "sensor", FirmwareVersion: "1.0.0", HardwareRevision: "r1",
			Broker: b.URL(), Version: mqtt.V5, TopicRoot: root,
			Behavior: devicesim.Behavior{FailProbability: 0.25, DownloadTime: 10 * time.Millisecond, InstallTime: 10 * time.Millisecond},
		})
		if err != nil {
			t.Fatal(err)
		}
		f.Devices = append(f.Devices, d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := f.StartAll(ctx, 4); err != nil {
		t.Fatal(err)
	}
	defer f.StopAll(ctx)
	if s := f.Stats(); s.Online != 12 || s.Versions["1.0.0"] != 12 {
		t.Fatalf("stats %+v", s)
	}
	wantFailed := 0
	for _, d := range f.Devices {
		if devicesim.FirstOutcome(d.ID(), devicesim.Behavior{FailProbability: 0.25}).State == protocol.StateFailed {
			wantFailed++
		}
		op.publish(topics.DeviceNotice(d.ID()), notice("uid-stats", "2.0.0", time.Now()))
	}
	for _, d := range f.Devices {
		op.waitFor(d.ID(), "an outcome", func(r record) bool { return r.kind == protocol.TopicStatus && r.status.State.Terminal() })
	}
	s := f.Stats()
	if s.Failed != wantFailed || s.Succeeded != 12-wantFailed || s.Versions["2.0.0"] != 12-wantFailed || s.Reboots != 12-wantFailed {
		t.Fatalf("stats %+v, want %d failed", s, wantFailed)
	}
}

// statuses returns the statuses device published, as "uid state reason".
func (o *operator) statuses(device string) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []string
	for _, r := range o.msgs {
		if r.device == device && r.kind == protocol.TopicStatus {
			out = append(out, strings.TrimSpace(r.status.RolloutUID+" "+string(r.status.State)+" "+r.status.Reason))
		}
	}
	return out
}

// publishRaw publishes payload, retained, as the operator would a notice.
func (o *operator) publishRaw(topic string, payload []byte) {
	o.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := o.c.Publish(ctx, &mqtt.Message{Topic: topic, QoS: 1, Retain: true, Payload: payload}); err != nil {
		o.t.Fatal(err)
	}
}

// TestNoticeWhileInstalling: a newer notice that arrives while the device
// installs is neither answered nor recorded then; the device evaluates it
// once the installation is over, against the version it runs by then
// (docs/protocol.md §10.2, rule 4).
func TestNoticeWhileInstalling(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	op := newOperator(t, b)
	slow := fast()
	slow.InstallTime = time.Second
	for _, tc := range []struct {
		id, constraint string
		want           []string
	}{
		// Applies only to the version being installed: acted on after it.
		{"dev-later", ">=2.0.0", []string{
			"uid-a accepted", "uid-a downloading", "uid-a installing", "uid-a succeeded",
			"uid-b accepted", "uid-b downloading", "uid-b installing", "uid-b succeeded",
		}},
		// Applied to the old version only: never answered.
		{"dev-never", "<2.0.0", []string{"uid-a accepted", "uid-a downloading", "uid-a installing", "uid-a succeeded"}},
	} {
		t.Run(tc.id, func(t *testing.T) {
			d := startDevice(t, b, tc.id, devicesim.Config{Behavior: slow, PersistentSession: true})
			now := time.Now()
			op.publish(topics.GroupNotice("sensor", protocol.Cohort(d.ID())), notice("uid-a", "2.0.0", now))
			op.waitStatus(d.ID(), protocol.StateInstalling)
			later := notice("uid-b", "3.0.0", now.Add(time.Minute))
			later.CurrentVersion = tc.constraint
			op.publish(topics.DeviceNotice(d.ID()), later)
			last := tc.want[len(tc.want)-1]
			op.waitFor(d.ID(), last, func(r record) bool {
				return r.kind == protocol.TopicStatus && r.status.RolloutUID+" "+string(r.status.State) == last
			})
			time.Sleep(300 * time.Millisecond) // room for a status that should not come
			if got := op.statuses(d.ID()); strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("statuses\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// TestCancelWhileInstalling: a cancel no longer stops an installation, and
// the device reports the outcome (docs/protocol.md §8.3).
func TestCancelWhileInstalling(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	op := newOperator(t, b)
	slow := fast()
	slow.InstallTime = 500 * time.Millisecond
	d := startDevice(t, b, "dev-late-cancel", devicesim.Config{Behavior: slow})
	n := notice("uid-c", "2.0.0", time.Now())
	topic := topics.DeviceNotice(d.ID())
	op.publish(topic, n)
	op.waitStatus(d.ID(), protocol.StateInstalling)
	op.publish(topic, &protocol.Notice{Action: protocol.ActionCancel, Rollout: n.Rollout, IssuedAt: time.Now()})
	op.publish(topic, nil)
	op.waitStatus(d.ID(), protocol.StateSucceeded)
	want := []string{"uid-c accepted", "uid-c downloading", "uid-c installing", "uid-c succeeded"}
	if got := op.statuses(d.ID()); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("statuses %q, want %q", got, want)
	}
}

// TestCancelDropsHeldNotice: a cancel drops the held notice of its rollout
// on either topic, so that the rollout is not started from memory when the
// job in progress ends; without the cancel, it is (docs/protocol.md §10.3).
func TestCancelDropsHeldNotice(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	op := newOperator(t, b)
	// install-failed ends the job without a reboot, so nothing but memory
	// brings the held notice back.
	failing := fast()
	failing.InstallTime = 500 * time.Millisecond
	failing.FailProbability = 1
	for _, tc := range []struct {
		id     string
		cancel bool
		want   []string
	}{
		{"dev-held", false, []string{
			"uid-a accepted", "uid-a downloading", "uid-a installing", "uid-a failed install-failed",
			"uid-b accepted", "uid-b downloading", "uid-b installing", "uid-b failed install-failed",
		}},
		{"dev-dropped", true, []string{"uid-a accepted", "uid-a downloading", "uid-a installing", "uid-a failed install-failed"}},
	} {
		t.Run(tc.id, func(t *testing.T) {
			d := startDevice(t, b, tc.id, devicesim.Config{Behavior: failing})
			now := time.Now()
			group := topics.GroupNotice("sensor", protocol.Cohort(d.ID()))
			op.publish(group, notice("uid-a", "2.0.0", now))
			op.waitStatus(d.ID(), protocol.StateInstalling)
			held := notice("uid-b", "3.0.0", now.Add(time.Minute))
			op.publish(topics.DeviceNotice(d.ID()), held)
			if tc.cancel {
				// On the other topic: the cancel still names the held rollout.
				op.publish(group, &protocol.Notice{Action: protocol.ActionCancel, Rollout: held.Rollout, IssuedAt: time.Now()})
			}
			last := tc.want[len(tc.want)-1]
			op.waitFor(d.ID(), last, func(r record) bool {
				return r.kind == protocol.TopicStatus && r.status.RolloutUID+" "+string(r.status.State)+" "+r.status.Reason == last
			})
			time.Sleep(300 * time.Millisecond)
			if got := op.statuses(d.ID()); strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("statuses\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// TestInvalidNotice: a malformed update notice that names a rollout and
// the device's model is answered with rejected (invalid-notice) and changes
// nothing else; one for another model, or of another protocol version, is
// not answered (docs/protocol.md §10.2, rule 1).
func TestInvalidNotice(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	op := newOperator(t, b)
	d := startDevice(t, b, "dev-invalid", devicesim.Config{Behavior: fast()})
	topic := topics.DeviceNotice(d.ID())
	now := time.Now()
	malformed := func(uid string, change func(map[string]any)) []byte {
		payload, err := protocol.MarshalNotice(notice(uid, "2.0.0", now.Add(time.Hour)))
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(payload, &m); err != nil {
			t.Fatal(err)
		}
		change(m)
		if payload, err = json.Marshal(m); err != nil {
			t.Fatal(err)
		}
		return payload
	}
	op.publishRaw(topic, malformed("uid-bad", func(m map[string]any) { m["sha256"] = strings.Repeat("AB", 32) }))
	op.waitFor(d.ID(), "the rejection", func(r record) bool {
		return r.kind == protocol.TopicStatus && r.status.State == protocol.StateRejected && r.status.Reason == protocol.ReasonInvalidNotice
	})
	op.publishRaw(topic, malformed("uid-other-model", func(m map[string]any) { m["sha256"] = "x"; m["models"] = []string{"gateway"} }))
	op.publishRaw(topic, malformed("uid-v2", func(m map[string]any) { m["v"] = 2 }))
	op.publishRaw(topic, malformed("uid-no-version", func(m map[string]any) { delete(m, "targetVersion") }))
	// The rejection recorded nothing as last: an older valid notice is
	// still newer than last and acted on.
	op.publish(topic, notice("uid-ok", "2.0.0", now))
	op.waitStatus(d.ID(), protocol.StateSucceeded)
	want := []string{"uid-bad rejected invalid-notice", "uid-ok accepted", "uid-ok downloading", "uid-ok installing", "uid-ok succeeded"}
	if got := op.statuses(d.ID()); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("statuses\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
