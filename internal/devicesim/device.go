package devicesim

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldiot/herald/internal/window"
	"github.com/heraldiot/herald/mqtt"
	"github.com/heraldiot/herald/protocol"
)

// Config describes one device.
type Config struct {
	ID, Model, FirmwareVersion, HardwareRevision string
	Labels                                       map[string]string
	// Broker is the broker URL (tcp://, mqtt://, tls://, ssl://, mqtts://).
	Broker    string
	Version   mqtt.Version
	TopicRoot string
	// ClientID is the MQTT client identifier; empty means the device ID, as
	// docs/protocol.md §2.1 recommends.
	ClientID string
	// KeepAlive is the MQTT keepalive (default 30s).
	KeepAlive time.Duration
	// WillDelay is the v5 will delay: a reboot within it does not flap offline.
	WillDelay time.Duration
	// PersistentSession keeps the MQTT session across connections (Clean
	// Start 0, v5 session expiry SessionExpiry), as docs/protocol.md §2.1
	// recommends, so that a short outage neither fires a delayed Will nor
	// loses a cancel notice. Off, every connection starts clean and the
	// session ends with it.
	PersistentSession bool
	// SessionExpiry is the v5 session expiry of a persistent session
	// (default protocol.SessionExpiry, one day).
	SessionExpiry time.Duration
	Behavior      Behavior
	// Rand drives the outcome; nil uses a source seeded from the ID, so a
	// fleet behaves the same way in every run (see FirstOutcome).
	Rand *rand.Rand
	// MQTT is applied to the device's client options (TLS, credentials).
	MQTT func(*mqtt.Options)
	// OnState observes every status the device reports.
	OnState func(id string, s protocol.State)
}

// The causes that end a job early. Only the first two are reported.
var (
	errCanceledByOperator = errors.New(protocol.ReasonCanceledByOperator)
	errSuperseded         = errors.New(protocol.ReasonSuperseded)
	errShutdown           = errors.New("device stopped")
)

// noticeKey identifies a notice: the same rollout UID, attempt and issue
// time is the same notice delivered again (docs/protocol.md §10.2, rule 2).
type noticeKey struct {
	uid      string
	issuedAt time.Time
	attempt  int
}

// newer reports whether n should be followed rather than the notice k.
func (k noticeKey) newer(n *protocol.Notice) bool {
	return n.Supersedes(&protocol.Notice{Rollout: protocol.RolloutRef{UID: k.uid}, IssuedAt: k.issuedAt, Attempt: k.attempt})
}

// job is the device's work on one update notice.
type job struct {
	notice protocol.Notice
	ctx    context.Context
	cancel context.CancelCauseFunc
	state  protocol.State // latest reported; guarded by Device.mu
	done   chan struct{}  // closed when the job's goroutine returns
}

// counts are what one device has done since it was created.
type counts struct {
	updates                               int // notices acted on
	succeeded, failed, rejected, canceled int
	reboots, churned                      int
	windowWaits                           int // jobs that checked maintenance windows
}

// Device is one simulated device. It follows docs/protocol.md: a Will and
// presence, inventory after every CONNACK, the two notice subscriptions,
// and the device side of a rollout (section 10), with simulated download,
// install and reboot times.
type Device struct {
	cfg         Config
	behavior    Behavior
	topics      protocol.Topics
	groupNotice string
	ownNotice   string

	// ctx ends when the device is stopped; goroutines of the device watch it.
	ctx    context.Context
	cancel context.CancelFunc

	// pubMu serialises status publishes, so that the retained status is
	// always the latest one whoever publishes it (a job, or a reconnect
	// repeating it).
	pubMu sync.Mutex

	mu        sync.Mutex
	version   string
	client    *mqtt.Client // nil while offline or rebooting
	conn      net.Conn     // client's latest network connection, for Kill
	rebooting bool
	stopped   bool
	last      *noticeKey                  // the last update notice acted on
	job       *job                        // nil when idle
	held      map[string]*protocol.Notice // the latest notice per notice topic
	status    *protocol.Status            // the latest status
	rng       *rand.Rand
	counts    counts
	wg        sync.WaitGroup
}

// New returns a device that is not yet connected.
func New(cfg Config) (*Device, error) {
	topics, err := protocol.NewTopics(cfg.TopicRoot)
	if err != nil {
		return nil, err
	}
	if err := protocol.ValidSegment(cfg.ID); err != nil {
		return nil, fmt.Errorf("device ID %q: %w", cfg.ID, err)
	}
	if err := protocol.ValidSegment(cfg.Model); err != nil {
		return nil, fmt.Errorf("device %s: model %q: %w", cfg.ID, cfg.Model, err)
	}
	if err := protocol.ValidVersion(cfg.FirmwareVersion); err != nil {
		return nil, fmt.Errorf("device %s: firmware version: %w", cfg.ID, err)
	}
	rng := cfg.Rand
	if rng == nil {
		rng = seededRand(cfg.ID)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Device{
		cfg:         cfg,
		behavior:    cfg.Behavior.normalized(),
		topics:      topics,
		groupNotice: topics.GroupNotice(cfg.Model, protocol.Cohort(cfg.ID)),
		ownNotice:   topics.DeviceNotice(cfg.ID),
		ctx:         ctx,
		cancel:      cancel,
		version:     cfg.FirmwareVersion,
		held:        map[string]*protocol.Notice{},
		rng:         rng,
	}, nil
}

// seededRand is a device's default random source: a function of its ID.
func seededRand(id string) *rand.Rand {
	seed := uint64(protocol.Cohort(id))<<32 | uint64(len(id))
	for _, c := range []byte(id) {
		seed = seed*131 + uint64(c)
	}
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// ID is the device's ID.
func (d *Device) ID() string { return d.cfg.ID }

// Model is the device's model.
func (d *Device) Model() string { return d.cfg.Model }

// FirmwareVersion is the version the device runs now.
func (d *Device) FirmwareVersion() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.version
}

// Online reports whether the device has a connection to the broker.
func (d *Device) Online() bool {
	d.mu.Lock()
	c := d.client
	d.mu.Unlock()
	return c != nil && c.IsConnected()
}

// Start connects the device, as it does when it boots: Will, presence,
// inventory, subscriptions. A device taken offline by GoOffline can be
// started again; a stopped or killed one cannot.
func (d *Device) Start(ctx context.Context) error {
	d.mu.Lock()
	switch {
	case d.stopped:
		d.mu.Unlock()
		return fmt.Errorf("device %s: stopped", d.cfg.ID)
	case d.client != nil || d.rebooting:
		d.mu.Unlock()
		return fmt.Errorf("device %s: already started", d.cfg.ID)
	}
	c := d.newClient()
	d.client = c
	d.mu.Unlock()
	if err := d.boot(ctx, c); err != nil {
		d.mu.Lock()
		if d.client == c {
			d.client, d.conn = nil, nil
		}
		d.mu.Unlock()
		return fmt.Errorf("device %s: %w", d.cfg.ID, err)
	}
	return nil
}

// boot makes the first connection of client c and announces the device.
func (d *Device) boot(ctx context.Context, c *mqtt.Client) error {
	if err := c.Connect(ctx); err != nil {
		return err
	}
	if err := d.announce(ctx, c); err != nil {
		// Leave nothing half-connected behind.
		cctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = c.Disconnect(cctx)
		return err
	}
	return nil
}

// newClient builds the device's MQTT client; d.mu is held.
func (d *Device) newClient() *mqtt.Client {
	v5 := d.cfg.Version != mqtt.V311
	will, _ := protocol.MarshalPresence(&protocol.Presence{State: protocol.PresenceOffline})
	clientID := d.cfg.ClientID
	if clientID == "" {
		clientID = d.cfg.ID
	}
	keepAlive := d.cfg.KeepAlive
	if keepAlive == 0 {
		keepAlive = 30 * time.Second
	}
	// Without a persistent session the session ends with the connection,
	// so the delayed Will (if any) fires when the session ends.
	expiry := d.cfg.WillDelay
	if d.cfg.PersistentSession {
		expiry = d.cfg.SessionExpiry
		if expiry == 0 {
			expiry = protocol.SessionExpiry
		}
	}
	var c *mqtt.Client
	var connects atomic.Int32
	opts := mqtt.Options{
		Servers:   []string{d.cfg.Broker},
		Version:   d.cfg.Version,
		ClientID:  clientID,
		KeepAlive: keepAlive,
		Will: &mqtt.Will{
			Topic: d.topics.Presence(d.cfg.ID), Payload: will, QoS: mqtt.AtLeastOnce, Retain: true,
			Delay: d.cfg.WillDelay, PayloadUTF8: v5,
		},
		CleanStart:     !d.cfg.PersistentSession,
		SessionExpiry:  expiry,
		Backoff:        mqtt.Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second},
		DefaultHandler: d.onMessage,
		Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return d.dial(ctx, c, network, addr)
		},
		HandlerQueue: 64,
		// The first connection is announced by Start or reboot, which
		// report its errors; later ones are the client's own reconnects.
		OnConnect: func(cl *mqtt.Client, _ *mqtt.Connack) {
			if connects.Add(1) > 1 {
				d.reconnected(cl)
			}
		},
	}
	if d.cfg.MQTT != nil {
		d.cfg.MQTT(&opts)
	}
	c = mqtt.New(opts)
	return c
}

func (d *Device) dial(ctx context.Context, c *mqtt.Client, network, addr string) (net.Conn, error) {
	nc, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.client != c {
		// Killed or taken offline while dialing.
		nc.Close()
		return nil, errors.New("device is offline")
	}
	// The client dials again only once the previous connection is gone.
	d.conn = nc
	return nc, nil
}

// reconnected repeats what a device does after every CONNACK when the
// client reconnected by itself (the broker restarted, the link dropped).
func (d *Device) reconnected(c *mqtt.Client) {
	d.mu.Lock()
	if d.stopped || d.client != c {
		d.mu.Unlock()
		return
	}
	d.wg.Add(1)
	d.mu.Unlock()
	go func() {
		defer d.wg.Done()
		ctx, cancel := context.WithTimeout(d.ctx, 30*time.Second)
		defer cancel()
		_ = d.announce(ctx, c)
	}()
}

// announce does what docs/protocol.md §2.3 asks after every CONNACK:
// presence, inventory, both notice subscriptions (which makes the broker
// send the retained notices again), and the latest status, if any.
func (d *Device) announce(ctx context.Context, c *mqtt.Client) error {
	d.mu.Lock()
	version := d.version
	d.mu.Unlock()
	online, err := protocol.MarshalPresence(&protocol.Presence{State: protocol.PresenceOnline, Time: time.Now()})
	if err != nil {
		return err
	}
	inv, err := protocol.MarshalInventory(&protocol.Inventory{
		DeviceID: d.cfg.ID, Model: d.cfg.Model, HardwareRevision: d.cfg.HardwareRevision,
		FirmwareVersion: version, Labels: d.cfg.Labels, Time: time.Now(),
	})
	if err != nil {
		return err
	}
	for _, m := range []*mqtt.Message{
		d.message(d.topics.Presence(d.cfg.ID), online, protocol.PresenceContentType),
		d.message(d.topics.Inventory(d.cfg.ID), inv, protocol.InventoryContentType),
	} {
		if err := c.Publish(ctx, m); err != nil {
			return fmt.Errorf("publish %s: %w", m.Topic, err)
		}
	}
	if err := c.Subscribe(ctx, nil,
		mqtt.Subscription{Filter: d.groupNotice, QoS: mqtt.AtLeastOnce},
		mqtt.Subscription{Filter: d.ownNotice, QoS: mqtt.AtLeastOnce},
	); err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	d.pubMu.Lock()
	defer d.pubMu.Unlock()
	d.mu.Lock()
	st := d.status
	// A device rebooting into new firmware reports the outcome next
	// (docs/protocol.md §10.5): that is its latest status.
	outcomeNext := d.job != nil && d.rebooting
	d.mu.Unlock()
	// Even a finished, acknowledged status: a broker can acknowledge a
	// message and then lose it (mosquitto acknowledges before it writes
	// to disk), and the same retained bytes again change nothing.
	if st != nil && !outcomeNext {
		return d.publishStatus(ctx, c, st)
	}
	return nil
}

// Stop shuts the device down for good, gracefully: an update in progress
// stops where it is, then offline presence and DISCONNECT (docs/protocol.md
// §2.4).
func (d *Device) Stop(ctx context.Context) error {
	c, _ := d.shutdown()
	if c == nil {
		return nil
	}
	return d.goodbye(ctx, c)
}

// Kill cuts the device's network connection for good without DISCONNECT,
// as a power loss would, so the broker publishes its Will.
func (d *Device) Kill() {
	if c, nc := d.shutdown(); c != nil {
		if nc != nil {
			nc.Close()
		}
		drop(c)
	}
}

// shutdown marks the device stopped, ends its goroutines and returns the
// client it still had, with its network connection.
func (d *Device) shutdown() (*mqtt.Client, net.Conn) {
	d.mu.Lock()
	if d.stopped {
		d.mu.Unlock()
		return nil, nil
	}
	d.stopped = true
	c, nc := d.client, d.conn
	d.client, d.conn = nil, nil
	if d.job != nil {
		d.job.cancel(errShutdown)
	}
	d.mu.Unlock()
	d.cancel()
	d.wg.Wait()
	return c, nc
}

// GoOffline takes an idle, connected device off the network until Start
// is called again: gracefully (offline presence, then DISCONNECT) or, when
// abrupt, by dropping the connection so that the broker publishes the
// Will (after the Will delay, unless the device is back by then). It
// reports false, and does nothing, when the device is busy with an update,
// offline already or stopped.
func (d *Device) GoOffline(ctx context.Context, abrupt bool) bool {
	d.mu.Lock()
	c := d.client
	if d.stopped || c == nil || d.rebooting || d.job != nil || !c.IsConnected() {
		d.mu.Unlock()
		return false
	}
	nc := d.conn
	d.client, d.conn = nil, nil
	d.counts.churned++
	d.mu.Unlock()
	if abrupt {
		if nc != nil {
			nc.Close()
		}
		drop(c)
		return true
	}
	_ = d.goodbye(ctx, c)
	return true
}

// goodbye publishes offline presence, waits for the broker to take it, and
// disconnects, which discards the Will (docs/protocol.md §2.4).
func (d *Device) goodbye(ctx context.Context, c *mqtt.Client) error {
	if !c.IsConnected() {
		// Nothing can reach the broker now; its Will speaks for the device.
		return c.Disconnect(ctx)
	}
	offline, _ := protocol.MarshalPresence(&protocol.Presence{State: protocol.PresenceOffline, Time: time.Now()})
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	_ = c.Publish(pctx, d.message(d.topics.Presence(d.cfg.ID), offline, protocol.PresenceContentType))
	cancel()
	return c.Disconnect(ctx)
}

// message is a retained QoS 1 publish of the device's; under MQTT 5 it
// says its payload is UTF-8 and names its content type, as
// docs/protocol.md §8.2 allows.
func (d *Device) message(topic string, payload []byte, contentType string) *mqtt.Message {
	m := &mqtt.Message{Topic: topic, Payload: payload, QoS: mqtt.AtLeastOnce, Retain: true}
	if d.cfg.Version != mqtt.V311 {
		m.PayloadUTF8, m.ContentType = true, contentType
	}
	return m
}

// drop stops a client whose connection is gone without a DISCONNECT.
func drop(c *mqtt.Client) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = c.Disconnect(ctx)
}

// onMessage receives the notices of both notice topics.
func (d *Device) onMessage(m *mqtt.Message) {
	if m.Topic != d.groupNotice && m.Topic != d.ownNotice {
		return
	}
	if protocol.IsWithdrawal(m.Payload) {
		// A withdrawal forgets the notice; work in progress carries on
		// (docs/protocol.md §8.3).
		d.mu.Lock()
		delete(d.held, m.Topic)
		d.mu.Unlock()
		return
	}
	n, err := protocol.ParseNotice(m.Payload)
	if err != nil {
		// Not a notice the device can use: the job, last and the held
		// notices stay as they are, and it is not a withdrawal either.
		d.answerInvalid(m.Payload, err)
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if n.Action == protocol.ActionCancel {
		if j := d.job; j != nil && j.notice.Rollout.UID == n.Rollout.UID && cancelable(j.state) {
			j.cancel(errCanceledByOperator)
		}
		// A cancel is never held, and a canceled rollout is never
		// started from memory (docs/protocol.md §10.3).
		for topic, h := range d.held {
			if h.Rollout.UID == n.Rollout.UID {
				delete(d.held, topic)
			}
		}
		return
	}
	d.held[m.Topic] = &n
	d.consider(&n)
}

// answerInvalid answers an update notice the device cannot use, as
// docs/protocol.md §10.2 rule 1 says: rejected with invalid-notice when
// the operator waits for an answer, silence otherwise. It runs on its own
// goroutine, because it publishes and onMessage must not block the client.
// cause is why ParseNotice refused the notice.
func (d *Device) answerInvalid(payload []byte, cause error) {
	n, err := protocol.ParseRejectable(payload)
	if err != nil {
		return // another version, a cancel, or no rollout to name: silence
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.stopped || d.client == nil:
		return
	case n.Models != nil && !slices.Contains(n.Models, d.cfg.Model):
		return // for another model: no answer expected
	case d.version == n.TargetVersion:
		return // done already
	case !n.IssuedAt.IsZero() && d.last != nil && !d.last.newer(&n):
		return // older than what the device follows
	}
	st := &protocol.Status{
		RolloutUID: n.Rollout.UID, Rollout: n.Rollout.String(), TargetVersion: n.TargetVersion,
		State: protocol.StateRejected, Reason: protocol.ReasonInvalidNotice,
		Message: truncate(cause.Error(), 1024), Time: time.Now(),
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		d.pubMu.Lock()
		defer d.pubMu.Unlock()
		d.send(nil, st)
	}()
}

// cancelable reports whether a job in state s stops on a cancel or a newer
// notice: before installing, which cannot be interrupted.
func cancelable(s protocol.State) bool {
	return s == "" || s == protocol.StateAccepted || s == protocol.StateDownloading
}

// consider acts on an update notice as docs/protocol.md §10.2 says; d.mu
// is held.
func (d *Device) consider(n *protocol.Notice) {
	if d.stopped || d.client == nil {
		return
	}
	if d.last != nil && !d.last.newer(n) {
		return // delivered again, or older than what the device follows
	}
	if ok, err := n.AppliesTo(d.cfg.Model, d.version); err != nil || !ok {
		return
	}
	prev := d.job
	if prev != nil {
		if !cancelable(prev.state) {
			// Installing: finish first; the notice is held and considered
			// again when the job ends.
			return
		}
		prev.cancel(errSuperseded)
	}
	d.last = &noticeKey{uid: n.Rollout.UID, issuedAt: n.IssuedAt, attempt: n.EffectiveAttempt()}
	d.counts.updates++
	ctx, cancel := context.WithCancelCause(d.ctx)
	j := &job{notice: *n, ctx: ctx, cancel: cancel, done: make(chan struct{})}
	d.job = j
	d.wg.Add(1)
	go d.run(j, prev)
}

// run carries out one job: the outcome is drawn from the device's random
// source when the job starts, in the order FirstOutcome replays.
func (d *Device) run(j *job, prev *job) {
	defer d.wg.Done()
	defer close(j.done)
	if prev != nil {
		// The superseded job reports canceled before this one reports
		// anything, so that the retained status ends on this rollout.
		<-prev.done
	}
	defer d.finish(j)
	b := &d.behavior
	d.mu.Lock()
	out := b.draw(d.rng)
	downloadTime := b.jittered(b.DownloadTime, d.rng.Float64())
	installTime := b.jittered(b.InstallTime, d.rng.Float64())
	d.mu.Unlock()
	if b.SucceedOnAttempt > 0 && j.notice.EffectiveAttempt() >= b.SucceedOnAttempt {
		out = Outcome{State: protocol.StateSucceeded}
	}

	if out.State == protocol.StateRejected {
		d.report(j, protocol.StateRejected, -1, out.Reason, "")
		return
	}
	if !d.report(j, protocol.StateAccepted, -1, "", "") {
		return
	}
	if out.Hang {
		<-j.ctx.Done()
		d.endEarly(j)
		return
	}
	if !d.awaitWindow(j) {
		return
	}
	if !d.download(j, downloadTime) {
		return
	}
	if !d.report(j, protocol.StateInstalling, -1, "", "") {
		return
	}
	// Installing cannot be interrupted, except by switching the simulator off.
	if !sleep(d.ctx, installTime) {
		return
	}
	switch {
	case out.State == protocol.StateFailed && out.Reason == protocol.ReasonRolledBack:
		// The new image did not hold: the old firmware boots and says so.
		if d.reboot("") {
			d.report(j, protocol.StateFailed, -1, out.Reason, "the new image failed its self-test; the previous firmware runs")
		}
	case out.State == protocol.StateFailed:
		d.report(j, protocol.StateFailed, -1, out.Reason, "")
	default:
		// Success is reported by the new firmware, after the reboot,
		// once its inventory shows the new version (docs/protocol.md §10.5).
		if d.reboot(j.notice.TargetVersion) {
			d.report(j, protocol.StateSucceeded, -1, "", "")
		}
	}
}

// awaitWindow waits in accepted until one of the notice's maintenance
// windows is open (docs/protocol.md §10.4). A notice whose windows the
// device cannot evaluate is rejected with reason policy. It reports false
// when the job ended.
func (d *Device) awaitWindow(j *job) bool {
	ws := j.notice.MaintenanceWindows
	if len(ws) == 0 {
		return true
	}
	specs := make([]window.Spec, len(ws))
	for i, w := range ws {
		specs[i] = window.Spec{Schedule: w.Schedule, Duration: time.Duration(w.DurationSeconds) * time.Second, TimeZone: w.TimeZone}
	}
	windows, err := window.Compile(specs)
	if err != nil {
		d.report(j, protocol.StateRejected, -1, protocol.ReasonPolicy, truncate("maintenance window: "+err.Error(), 1024))
		return false
	}
	d.mu.Lock()
	d.counts.windowWaits++
	d.mu.Unlock()
	for {
		now := time.Now()
		open, _ := windows.Next(now)
		if !open.After(now) {
			return true
		}
		if !sleep(j.ctx, open.Sub(now)) {
			d.endEarly(j)
			return false
		}
	}
}

// download fetches the image (when Behavior.Fetch is set) and spends the
// simulated download time, reporting progress no more than once per
// ProgressInterval. It reports false when the job ended.
func (d *Device) download(j *job, total time.Duration) bool {
	b := &d.behavior
	if !d.report(j, protocol.StateDownloading, 0, "", "") {
		return false
	}
	if b.Fetch != nil {
		if err := b.Fetch(j.ctx, &j.notice); err != nil {
			if j.ctx.Err() != nil {
				d.endEarly(j)
				return false
			}
			reason := protocol.ReasonDownloadFailed
			if errors.Is(err, ErrChecksumMismatch) {
				reason = protocol.ReasonChecksumMismatch
			}
			d.report(j, protocol.StateFailed, -1, reason, truncate(err.Error(), 1024))
			return false
		}
	}
	start := time.Now()
	for {
		left := total - time.Since(start)
		if left <= 0 {
			return true
		}
		if !sleep(j.ctx, min(left, b.ProgressInterval)) {
			d.endEarly(j)
			return false
		}
		if elapsed := time.Since(start); elapsed < total {
			d.report(j, protocol.StateDownloading, int(100*elapsed/total), "", "")
		}
	}
}

// endEarly reports how a job that was stopped ended: canceled by a cancel
// notice or a newer notice, or nothing when the device is switched off.
func (d *Device) endEarly(j *job) {
	switch cause := context.Cause(j.ctx); cause {
	case errCanceledByOperator, errSuperseded:
		d.report(j, protocol.StateCanceled, -1, cause.Error(), "")
	}
}

// finish ends a job and considers the notices held meanwhile.
func (d *Device) finish(j *job) {
	j.cancel(nil)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.job != j {
		return
	}
	d.job = nil
	for _, topic := range []string{d.groupNotice, d.ownNotice} {
		if n := d.held[topic]; n != nil {
			d.consider(n)
		}
	}
}

// report publishes a status for job j, retained. It reports false when the
// job was stopped before this state.
func (d *Device) report(j *job, s protocol.State, progress int, reason, message string) bool {
	d.pubMu.Lock()
	defer d.pubMu.Unlock()
	if err := j.ctx.Err(); err != nil && !s.Terminal() {
		return false
	}
	n := &j.notice
	st := &protocol.Status{
		RolloutUID: n.Rollout.UID, Rollout: n.Rollout.String(), TargetVersion: n.TargetVersion,
		State: s, Reason: reason, Message: message, Time: time.Now(), Attempt: n.Attempt,
	}
	if progress >= 0 {
		st.Progress = &progress
	}
	d.send(j, st)
	return true
}

// send makes st the device's latest status, and the state of job j unless
// j is nil, and publishes it; d.pubMu is held.
func (d *Device) send(j *job, st *protocol.Status) {
	d.mu.Lock()
	if j != nil {
		j.state = st.State
	}
	d.status = st
	c := d.client
	switch st.State {
	case protocol.StateSucceeded:
		d.counts.succeeded++
	case protocol.StateFailed:
		d.counts.failed++
	case protocol.StateRejected:
		d.counts.rejected++
	case protocol.StateCanceled:
		d.counts.canceled++
	}
	d.mu.Unlock()
	if d.cfg.OnState != nil {
		d.cfg.OnState(d.cfg.ID, st.State)
	}
	if c != nil {
		ctx, cancel := context.WithTimeout(d.ctx, 30*time.Second)
		defer cancel()
		// A status the broker did not take is published again after the
		// next CONNACK (announce).
		_ = d.publishStatus(ctx, c, st)
	}
}

// publishStatus publishes st retained; d.pubMu is held.
func (d *Device) publishStatus(ctx context.Context, c *mqtt.Client, st *protocol.Status) error {
	payload, err := protocol.MarshalStatus(st)
	if err != nil {
		return err
	}
	return c.Publish(ctx, d.message(d.topics.Status(d.cfg.ID), payload, protocol.StatusContentType))
}

// reboot restarts the device into version ("" keeps the running one):
// offline presence and DISCONNECT, the reboot time, then a new connection
// announcing the version. It retries the connection until it succeeds or
// the device is stopped, and reports whether the device is back.
func (d *Device) reboot(version string) bool {
	d.mu.Lock()
	if d.stopped {
		d.mu.Unlock()
		return false
	}
	old := d.client
	d.client, d.conn = nil, nil
	d.rebooting = true
	d.counts.reboots++
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		d.rebooting = false
		d.mu.Unlock()
	}()
	if old != nil {
		ctx, cancel := context.WithTimeout(d.ctx, 10*time.Second)
		_ = d.goodbye(ctx, old)
		cancel()
	}
	if !sleep(d.ctx, d.behavior.RebootTime) {
		return false
	}
	d.mu.Lock()
	if version != "" {
		d.version = version
	}
	d.mu.Unlock()
	backoff := mqtt.Backoff{Min: 200 * time.Millisecond, Max: 5 * time.Second}
	for attempt := 0; ; attempt++ {
		d.mu.Lock()
		if d.stopped {
			d.mu.Unlock()
			return false
		}
		c := d.newClient()
		d.client = c
		d.mu.Unlock()
		ctx, cancel := context.WithTimeout(d.ctx, 30*time.Second)
		err := d.boot(ctx, c)
		cancel()
		if err == nil {
			return true
		}
		d.mu.Lock()
		if d.client == c {
			d.client, d.conn = nil, nil
		}
		d.mu.Unlock()
		if !sleep(d.ctx, backoff.Delay(attempt)) {
			return false
		}
	}
}

// sleep waits for t or until ctx ends, and reports whether t passed.
func sleep(ctx context.Context, t time.Duration) bool {
	if t <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(t)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xc0 == 0x80 {
		n--
	}
	return s[:n]
}
