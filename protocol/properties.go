package protocol

import "time"

// MQTT settings the protocol fixes or recommends; docs/protocol.md explains
// each.
const (
	// QoS is the quality of service of every publish and subscription of
	// the protocol: at least once. Every message is idempotent (retained
	// state, or a notice identified by rollout UID and issue time), so
	// duplicates are harmless and QoS 2's extra round trip buys nothing.
	QoS = 1

	// Content types the operator sets on MQTT 5 publishes, and devices may
	// set on theirs. The payload, not the property, is authoritative: MQTT
	// 3.1.1 has no properties and bridges may drop them.
	NoticeContentType    = "application/vnd.herald.notice+json;v=1"
	PresenceContentType  = "application/vnd.herald.presence+json;v=1"
	InventoryContentType = "application/vnd.herald.inventory+json;v=1"
	StatusContentType    = "application/vnd.herald.status+json;v=1"

	// User properties of MQTT 5 notices, so that gateways and brokers can
	// route or log notices without parsing JSON. Devices must not rely on
	// them either.
	UserPropertyRolloutUID    = "herald-rollout-uid"
	UserPropertyTargetVersion = "herald-target-version"

	// WillDelay is the MQTT 5 Will Delay Interval devices should set: a
	// device that reconnects within it, resuming its session, never
	// appears offline [MQTT-3.1.3-9].
	WillDelay = 30 * time.Second
	// SessionExpiry is the MQTT 5 Session Expiry Interval devices should
	// set. It must be at least WillDelay, because the broker publishes the
	// Will when the delay passes or the session ends, whichever is first
	// (MQTT 5.0 §3.1.3.2.2); a day also keeps a cancel notice queued for a
	// device that is offline when it is sent.
	SessionExpiry = 24 * time.Hour
)
