package protocol

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxRootLength bounds a topic root, in characters, as the DeviceFleet API
// does.
const MaxRootLength = 200

// TopicKind is what a per-device topic carries.
type TopicKind uint8

// The per-device topics, R/devices/{deviceID}/{kind}.
const (
	// TopicPresence carries Presence, published by the device (and its Will).
	TopicPresence TopicKind = iota + 1
	// TopicInventory carries Inventory, published by the device.
	TopicInventory
	// TopicStatus carries Status, published by the device.
	TopicStatus
	// TopicNotice carries per-device Notices, published by the operator.
	TopicNotice
)

// topicKinds are the last levels of the per-device topics, by kind.
var topicKinds = [...]string{
	TopicPresence:  "presence",
	TopicInventory: "inventory",
	TopicStatus:    "status",
	TopicNotice:    "notice",
}

// String returns the kind's topic level, such as "presence".
func (k TopicKind) String() string {
	if k == 0 || int(k) >= len(topicKinds) {
		return fmt.Sprintf("TopicKind(%d)", k)
	}
	return topicKinds[k]
}

// Topics names every topic of one fleet. Build it with NewTopics; the zero
// value names nothing useful.
//
// The builders do not validate their arguments, so that they cost one
// string concatenation on hot paths: pass device IDs and models that passed
// ValidSegment (everything ParseDeviceTopic and ParseInventory return has).
type Topics struct {
	root    string
	devices string // root + "/devices/"
	notices string // root + "/notices/"
}

// NewTopics checks a fleet's topic root and returns its topics. A root is a
// topic name prefix such as "factory-7/sensors": 1 to 200 characters of
// UTF-8 without the wildcards '+' and '#', without a leading or trailing
// '/' or an empty level ("//"), not starting with '$' (the broker's own
// topics, which wildcards never match [MQTT-4.7.2-1]) and without control
// characters, which MQTT says strings should not contain (MQTT 5.0 §1.5.4).
func NewTopics(root string) (Topics, error) {
	if err := validRoot(root); err != nil {
		return Topics{}, err
	}
	return Topics{root: root, devices: root + "/devices/", notices: root + "/notices/"}, nil
}

func validRoot(root string) error {
	switch {
	case root == "":
		return fmt.Errorf("topic root is empty")
	case !utf8.ValidString(root):
		return fmt.Errorf("topic root %s is not UTF-8", quote(root))
	case utf8.RuneCountInString(root) > MaxRootLength:
		return fmt.Errorf("topic root %s is longer than %d characters", quote(root), MaxRootLength)
	case strings.ContainsAny(root, "+#"):
		return fmt.Errorf("topic root %s contains an MQTT wildcard ('+' or '#')", quote(root))
	case root[0] == '$':
		return fmt.Errorf("topic root %s starts with '$', which brokers reserve for themselves", quote(root))
	case root[0] == '/' || root[len(root)-1] == '/' || strings.Contains(root, "//"):
		return fmt.Errorf("topic root %s has an empty level: no leading, trailing or double '/'", quote(root))
	}
	for _, r := range root {
		if r < 0x20 || (0x7f <= r && r <= 0x9f) {
			return fmt.Errorf("topic root %s contains the control character U+%04X", quote(root), r)
		}
	}
	return nil
}

// Root returns the topic root the Topics were built from.
func (t Topics) Root() string { return t.root }

func (t Topics) device(deviceID string, k TopicKind) string {
	return t.devices + deviceID + "/" + topicKinds[k]
}

// Presence is R/devices/{deviceID}/presence: retained Presence, and the
// device's Will.
func (t Topics) Presence(deviceID string) string { return t.device(deviceID, TopicPresence) }

// Inventory is R/devices/{deviceID}/inventory: retained Inventory.
func (t Topics) Inventory(deviceID string) string { return t.device(deviceID, TopicInventory) }

// Status is R/devices/{deviceID}/status: the device's retained Status.
func (t Topics) Status(deviceID string) string { return t.device(deviceID, TopicStatus) }

// DeviceNotice is R/devices/{deviceID}/notice: retained Notices for this
// device alone.
func (t Topics) DeviceNotice(deviceID string) string { return t.device(deviceID, TopicNotice) }

// GroupNotice is R/notices/{model}/{cohort}: the retained Notice for every
// device of a model in a cohort. It panics if cohort is not 0 to 99.
func (t Topics) GroupNotice(model string, cohort int) string {
	return t.notices + model + "/" + CohortSegment(cohort)
}

// Subscriptions are the two topics a device subscribes to, both at QoS 1:
// its group notice topic and its own notice topic.
func (t Topics) Subscriptions(deviceID, model string) []string {
	return []string{t.GroupNotice(model, Cohort(deviceID)), t.DeviceNotice(deviceID)}
}

// AllPresence is the filter R/devices/+/presence. The operator subscribes
// to each device topic kind separately, not to R/devices/#, so that it does
// not receive the per-device notices it publishes itself.
func (t Topics) AllPresence() string { return t.devices + "+/presence" }

// AllInventory is the filter R/devices/+/inventory.
func (t Topics) AllInventory() string { return t.devices + "+/inventory" }

// AllStatus is the filter R/devices/+/status.
func (t Topics) AllStatus() string { return t.devices + "+/status" }

// AllDeviceNotices is the filter R/devices/+/notice: the operator reads
// back the per-device notices retained on the broker, so that it can keep
// no state of its own.
func (t Topics) AllDeviceNotices() string { return t.devices + "+/notice" }

// AllGroupNotices is the filter R/notices/+/+, for the same reason.
func (t Topics) AllGroupNotices() string { return t.notices + "+/+" }

// ParseDeviceTopic splits a per-device topic R/devices/{deviceID}/{kind}.
// Errors wrap ErrTopic when the topic is not one of the four per-device
// topics under this root, and ErrInvalidSegment when the device ID is not
// valid (see ValidSegment); both wrap ErrMalformed.
func (t Topics) ParseDeviceTopic(topic string) (deviceID string, kind TopicKind, err error) {
	rest, ok := strings.CutPrefix(topic, t.devices)
	if !ok || t.devices == "" {
		return "", 0, fmt.Errorf("%w: %s is not under %s", ErrTopic, quote(topic), quote(t.devices))
	}
	id, level, ok := strings.Cut(rest, "/")
	if !ok {
		return "", 0, fmt.Errorf("%w: %s has no kind level after the device ID", ErrTopic, quote(topic))
	}
	for k := TopicPresence; k <= TopicNotice; k++ {
		if level == topicKinds[k] {
			kind = k
		}
	}
	if kind == 0 {
		return "", 0, fmt.Errorf("%w: %s does not end in /presence, /inventory, /status or /notice", ErrTopic, quote(topic))
	}
	if err := ValidSegment(id); err != nil {
		return "", 0, fmt.Errorf("device ID in topic %s: %w", quote(topic), err)
	}
	return id, kind, nil
}

// ParseGroupNoticeTopic splits a group notice topic R/notices/{model}/{cohort}.
// ok reports whether topic is under R/notices/ at all; when it is, err says
// whether the rest is a valid model and cohort (wrapping ErrTopic or
// ErrInvalidSegment, and so ErrMalformed).
func (t Topics) ParseGroupNoticeTopic(topic string) (model string, cohort int, ok bool, err error) {
	rest, ok := strings.CutPrefix(topic, t.notices)
	if !ok || t.notices == "" {
		return "", 0, false, nil
	}
	model, level, found := strings.Cut(rest, "/")
	if !found {
		return "", 0, true, fmt.Errorf("%w: %s has no cohort level after the model", ErrTopic, quote(topic))
	}
	if err := ValidSegment(model); err != nil {
		return "", 0, true, fmt.Errorf("model in topic %s: %w", quote(topic), err)
	}
	cohort, err = ParseCohortSegment(level)
	if err != nil {
		return "", 0, true, fmt.Errorf("topic %s: %w", quote(topic), err)
	}
	return model, cohort, true, nil
}
