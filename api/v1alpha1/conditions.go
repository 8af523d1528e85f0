package v1alpha1

// Condition types. Ready, Reconciling and Stalled follow kstatus so that
// kubectl wait, Argo CD and Flux read Herald's objects without custom health
// checks; the others are specific to Herald.
const (
	// ConditionReady is True when the object has reached the state its spec asks for.
	ConditionReady = "Ready"
	// ConditionReconciling is True while the controller is working towards the spec.
	ConditionReconciling = "Reconciling"
	// ConditionStalled is True when retrying cannot make progress without a spec change.
	ConditionStalled = "Stalled"
	// ConditionBrokerConnected is True while the fleet's MQTT session is up.
	ConditionBrokerConnected = "BrokerConnected"
	// ConditionProgressing is True while a rollout sends notices or waits for devices.
	ConditionProgressing = "Progressing"
	// ConditionPaused is True while a rollout is paused, by spec or by its failure policy.
	ConditionPaused = "Paused"
	// ConditionFinished is True once a rollout has reached a terminal phase
	// (Succeeded, Aborted, Canceled or Failed), whatever the outcome: what
	// `kubectl wait --for=condition=Finished` waits for.
	ConditionFinished = "Finished"
	// ConditionDegraded is True when failures tripped the failure policy.
	ConditionDegraded = "Degraded"
	// ConditionDeviceLimitReached is True when a fleet has more devices on
	// its broker than spec.maxDevices lets Herald track.
	ConditionDeviceLimitReached = "DeviceLimitReached"
)

// Condition reasons shared by both kinds.
const (
	// ReasonConnected means the MQTT session with the broker is established.
	ReasonConnected = "Connected"
	// ReasonConnecting means the controller is (re)establishing the MQTT session.
	ReasonConnecting = "Connecting"
	// ReasonConnectFailed means the broker refused or could not be reached.
	ReasonConnectFailed = "ConnectFailed"
	// ReasonInvalidCredentials means a referenced Secret is missing or malformed.
	ReasonInvalidCredentials = "InvalidCredentials"
	// ReasonSynced means the fleet's device state was rebuilt from the broker.
	ReasonSynced = "Synced"
	// ReasonFleetNotFound means the referenced DeviceFleet does not exist.
	ReasonFleetNotFound = "FleetNotFound"
	// ReasonFleetNotReady means the fleet's broker session is not up.
	ReasonFleetNotReady = "FleetNotReady"
	// ReasonInvalidSpec means the spec cannot be acted on (e.g. a bad selector).
	ReasonInvalidSpec = "InvalidSpec"
	// ReasonResyncing means the fleet's device state is being rebuilt from
	// the broker's retained messages after a (re)connect.
	ReasonResyncing = "Resyncing"
	// ReasonReplayIncomplete means the broker cut the retained replay short
	// (it dropped messages it could not queue); the message names the
	// broker setting to change.
	ReasonReplayIncomplete = "ReplayIncomplete"
	// ReasonSyncRefused means the broker refused the sync markers or the
	// subscriptions Herald needs (an ACL, or retained messages disabled).
	ReasonSyncRefused = "SyncRefused"
	// ReasonClientIDConflict means another DeviceFleet uses the same MQTT
	// client ID on the same broker; brokers allow one connection per ID.
	ReasonClientIDConflict = "ClientIDConflict"
	// ReasonDeviceLimitReached means more devices publish under the fleet's
	// topic root than spec.maxDevices allows; the rest are ignored.
	ReasonDeviceLimitReached = "DeviceLimitReached"
	// ReasonWithinDeviceLimit means every device on the broker is tracked.
	ReasonWithinDeviceLimit = "WithinDeviceLimit"
)

// Rollout condition reasons.
const (
	ReasonWaveProgressing          = "WaveProgressing"
	ReasonWaitingForApproval       = "WaitingForApproval"
	ReasonSoaking                  = "Soaking"
	ReasonPausedBySpec             = "PausedBySpec"
	ReasonFailureThreshold         = "FailureThresholdExceeded"
	ReasonRolloutSucceeded         = "RolloutSucceeded"
	ReasonRolloutAborted           = "RolloutAborted"
	ReasonRolloutCanceled          = "RolloutCanceled"
	ReasonSuperseded               = "Superseded"
	ReasonRateLimited              = "RateLimited"
	ReasonWithinPolicy             = "WithinPolicy"
	ReasonRunning                  = "Running"
	ReasonDryRun                   = "DryRun"
	ReasonScheduled                = "Scheduled"
	ReasonScheduleEnded            = "ScheduleEnded"
	ReasonOutsideMaintenanceWindow = "OutsideMaintenanceWindow"
	ReasonSnapshotUnreadable       = "TargetSnapshotUnreadable"
)
