// Package fleet keeps Herald's picture of each DeviceFleet: one MQTT session
// per fleet, owned outside the reconcile loop, and the device state it
// learns from retained presence, inventory, status and notice messages.
//
// The broker is the source of truth. Nothing here is persisted: after a
// restart a session subscribes again and the broker replays every retained
// message, which rebuilds the same state.
package fleet
