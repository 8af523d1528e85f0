package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ProtocolVersion is the MQTT protocol level spoken with a broker.
// +kubebuilder:validation:Enum="3.1.1";"5"
type ProtocolVersion string

const (
	// ProtocolV311 is MQTT 3.1.1 (protocol level 4).
	ProtocolV311 ProtocolVersion = "3.1.1"
	// ProtocolV5 is MQTT 5.0 (protocol level 5).
	ProtocolV5 ProtocolVersion = "5"
)

// DeviceFleetSpec names the broker a fleet's devices use and where under its
// topic tree they report.
type DeviceFleetSpec struct {
	// Broker is how Herald connects to the fleet's MQTT broker.
	// +required
	Broker BrokerSpec `json:"broker"`

	// TopicRoot is the topic prefix under which every device of the fleet
	// publishes its presence and inventory and receives notices, for example
	// "factory-7/sensors". See docs/protocol.md for the hierarchy below it.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=200
	// +kubebuilder:validation:XValidation:rule="!self.contains('+') && !self.contains('#')",message="topicRoot must not contain the MQTT wildcards '+' or '#'"
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('/') && !self.endsWith('/') && !self.contains('//')",message="topicRoot must not start or end with '/' or contain empty levels ('//')"
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('$')",message="topicRoot must not start with '$': such topics are reserved for the broker"
	// +kubebuilder:validation:XValidation:rule="!self.matches('[[:cntrl:]]')",message="topicRoot must not contain control characters"
	TopicRoot string `json:"topicRoot"`

	// OfflineGracePeriod is how long a device may be offline before Herald
	// stops counting it as reachable for new waves.
	// +optional
	// +kubebuilder:default="60s"
	OfflineGracePeriod *metav1.Duration `json:"offlineGracePeriod,omitempty"`

	// MaxDevices caps how many devices Herald tracks for this fleet, which
	// bounds the operator's memory whatever publishes under the topic root.
	// Messages about further devices are ignored and counted, and the
	// DeviceLimitReached condition turns True. About 250 bytes per device.
	// +optional
	// +kubebuilder:default=250000
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000000
	MaxDevices *int32 `json:"maxDevices,omitempty"`

	// ResyncInterval is how often Herald rebuilds the fleet's state from
	// the broker's retained messages while connected, repairing anything
	// the live stream lost (the broker dropping messages under load). It
	// always rebuilds after a (re)connect. "0s" turns the periodic rebuild off.
	// +optional
	// +kubebuilder:default="10m"
	// +kubebuilder:validation:XValidation:rule="duration(self) == duration('0s') || duration(self) >= duration('1m')",message="resyncInterval must be 0s (off) or at least 1m: each rebuild replays every retained message of the fleet"
	ResyncInterval *metav1.Duration `json:"resyncInterval,omitempty"`
}

// BrokerSpec is an MQTT broker endpoint and the session Herald keeps with it.
type BrokerSpec struct {
	// URLs of the broker, tried in order on every (re)connect. Schemes:
	// tcp:// or mqtt:// (plain), tls://, ssl:// or mqtts:// (TLS).
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="self.all(u, u.matches('^(tcp|mqtt|tls|ssl|mqtts)://[^/?#]+$'))",message="each broker URL must look like tcp://host:port or tls://host:port (schemes: tcp, mqtt, tls, ssl, mqtts), with no path"
	URLs []string `json:"urls"`

	// ProtocolVersion is the MQTT version to speak: "5" (default) or "3.1.1".
	// +optional
	// +kubebuilder:default="5"
	ProtocolVersion ProtocolVersion `json:"protocolVersion,omitempty"`

	// ClientID is the MQTT client identifier. Defaults to
	// "herald-<namespace>-<name>-<hash>", unique per fleet. Two fleets that
	// set the same ID on the same broker would knock each other off, so
	// the newer one is refused (ClientIDConflict).
	// +optional
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[0-9A-Za-z._-]*$`
	ClientID string `json:"clientID,omitempty"`

	// KeepAlive is the MQTT keepalive interval.
	// +optional
	// +kubebuilder:default="30s"
	KeepAlive *metav1.Duration `json:"keepAlive,omitempty"`

	// CredentialsSecretRef names a Secret in the fleet's namespace with the
	// keys "username" and "password".
	// +optional
	CredentialsSecretRef *corev1.LocalObjectReference `json:"credentialsSecretRef,omitempty"`

	// TLS configures a tls://, ssl:// or mqtts:// connection.
	// +optional
	TLS *BrokerTLS `json:"tls,omitempty"`
}

// BrokerTLS is the TLS configuration of a broker connection. The server's
// certificate is always verified unless InsecureSkipVerify is set.
// +kubebuilder:validation:XValidation:rule="!(has(self.insecureSkipVerify) && self.insecureSkipVerify && has(self.caSecretRef))",message="insecureSkipVerify turns certificate checks off, so a caSecretRef would be ignored: set one or the other"
type BrokerTLS struct {
	// CASecretRef names a Secret whose "ca.crt" key holds the PEM CA bundle
	// that signs the broker's certificate. Without it the system roots are used.
	// +optional
	CASecretRef *corev1.LocalObjectReference `json:"caSecretRef,omitempty"`

	// ClientCertSecretRef names a kubernetes.io/tls Secret ("tls.crt",
	// "tls.key") presented to brokers that require client certificates.
	// +optional
	ClientCertSecretRef *corev1.LocalObjectReference `json:"clientCertSecretRef,omitempty"`

	// ServerName overrides the name checked against the broker's certificate.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	ServerName string `json:"serverName,omitempty"`

	// InsecureSkipVerify turns off verification of the broker's certificate.
	// Only for test brokers: anyone on the path can read and forge traffic.
	// +optional
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`
}

// DeviceCounts counts a fleet's devices by presence.
type DeviceCounts struct {
	// Known is the number of devices with inventory on the broker.
	Known int32 `json:"known"`
	// Online is the number of devices whose presence is online.
	Online int32 `json:"online"`
	// Offline is the number of known devices that are not online.
	Offline int32 `json:"offline"`
}

// ValueCount is one bucket of a histogram: how many devices report Value.
type ValueCount struct {
	// Value is the firmware version or model.
	Value string `json:"value"`
	// Count is the number of devices reporting it.
	Count int32 `json:"count"`
}

// DeviceFleetStatus is a bounded summary of the fleet as seen on the broker.
type DeviceFleetStatus struct {
	// ObservedGeneration is the spec generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready, Reconciling, Stalled, BrokerConnected, DeviceLimitReached.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// Devices counts the fleet's devices by presence.
	// +optional
	Devices DeviceCounts `json:"devices,omitzero"`

	// FirmwareVersions are the most common firmware versions, largest first.
	// +optional
	// +kubebuilder:validation:MaxItems=20
	FirmwareVersions []ValueCount `json:"firmwareVersions,omitempty"`

	// Models are the most common device models, largest first.
	// +optional
	// +kubebuilder:validation:MaxItems=20
	Models []ValueCount `json:"models,omitempty"`

	// MalformedMessages counts device messages that could not be parsed or
	// named an invalid device, since the operator connected.
	// +optional
	MalformedMessages int64 `json:"malformedMessages,omitempty"`

	// IgnoredDeviceMessages is how many device messages were ignored because the
	// fleet is at spec.maxDevices, in the current picture of the fleet.
	// +optional
	IgnoredDeviceMessages int64 `json:"ignoredDeviceMessages,omitempty"`

	// ResyncRepairs counts device and notice records that periodic
	// rebuilds found the live stream had missed (messages the broker
	// dropped), since the operator connected.
	// +optional
	ResyncRepairs int64 `json:"resyncRepairs,omitempty"`

	// LastSyncTime is when the device state was last rebuilt from the broker.
	// +optional
	LastSyncTime *metav1.Time `json:"lastSyncTime,omitempty"`
}

// DeviceFleet is a set of devices that share an MQTT broker and topic root.
// The broker is the source of truth for the device list.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=fleet;fleets,categories=herald
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Devices",type=integer,JSONPath=`.status.devices.known`
// +kubebuilder:printcolumn:name="Online",type=integer,JSONPath=`.status.devices.online`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type DeviceFleet struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the desired broker connection.
	// +required
	Spec DeviceFleetSpec `json:"spec"`
	// Status is the observed state of the fleet.
	// +optional
	Status DeviceFleetStatus `json:"status,omitzero"`
}

// DeviceFleetList is a list of DeviceFleets.
//
// +kubebuilder:object:root=true
type DeviceFleetList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the fleets.
	Items []DeviceFleet `json:"items"`
}
