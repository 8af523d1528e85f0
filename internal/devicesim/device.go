package devicesim

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/heraldiot/herald/mqtt"
	"github.com/heraldiot/herald/protocol"
)

// Behavior is how a simulated device reacts to an update notice.
type Behavior struct {
	// RejectProbability and FailProbability pick the outcome of an update.
	RejectProbability, FailProbability float64
	// FailReason is reported with a failure (default "install-error").
	FailReason string
	// DownloadTime and InstallTime are simulated durations.
	DownloadTime, InstallTime time.Duration
	// Hang makes the device accept and then never report an outcome.
	Hang bool
	// Fetch, when set, downloads the artifact and checks its SHA-256.
	Fetch func(ctx context.Context, n *protocol.Notice) error
}

// Config describes one device.
type Config struct {
	ID, Model, FirmwareVersion, HardwareRevision string
	Labels                                       map[string]string
	Broker                                       string
	Version                                      mqtt.Version
	TopicRoot                                    string
	// WillDelay is the v5 will delay: a reboot within it does not flap offline.
	WillDelay time.Duration
	Behavior  Behavior
	// Rand drives the outcome; nil uses a source seeded from the ID, so a
	// fleet behaves the same way in every run.
	Rand *rand.Rand
	// MQTT is applied to the device's client options (TLS, credentials).
	MQTT func(*mqtt.Options)
	// OnState observes every status the device reports.
	OnState func(id string, s protocol.State)
}

// Device is one simulated device.
type Device struct {
	cfg    Config
	topics protocol.Topics

	mu      sync.Mutex
	version string
	client  *mqtt.Client
	conns   []net.Conn
	job     *job
	done    map[string]bool // rollout UIDs finished
	rng     *rand.Rand
	closed  bool
	wg      sync.WaitGroup
}

type job struct {
	uid    string
	cancel context.CancelFunc
	state  protocol.State
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
	rng := cfg.Rand
	if rng == nil {
		seed := uint64(protocol.Cohort(cfg.ID))<<32 | uint64(len(cfg.ID))
		for _, c := range []byte(cfg.ID) {
			seed = seed*131 + uint64(c)
		}
		rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	}
	return &Device{cfg: cfg, topics: topics, version: cfg.FirmwareVersion, done: map[string]bool{}, rng: rng}, nil
}

// ID is the device's ID.
func (d *Device) ID() string { return d.cfg.ID }

// FirmwareVersion is the version the device runs now.
func (d *Device) FirmwareVersion() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.version
}

// Start connects the device: Will, presence, inventory, subscriptions.
func (d *Device) Start(ctx context.Context) error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return fmt.Errorf("device %s: stopped", d.cfg.ID)
	}
	d.mu.Unlock()
	offline, _ := json.Marshal(protocol.Presence{V: protocol.Version, State: protocol.PresenceOffline})
	opts := mqtt.Options{
		Servers:   []string{d.cfg.Broker},
		Version:   d.cfg.Version,
		ClientID:  "device-" + d.cfg.ID,
		KeepAlive: 30 * time.Second,
		Will: &mqtt.Will{
			Topic: d.topics.Presence(d.cfg.ID), Payload: offline, QoS: mqtt.AtLeastOnce, Retain: true,
			Delay: d.cfg.WillDelay,
		},
		CleanStart:     true,
		SessionExpiry:  d.cfg.WillDelay,
		Backoff:        mqtt.Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second},
		DefaultHandler: d.onNotice,
		Dialer:         d.dial,
		HandlerQueue:   64,
	}
	if d.cfg.MQTT != nil {
		d.cfg.MQTT(&opts)
	}
	c, err := mqtt.Dial(ctx, opts)
	if err != nil {
		return fmt.Errorf("device %s: %w", d.cfg.ID, err)
	}
	d.mu.Lock()
	d.client = c
	d.mu.Unlock()
	if err := d.announce(ctx); err != nil {
		return err
	}
	return c.Subscribe(ctx, nil,
		mqtt.Subscription{Filter: d.topics.GroupNotice(d.cfg.Model, protocol.Cohort(d.cfg.ID)), QoS: mqtt.AtLeastOnce},
		mqtt.Subscription{Filter: d.topics.DeviceNotice(d.cfg.ID), QoS: mqtt.AtLeastOnce},
	)
}

func (d *Device) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err == nil {
		d.mu.Lock()
		d.conns = append(d.conns, c)
		d.mu.Unlock()
	}
	return c, err
}

// announce publishes online presence and inventory, retained.
func (d *Device) announce(ctx context.Context) error {
	d.mu.Lock()
	c, version := d.client, d.version
	d.mu.Unlock()
	online, _ := json.Marshal(protocol.Presence{V: protocol.Version, State: protocol.PresenceOnline, Time: time.Now().UTC()})
	inv, _ := json.Marshal(protocol.Inventory{
		V: protocol.Version, DeviceID: d.cfg.ID, Model: d.cfg.Model, HardwareRevision: d.cfg.HardwareRevision,
		FirmwareVersion: version, Labels: d.cfg.Labels, Time: time.Now().UTC(),
	})
	if err := c.Publish(ctx, &mqtt.Message{Topic: d.topics.Presence(d.cfg.ID), Payload: online, QoS: mqtt.AtLeastOnce, Retain: true}); err != nil {
		return err
	}
	return c.Publish(ctx, &mqtt.Message{Topic: d.topics.Inventory(d.cfg.ID), Payload: inv, QoS: mqtt.AtLeastOnce, Retain: true})
}

// Stop shuts the device down gracefully: offline presence, then DISCONNECT.
func (d *Device) Stop(ctx context.Context) error {
	d.mu.Lock()
	d.closed = true
	c := d.client
	if d.job != nil {
		d.job.cancel()
	}
	d.mu.Unlock()
	d.wg.Wait()
	if c == nil {
		return nil
	}
	offline, _ := json.Marshal(protocol.Presence{V: protocol.Version, State: protocol.PresenceOffline, Time: time.Now().UTC()})
	_ = c.Publish(ctx, &mqtt.Message{Topic: d.topics.Presence(d.cfg.ID), Payload: offline, QoS: mqtt.AtLeastOnce, Retain: true})
	return c.Disconnect(ctx)
}

// Kill cuts the device's network connection without DISCONNECT, as a
// power loss would, so the broker publishes its Will.
func (d *Device) Kill() {
	d.mu.Lock()
	d.closed = true
	c := d.client
	if d.job != nil {
		d.job.cancel()
	}
	for _, nc := range d.conns {
		nc.Close()
	}
	d.mu.Unlock()
	d.wg.Wait()
	if c != nil {
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // no DISCONNECT: the socket is already gone
		_ = c.Disconnect(ctx)
	}
}

// onNotice reacts to a notice on either notice topic.
func (d *Device) onNotice(m *mqtt.Message) {
	if protocol.IsWithdrawal(m.Payload) {
		d.withdraw("")
		return
	}
	n, err := protocol.ParseNotice(m.Payload)
	if err != nil {
		return
	}
	if n.Action == protocol.ActionCancel {
		d.withdraw(n.Rollout.UID)
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed || d.done[n.Rollout.UID] || (d.job != nil && d.job.uid == n.Rollout.UID) {
		return
	}
	ok, err := n.AppliesTo(d.cfg.Model, d.version)
	if err != nil || !ok {
		return
	}
	if d.job != nil {
		if d.job.state == protocol.StateInstalling {
			return // cannot be interrupted; the newer notice stays retained
		}
		d.job.cancel()
	}
	ctx, cancel := context.WithCancel(context.Background())
	j := &job{uid: n.Rollout.UID, cancel: cancel}
	d.job = j
	d.wg.Add(1)
	go d.run(ctx, j, n)
}

// withdraw stops a job that has not reached installing; uid "" means any.
func (d *Device) withdraw(uid string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.job == nil || (uid != "" && d.job.uid != uid) || d.job.state == protocol.StateInstalling {
		return
	}
	d.job.cancel()
}

func (d *Device) run(ctx context.Context, j *job, n protocol.Notice) {
	defer d.wg.Done()
	b := d.cfg.Behavior
	d.mu.Lock()
	roll := d.rng.Float64()
	d.mu.Unlock()
	report := func(s protocol.State, progress int, reason string) bool {
		d.mu.Lock()
		j.state = s
		c := d.client
		d.mu.Unlock()
		st := protocol.Status{
			V: protocol.Version, RolloutUID: n.Rollout.UID, Rollout: n.Rollout.Namespace + "/" + n.Rollout.Name,
			TargetVersion: n.TargetVersion, State: s, Reason: reason, Time: time.Now().UTC(),
		}
		if progress >= 0 {
			st.Progress = &progress
		}
		payload, _ := json.Marshal(st)
		pctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := c.Publish(pctx, &mqtt.Message{Topic: d.topics.Status(d.cfg.ID), Payload: payload, QoS: mqtt.AtLeastOnce, Retain: true})
		if d.cfg.OnState != nil {
			d.cfg.OnState(d.cfg.ID, s)
		}
		return err == nil
	}
	finish := func() {
		d.mu.Lock()
		d.done[j.uid] = true
		if d.job == j {
			d.job = nil
		}
		d.mu.Unlock()
	}
	defer finish()
	if roll < b.RejectProbability {
		report(protocol.StateRejected, -1, "battery-low")
		return
	}
	report(protocol.StateAccepted, -1, "")
	if b.Hang {
		<-ctx.Done()
		return
	}
	report(protocol.StateDownloading, 0, "")
	if b.Fetch != nil {
		if err := b.Fetch(ctx, &n); err != nil {
			report(protocol.StateFailed, -1, "download-failed")
			return
		}
	}
	if !sleep(ctx, b.DownloadTime) {
		report(protocol.StateCanceled, -1, "notice-withdrawn")
		return
	}
	report(protocol.StateInstalling, -1, "")
	// Installing cannot be interrupted: ignore ctx from here on.
	time.Sleep(b.InstallTime)
	if roll < b.RejectProbability+b.FailProbability {
		reason := b.FailReason
		if reason == "" {
			reason = "install-error"
		}
		report(protocol.StateFailed, -1, reason)
		return
	}
	report(protocol.StateSucceeded, 100, "")
	d.reboot(n.TargetVersion)
}

// reboot comes back on the new firmware: a clean DISCONNECT (which
// discards the Will, so presence does not flap), then a fresh connection
// announcing the new version.
func (d *Device) reboot(version string) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	d.version = version
	c := d.client
	d.client, d.conns = nil, nil
	d.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = c.Disconnect(ctx)
	if err := d.Start(ctx); err != nil {
		// The simulated device stays down, as a bricked one would.
		return
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
