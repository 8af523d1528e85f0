// Package fleet keeps Herald's picture of each DeviceFleet: one MQTT session
// per fleet, owned outside the reconcile loop, and the device state it
// learns from retained presence, inventory, status and notice messages.
//
// The broker is the source of truth. Nothing here is persisted: after
// every connect a session builds a fresh State from the broker's retained
// messages and swaps it in once the replay is proven complete (see
// Session), and it rebuilds again periodically to repair what the live
// stream may have lost. A State is bounded whatever devices publish: a
// device cap, bounded interning, and no trace of messages that do not
// parse.
package fleet
