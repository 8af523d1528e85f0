package protocol

import (
	"errors"
	"strings"
	"testing"
)

func mustTopics(t *testing.T, root string) Topics {
	t.Helper()
	tp, err := NewTopics(root)
	if err != nil {
		t.Fatal(err)
	}
	return tp
}

func TestTopicsBuild(t *testing.T) {
	tp := mustTopics(t, "factory-7/sensors")
	for _, tc := range []struct{ got, want string }{
		{tp.Root(), "factory-7/sensors"},
		{tp.Presence("sensor-0042"), "factory-7/sensors/devices/sensor-0042/presence"},
		{tp.Inventory("sensor-0042"), "factory-7/sensors/devices/sensor-0042/inventory"},
		{tp.Status("sensor-0042"), "factory-7/sensors/devices/sensor-0042/status"},
		{tp.DeviceNotice("sensor-0042"), "factory-7/sensors/devices/sensor-0042/notice"},
		{tp.GroupNotice("th-sensor", 4), "factory-7/sensors/notices/th-sensor/04"},
		{tp.GroupNotice("th-sensor", 0), "factory-7/sensors/notices/th-sensor/00"},
		{tp.GroupNotice("th-sensor", 99), "factory-7/sensors/notices/th-sensor/99"},
		{tp.AllPresence(), "factory-7/sensors/devices/+/presence"},
		{tp.AllInventory(), "factory-7/sensors/devices/+/inventory"},
		{tp.AllStatus(), "factory-7/sensors/devices/+/status"},
		{tp.AllDeviceNotices(), "factory-7/sensors/devices/+/notice"},
		{tp.AllGroupNotices(), "factory-7/sensors/notices/+/+"},
		{strings.Join(tp.Subscriptions("sensor-0042", "th-sensor"), " "),
			"factory-7/sensors/notices/th-sensor/04 factory-7/sensors/devices/sensor-0042/notice"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestNewTopicsRoot(t *testing.T) {
	for _, tc := range []struct {
		root string
		ok   bool
	}{
		{"factory-7/sensors", true},
		{"a", true},
		{"fleet with spaces/ü", true},
		{strings.Repeat("é", MaxRootLength), true},
		{strings.Repeat("é", MaxRootLength+1), false},
		{"", false},
		{"/factory", false},
		{"factory/", false},
		{"factory//sensors", false},
		{"factory/+/sensors", false},
		{"factory/#", false},
		{"$SYS/fleet", false},
		{"factory\x00", false},
		{"factory\nsensors", false},
		{"factory\u0085", false},
		{"factory\xff", false},
	} {
		_, err := NewTopics(tc.root)
		if (err == nil) != tc.ok {
			t.Errorf("NewTopics(%q): error %v, want ok=%v", tc.root, err, tc.ok)
		}
	}
}

func TestParseDeviceTopic(t *testing.T) {
	tp := mustTopics(t, "factory-7/sensors")
	for _, tc := range []struct {
		topic string
		id    string
		kind  TopicKind
		err   error
	}{
		{"factory-7/sensors/devices/sensor-0042/presence", "sensor-0042", TopicPresence, nil},
		{"factory-7/sensors/devices/sensor-0042/inventory", "sensor-0042", TopicInventory, nil},
		{"factory-7/sensors/devices/sensor-0042/status", "sensor-0042", TopicStatus, nil},
		{"factory-7/sensors/devices/sensor-0042/notice", "sensor-0042", TopicNotice, nil},
		{"factory-7/sensors/devices/A.b_c-9/status", "A.b_c-9", TopicStatus, nil},
		{"factory-7/sensors/devices/" + strings.Repeat("d", 64) + "/status", strings.Repeat("d", 64), TopicStatus, nil},
		{"factory-7/sensors/devices/" + strings.Repeat("d", 65) + "/status", "", 0, ErrInvalidSegment},
		{"factory-7/sensors/devices//status", "", 0, ErrInvalidSegment},
		{"factory-7/sensors/devices/+/status", "", 0, ErrInvalidSegment},
		{"factory-7/sensors/devices/#/status", "", 0, ErrInvalidSegment},
		{"factory-7/sensors/devices/.hidden/status", "", 0, ErrInvalidSegment},
		{"factory-7/sensors/devices/bell\x07/status", "", 0, ErrInvalidSegment},
		{"factory-7/sensors/devices/caf\u00e9/status", "", 0, ErrInvalidSegment},
		{"factory-7/sensors/devices/a b/status", "", 0, ErrInvalidSegment},
		{"factory-7/sensors/devices/a/b/status", "", 0, ErrTopic},
		{"factory-7/sensors/devices/sensor-0042/firmware", "", 0, ErrTopic},
		{"factory-7/sensors/devices/sensor-0042/status/", "", 0, ErrTopic},
		{"factory-7/sensors/devices/sensor-0042", "", 0, ErrTopic},
		{"factory-7/sensors/devices/sensor-0042/Status", "", 0, ErrTopic},
		{"factory-7/sensors/notices/th-sensor/04", "", 0, ErrTopic},
		{"factory-7/other/devices/sensor-0042/status", "", 0, ErrTopic},
		{"factory-7/sensorsX/devices/sensor-0042/status", "", 0, ErrTopic},
		{"", "", 0, ErrTopic},
	} {
		id, kind, err := tp.ParseDeviceTopic(tc.topic)
		if id != tc.id || kind != tc.kind || !errors.Is(err, tc.err) || (tc.err != nil && !errors.Is(err, ErrMalformed)) {
			t.Errorf("ParseDeviceTopic(%q) = %q, %v, %v; want %q, %v, %v", tc.topic, id, kind, err, tc.id, tc.kind, tc.err)
		}
		if tc.err == nil {
			if back := tp.device(id, kind); back != tc.topic {
				t.Errorf("topic %q rebuilt as %q", tc.topic, back)
			}
		}
	}
}

func TestParseGroupNoticeTopic(t *testing.T) {
	tp := mustTopics(t, "factory-7/sensors")
	for _, tc := range []struct {
		topic  string
		model  string
		cohort int
		ok     bool
		err    error
	}{
		{"factory-7/sensors/notices/th-sensor/04", "th-sensor", 4, true, nil},
		{"factory-7/sensors/notices/th-sensor/99", "th-sensor", 99, true, nil},
		{"factory-7/sensors/notices/th-sensor/4", "", 0, true, ErrTopic},
		{"factory-7/sensors/notices/th-sensor/100", "", 0, true, ErrTopic},
		{"factory-7/sensors/notices/th-sensor/04/x", "", 0, true, ErrTopic},
		{"factory-7/sensors/notices/th-sensor", "", 0, true, ErrTopic},
		{"factory-7/sensors/notices/+/04", "", 0, true, ErrInvalidSegment},
		{"factory-7/sensors/notices//04", "", 0, true, ErrInvalidSegment},
		{"factory-7/sensors/devices/sensor-0042/notice", "", 0, false, nil},
		{"elsewhere/notices/th-sensor/04", "", 0, false, nil},
	} {
		model, cohort, ok, err := tp.ParseGroupNoticeTopic(tc.topic)
		if model != tc.model || cohort != tc.cohort || ok != tc.ok || !errors.Is(err, tc.err) {
			t.Errorf("ParseGroupNoticeTopic(%q) = %q, %d, %v, %v; want %q, %d, %v, %v",
				tc.topic, model, cohort, ok, err, tc.model, tc.cohort, tc.ok, tc.err)
		}
		if tc.ok && tc.err == nil {
			if back := tp.GroupNotice(model, cohort); back != tc.topic {
				t.Errorf("topic %q rebuilt as %q", tc.topic, back)
			}
		}
	}
}

// The zero Topics matches nothing rather than everything.
func TestZeroTopics(t *testing.T) {
	var tp Topics
	if _, _, err := tp.ParseDeviceTopic("devices/a/status"); !errors.Is(err, ErrTopic) {
		t.Errorf("zero Topics parsed a device topic: %v", err)
	}
	if _, _, ok, _ := tp.ParseGroupNoticeTopic("notices/m/01"); ok {
		t.Error("zero Topics parsed a group notice topic")
	}
}

func TestTopicKindString(t *testing.T) {
	for k, want := range map[TopicKind]string{TopicPresence: "presence", TopicInventory: "inventory",
		TopicStatus: "status", TopicNotice: "notice", 0: "TopicKind(0)", 9: "TopicKind(9)"} {
		if got := k.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", k, got, want)
		}
	}
}
