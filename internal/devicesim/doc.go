// Package devicesim simulates firmware-updatable devices that speak the
// device protocol (docs/protocol.md) over real MQTT connections, one
// connection per device. Tests and the fleetsim command use it.
package devicesim
