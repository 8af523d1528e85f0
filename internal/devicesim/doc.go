// Package devicesim simulates firmware-updatable devices that speak the
// device protocol (docs/protocol.md) over real MQTT connections, one
// connection per device: a Will and presence, inventory, the two notice
// subscriptions, and the device's side of a rollout, from accepted through
// a simulated (or real, see HTTPFetch) download, install and reboot into
// the new version. Outcomes are drawn from a random source seeded by the
// device ID, so a simulated fleet behaves the same way in every run.
//
// Tests use it directly; the fleetsim command runs fleets of thousands of
// devices described by a Profile.
package devicesim
