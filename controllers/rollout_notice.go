package controllers

import (
	"time"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/internal/rollout"
	"github.com/heraldiot/herald/mqtt"
	"github.com/heraldiot/herald/protocol"
)

func rolloutRef(ro *v1.FirmwareRollout) protocol.RolloutRef {
	return protocol.RolloutRef{Namespace: ro.Namespace, Name: ro.Name, UID: string(ro.UID)}
}

// noticeMessage is the retained update notice of a rollout, for the given
// attempt (1, or a retry's). Its issue time is the rollout's creation
// time, so republishing it yields the same bytes and devices order
// competing notices by it.
func noticeMessage(ro *v1.FirmwareRollout, version mqtt.Version, attempt int) (*mqtt.Message, error) {
	fw := &ro.Spec.Firmware
	n := protocol.Notice{
		Action:          protocol.ActionUpdate,
		Rollout:         rolloutRef(ro),
		TargetVersion:   fw.Version,
		Models:          fw.Models,
		SHA256:          fw.SHA256,
		Size:            fw.Size,
		Signature:       fw.Signature,
		ReleaseNotesURL: fw.ReleaseNotesURL,
		IssuedAt:        ro.CreationTimestamp.UTC(),
		Attempt:         attempt,
	}
	n.MaintenanceWindows = rollout.NoticeWindows(ro)
	if ro.Spec.Selector != nil {
		n.CurrentVersion = ro.Spec.Selector.CurrentVersion
	}
	for _, u := range append([]string{fw.URL}, fw.Mirrors...) {
		n.Artifacts = append(n.Artifacts, protocol.Artifact{URL: u})
	}
	payload, err := protocol.MarshalNotice(&n)
	if err != nil {
		return nil, err
	}
	m := &mqtt.Message{Payload: payload, Retain: true, QoS: mqtt.AtLeastOnce}
	if version == mqtt.V5 {
		m.PayloadUTF8 = true
		m.Expiry = rollout.NoticeExpiry
		m.ContentType = protocol.NoticeContentType
		m.UserProperties = []mqtt.UserProperty{
			{Key: protocol.UserPropertyRolloutUID, Value: string(ro.UID)},
			{Key: protocol.UserPropertyTargetVersion, Value: fw.Version},
		}
	}
	return m, nil
}

// cancelMessage tells devices listening now that the rollout is withdrawn;
// the retained notice is cleared right after it. The caller sets the topic.
func cancelMessage(ro *v1.FirmwareRollout, now time.Time) (*mqtt.Message, error) {
	payload, err := protocol.MarshalNotice(&protocol.Notice{
		Action: protocol.ActionCancel, Rollout: rolloutRef(ro), IssuedAt: now.UTC().Truncate(time.Second),
	})
	if err != nil {
		return nil, err
	}
	return &mqtt.Message{Payload: payload, QoS: mqtt.AtLeastOnce}, nil
}

// withdrawMessage clears a retained notice: an empty retained message.
func withdrawMessage(topic string) mqtt.Message {
	return mqtt.Message{Topic: topic, Retain: true, QoS: mqtt.AtLeastOnce}
}
