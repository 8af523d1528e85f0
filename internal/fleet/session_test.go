package fleet

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"k8s.io/apimachinery/pkg/types"

	"github.com/heraldiot/herald/internal/testenv"
	"github.com/heraldiot/herald/mqtt"
	"github.com/heraldiot/herald/protocol"
)

// testFleet is the retained picture of a fleet a test keeps on a broker,
// with a publisher that changes it.
type testFleet struct {
	t      testing.TB
	topics protocol.Topics
	pub    *mqtt.Client
	url    string
}

func newTestFleet(t testing.TB, url, root string) *testFleet {
	t.Helper()
	topics, err := protocol.NewTopics(root)
	if err != nil {
		t.Fatal(err)
	}
	f := &testFleet{t: t, topics: topics, url: url}
	f.pub = f.dial("devices-" + strings.ReplaceAll(root, "/", "-"))
	return f
}

func (f *testFleet) dial(id string) *mqtt.Client {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := mqtt.Dial(ctx, mqtt.Options{Servers: []string{f.url}, ClientID: id, Backoff: mqtt.Backoff{Min: 50 * time.Millisecond, Max: 200 * time.Millisecond}})
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	return c
}

// retain publishes retained messages and waits for the broker to take them.
func (f *testFleet) retain(msgs ...mqtt.Message) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	errs := make(chan error, len(msgs))
	sem := make(chan struct{}, 64)
	for i := range msgs {
		m := msgs[i]
		m.QoS, m.Retain = mqtt.AtLeastOnce, true
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			errs <- f.pub.Publish(ctx, &m)
		}()
	}
	for range msgs {
		if err := <-errs; err != nil {
			f.t.Fatal(err)
		}
	}
}

// device returns a device's presence and inventory messages.
func (f *testFleet) device(id, version string) []mqtt.Message {
	f.t.Helper()
	pres, err := protocol.MarshalPresence(&protocol.Presence{State: protocol.PresenceOnline})
	if err != nil {
		f.t.Fatal(err)
	}
	inv, err := protocol.MarshalInventory(&protocol.Inventory{DeviceID: id, Model: "sensor", HardwareRevision: "r1", FirmwareVersion: version})
	if err != nil {
		f.t.Fatal(err)
	}
	return []mqtt.Message{{Topic: f.topics.Presence(id), Payload: pres}, {Topic: f.topics.Inventory(id), Payload: inv}}
}

// devices returns n devices' messages, IDs prefix-0000 on.
func (f *testFleet) devices(prefix string, n int, version string) []mqtt.Message {
	var out []mqtt.Message
	for i := range n {
		out = append(out, f.device(fmt.Sprintf("%s-%04d", prefix, i), version)...)
	}
	return out
}

// notice returns a retained group notice of rollout uid.
func (f *testFleet) notice(uid string, cohort int) mqtt.Message {
	f.t.Helper()
	n := &protocol.Notice{
		Action: protocol.ActionUpdate, TargetVersion: "2.0.0", Models: []string{"sensor"},
		Rollout:   protocol.RolloutRef{UID: uid, Name: "r", Namespace: "ns"},
		IssuedAt:  time.Now().Truncate(time.Second),
		Artifacts: []protocol.Artifact{{URL: "https://example.com/fw.bin"}},
		SHA256:    strings.Repeat("a", 64), Size: 1,
	}
	b, err := protocol.MarshalNotice(n)
	if err != nil {
		f.t.Fatal(err)
	}
	return mqtt.Message{Topic: f.topics.GroupNotice("sensor", cohort), Payload: b}
}

// startTestSession runs a session against url until the test ends; prep
// may change its configuration and test hooks before it starts.
func startTestSession(t *testing.T, url, root string, prep func(*Session)) *Session {
	t.Helper()
	cfg := Config{URLs: []string{url}, Version: mqtt.V5, ClientID: "herald-" + strings.ReplaceAll(root, "/", "-"), KeepAlive: 2 * time.Second, TopicRoot: root}
	s, err := newSession(types.NamespacedName{Namespace: "test", Name: root}, cfg, Hooks{}, testr.New(t), func() {})
	if err != nil {
		t.Fatal(err)
	}
	if prep != nil {
		prep(s)
	}
	s.start(50 * time.Millisecond)
	t.Cleanup(func() { s.stop(false) })
	return s
}

// waitFor polls cond, an observation of the session, until it holds.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, detail := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last: %s", timeout, what, detail)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitSynced waits for a sync completed after since.
func waitSynced(t testing.TB, s *Session, since time.Time, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, "a completed sync", func() (bool, string) {
		ok, at := s.Synced()
		up, err := s.Connected()
		return ok && !at.Before(since), fmt.Sprintf("synced=%v at %v, connected=%v (%v), sync error %v", ok, at, up, err, s.SyncError())
	})
}

// picture is a state's devices (id → firmware version, presence) and
// notice topics, to compare with what the broker holds.
func picture(st *State) (map[string]string, []string) {
	devs := map[string]string{}
	st.Each(func(d *Device) { devs[d.ID] = fmt.Sprintf("%s/%v", d.FirmwareVersion, d.Online) })
	return devs, slices.Sorted(maps.Keys(st.Notices()))
}

func wantPicture(t testing.TB, s *Session, devices map[string]string, notices []string) {
	t.Helper()
	waitFor(t, 10*time.Second, "the state to equal the broker's retained set", func() (bool, string) {
		gotDevs, gotNotices := picture(s.State())
		ok := maps.Equal(gotDevs, devices) && slices.Equal(gotNotices, notices)
		return ok, fmt.Sprintf("%d devices (want %d), notices %v (want %v)", len(gotDevs), len(devices), gotNotices, notices)
	})
}

func online(prefix string, n int, version string) map[string]string {
	out := map[string]string{}
	for i := range n {
		out[fmt.Sprintf("%s-%04d", prefix, i)] = version + "/true"
	}
	return out
}

// TestResyncAfterBrokerRestart: after the broker is killed and started
// again the session rebuilds its state from scratch, so it equals what
// the broker holds afterwards. Herald reaches the broker through a proxy
// held shut while the test changes the broker's retained set, so nothing
// reaches the session live: with persistence, a notice withdrawn and a
// device removed while Herald was away must be gone and a device added
// must be there; without persistence, only what devices published again.
func TestResyncAfterBrokerRestart(t *testing.T) {
	for _, persistent := range []bool{true, false} {
		t.Run(fmt.Sprintf("persistence=%v", persistent), func(t *testing.T) {
			b := testenv.StartBroker(t, testenv.BrokerOptions{Persistence: persistent})
			p := testenv.StartProxy(t, b.Addr)
			root := fmt.Sprintf("restart/%v", persistent)
			f := newTestFleet(t, b.URL(), root)
			f.retain(f.devices("dev", 20, "1.0.0")...)
			f.retain(f.notice("uid-1", 3), f.notice("uid-1", 7))
			s := startTestSession(t, p.URL(), root, nil)
			waitSynced(t, s, time.Time{}, 20*time.Second)
			wantPicture(t, s, online("dev", 20, "1.0.0"), []string{f.topics.GroupNotice("sensor", 3), f.topics.GroupNotice("sensor", 7)})

			p.Blackhole()
			if err := b.Kill(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 10*time.Second, "the session to see the broker gone", func() (bool, string) {
				up, _ := s.Connected()
				synced, _ := s.Synced()
				return !up && !synced, fmt.Sprintf("connected=%v synced=%v", up, synced)
			})
			if err := b.Start(); err != nil {
				t.Fatal(err)
			}
			// What changed while Herald was away: one notice withdrawn,
			// one device gone, one new; the publisher reconnects by itself.
			want := map[string]string{}
			var notices []string
			if persistent {
				f.retain(mqtt.Message{Topic: f.topics.GroupNotice("sensor", 7)})
				f.retain(mqtt.Message{Topic: f.topics.Presence("dev-0000")}, mqtt.Message{Topic: f.topics.Inventory("dev-0000")})
				want = online("dev", 20, "1.0.0")
				delete(want, "dev-0000")
				notices = []string{f.topics.GroupNotice("sensor", 3)}
			}
			f.retain(f.device("new-0000", "1.1.0")...)
			want["new-0000"] = "1.1.0/true"
			if got, _ := picture(s.State()); maps.Equal(got, want) {
				t.Fatal("the state changed while the session was disconnected")
			}
			healed := time.Now()
			p.CutAll()
			p.Restore()
			waitSynced(t, s, healed, 30*time.Second)
			devs, gotNotices := picture(s.State())
			if !maps.Equal(devs, want) || !slices.Equal(gotNotices, notices) {
				t.Fatalf("after the rebuild: devices %v, notices %v; want %v, %v", devs, gotNotices, want, notices)
			}
		})
	}
}

// TestResyncAfterClientIDTakeover: another client connecting with the
// session's client ID knocks it off; the session reconnects and rebuilds.
func TestResyncAfterClientIDTakeover(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	root := "takeover"
	f := newTestFleet(t, b.URL(), root)
	f.retain(f.devices("dev", 10, "1.0.0")...)
	s := startTestSession(t, b.URL(), root, nil)
	waitSynced(t, s, time.Time{}, 20*time.Second)

	lostBefore := s.client.Stats().ConnectionsLost
	rogue := f.dial(s.ClientID())
	waitFor(t, 10*time.Second, "the session to lose its connection", func() (bool, string) {
		n := s.client.Stats().ConnectionsLost
		return n > lostBefore, fmt.Sprintf("connections lost %d", n)
	})
	if err := rogue.Disconnect(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The device set changed meanwhile; the rebuilt state has it.
	f.retain(f.device("dev-0010", "1.0.0")...)
	waitSynced(t, s, time.Now(), 30*time.Second)
	wantPicture(t, s, online("dev", 11, "1.0.0"), nil)
}

// TestResyncAfterBlackhole: a link that silently stops carrying traffic is
// declared dead by keepalive; after it heals the session rebuilds, and a
// retained notice withdrawn during the outage is gone from the state.
func TestResyncAfterBlackhole(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	p := testenv.StartProxy(t, b.Addr)
	root := "blackhole"
	f := newTestFleet(t, b.URL(), root)
	f.retain(f.devices("dev", 10, "1.0.0")...)
	f.retain(f.notice("uid-1", 1))
	s := startTestSession(t, p.URL(), root, func(s *Session) { s.cfg.KeepAlive = time.Second })
	waitSynced(t, s, time.Time{}, 20*time.Second)
	wantPicture(t, s, online("dev", 10, "1.0.0"), []string{f.topics.GroupNotice("sensor", 1)})

	p.Blackhole()
	waitFor(t, 20*time.Second, "keepalive to declare the link dead", func() (bool, string) {
		up, err := s.Connected()
		return !up, fmt.Sprintf("connected=%v err=%v", up, err)
	})
	f.retain(mqtt.Message{Topic: f.topics.GroupNotice("sensor", 1)})
	f.retain(f.device("dev-0003", "1.1.0")...)
	healed := time.Now()
	p.CutAll()
	p.Restore()
	waitSynced(t, s, healed, 30*time.Second)
	want := online("dev", 10, "1.0.0")
	want["dev-0003"] = "1.1.0/true"
	if devs, notices := picture(s.State()); !maps.Equal(devs, want) || len(notices) != 0 {
		t.Fatalf("after the rebuild: devices %v, notices %v; want %v and none", devs, notices, want)
	}
}

// TestCutShortReplayIsNotSynced: a broker whose queue for Herald is too
// small for the retained replay drops part of it; the session must not
// call that synced, and must say which setting to change.
func TestCutShortReplayIsNotSynced(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{Config: []string{"max_queued_messages 100"}})
	root := "cutshort"
	f := newTestFleet(t, b.URL(), root)
	const devices = 2600 // 5,200 retained messages: beyond the 4,096 window plus 100 queued
	f.retain(f.devices("dev", devices, "1.0.0")...)
	s := startTestSession(t, b.URL(), root, nil)
	waitFor(t, 60*time.Second, "a ReplayIncomplete sync error", func() (bool, string) {
		se := s.SyncError()
		return se != nil && se.Reason == ReasonReplayIncomplete && strings.Contains(se.Message, "max_queued_messages"), fmt.Sprintf("%+v", se)
	})
	if ok, _ := s.Synced(); ok {
		t.Fatalf("a cut-short replay counts as synced: %d devices known", s.Summarize().Tracked)
	}
}

// TestLargeReplayWithUnboundedQueue: with the documented broker setting a
// replay far beyond the session's window completes, exactly.
func TestLargeReplayWithUnboundedQueue(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{Config: []string{"max_queued_messages 0"}})
	root := "large"
	f := newTestFleet(t, b.URL(), root)
	const devices = 5000
	f.retain(f.devices("dev", devices, "1.0.0")...)
	s := startTestSession(t, b.URL(), root, nil)
	waitSynced(t, s, time.Time{}, 60*time.Second)
	if got := s.Summarize(); got.Known != devices || got.Online != devices {
		t.Fatalf("synced with %d known, %d online devices, want %d", got.Known, got.Online, devices)
	}
}

// statuses returns, for each device, the statuses of a successful update
// of rollout uid, in the order a device publishes them.
func (f *testFleet) statuses(prefix string, n int, uid string) []mqtt.Message {
	f.t.Helper()
	var out []mqtt.Message
	for i := range n {
		id := fmt.Sprintf("%s-%04d", prefix, i)
		for _, st := range []protocol.State{protocol.StateAccepted, protocol.StateDownloading, protocol.StateInstalling, protocol.StateSucceeded} {
			b, err := protocol.MarshalStatus(&protocol.Status{RolloutUID: uid, Rollout: "ns/r", TargetVersion: "2.0.0", State: st})
			if err != nil {
				f.t.Fatal(err)
			}
			out = append(out, mqtt.Message{Topic: f.topics.Status(id), Payload: b})
		}
	}
	return out
}

// retainInOrder publishes msgs one after the other, as one device would.
func (f *testFleet) retainInOrder(msgs []mqtt.Message) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := range msgs {
		m := msgs[i]
		m.QoS, m.Retain = mqtt.AtLeastOnce, true
		if err := f.pub.Publish(ctx, &m); err != nil {
			f.t.Fatal(err)
		}
	}
}

// TestSlowOperatorLosesNoAcknowledgement: the operator's handler stops
// while a fleet reports 6,400 statuses, more than the session's window
// (4,096) and mosquitto's default queue (1,000) together hold. With the documented
// broker setting nothing is lost; with mosquitto's default queue the
// broker drops the overflow, and the session, having seen its window
// fill, re-syncs once the stream drains and repairs every record. Either
// way every device's last status ends up in the state.
func TestSlowOperatorLosesNoAcknowledgement(t *testing.T) {
	for _, tc := range []struct {
		name   string
		config []string
		// wantRepairs: the broker drops messages, which must come back.
		wantRepairs bool
	}{
		{"unbounded broker queue", []string{"max_queued_messages 0"}, false},
		{"default broker queue", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := testenv.StartBroker(t, testenv.BrokerOptions{Config: tc.config})
			root := "slow/" + strings.ReplaceAll(tc.name, " ", "-")
			f := newTestFleet(t, b.URL(), root)
			// 1,600 devices replay as 4,800 messages, within the window and
			// mosquitto's default queue; their 6,400 statuses are not.
			const devices = 1600
			f.retain(f.devices("dev", devices, "1.0.0")...)
			gate := make(chan struct{})
			var stopped atomic.Bool
			s := startTestSession(t, b.URL(), root, func(s *Session) {
				s.cfg.KeepAlive = 30 * time.Second
				s.resyncSpacing = 0
				s.throttle = func() {
					if stopped.Load() {
						<-gate
					}
				}
			})
			waitSynced(t, s, time.Time{}, 30*time.Second)
			stopped.Store(true)
			f.retainInOrder(f.statuses("dev", devices, "uid-1"))
			stopped.Store(false)
			close(gate)

			waitFor(t, 60*time.Second, "every device's last status in the state", func() (bool, string) {
				succeeded := 0
				s.State().Each(func(d *Device) {
					if d.Status.State == protocol.StateSucceeded {
						succeeded++
					}
				})
				st := s.client.Stats()
				synced, _ := s.Synced()
				return succeeded == devices, fmt.Sprintf("%d of %d succeeded, %d repairs, window overrun %v, synced %v, queued %d, publishes received %d, lost %d, sync error %v",
					succeeded, devices, s.Repairs(), s.overrun.Load(), synced, st.Queued, st.Received[3].Packets, st.ConnectionsLost, s.SyncError())
			})
			// What the broker dropped came back either through the
			// verifying re-sync or, when the broker overshot the window so
			// far that the client closed the connection (mosquitto does
			// under load), through the rebuild after the reconnect.
			repaired, reconnected := s.Repairs(), s.client.Stats().ConnectionsLost
			if recovered := repaired > 0 || reconnected > 0; recovered != tc.wantRepairs {
				t.Fatalf("%d records repaired, %d reconnects; want a recovery: %v; broker log:\n%s", repaired, reconnected, tc.wantRepairs, b.Log())
			}
			t.Logf("%d statuses through a stopped handler: %d records repaired by a re-sync, %d reconnects", 4*devices, repaired, reconnected)
		})
	}
}

// TestPeriodicResyncRepairsLostMessages: a message the live stream never
// delivered (dropped here on purpose, as a broker under load would) is
// repaired by the next periodic rebuild, which counts it.
func TestPeriodicResyncRepairsLostMessages(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	root := "repair"
	f := newTestFleet(t, b.URL(), root)
	f.retain(f.devices("dev", 5, "1.0.0")...)
	lost := f.topics.Inventory("dev-0002")
	var armed atomic.Bool
	var dropped atomic.Int32
	s := startTestSession(t, b.URL(), root, func(s *Session) {
		s.cfg.ResyncInterval = 500 * time.Millisecond
		s.dropLive = func(topic string) bool {
			return armed.Load() && topic == lost && dropped.CompareAndSwap(0, 1)
		}
	})
	waitSynced(t, s, time.Time{}, 20*time.Second)
	armed.Store(true)
	f.retain(f.device("dev-0002", "1.1.0")...)
	want := online("dev", 5, "1.0.0")
	want["dev-0002"] = "1.1.0/true"
	wantPicture(t, s, want, nil)
	if dropped.Load() != 1 || s.Repairs() < 1 {
		t.Fatalf("dropped %d live messages, %d repairs; want 1 and at least 1", dropped.Load(), s.Repairs())
	}
}

// TestSyncUnderMQTT311: the markers work without MQTT 5 (no Receive
// Maximum: mosquitto's own window, 20, and its queue hold the replay).
func TestSyncUnderMQTT311(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{})
	root := "v311"
	f := newTestFleet(t, b.URL(), root)
	f.retain(f.devices("dev", 200, "1.0.0")...)
	s := startTestSession(t, b.URL(), root, func(s *Session) { s.cfg.Version = mqtt.V311 })
	waitSynced(t, s, time.Time{}, 20*time.Second)
	if devs, _ := picture(s.State()); !maps.Equal(devs, online("dev", 200, "1.0.0")) {
		t.Fatalf("synced with %d devices, want 200", len(devs))
	}
}
