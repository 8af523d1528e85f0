// Package protocol is the contract between Herald's operator and device
// firmware: the MQTT topics under a fleet's topic root, the JSON payloads
// published on them, and the rules both sides follow. docs/protocol.md is
// the specification for firmware engineers; this package implements it for
// the operator and the device simulator, and its tests check the document's
// examples, schemas and test vectors against the code.
//
// Topic layout under a fleet's root R (see Topics):
//
//	R/devices/{deviceID}/presence   retained  device: online/offline, and its Will
//	R/devices/{deviceID}/inventory  retained  device: model, firmware version, labels
//	R/devices/{deviceID}/status     retained  device: progress with a rollout
//	R/devices/{deviceID}/notice     retained  operator: notices for this device alone
//	R/notices/{model}/{cohort}      retained  operator: notices for a model's cohort
//
// Every payload is one JSON object with "v": Version. Parse functions are
// strict about what v1 defines and ignore members it does not, and every
// error they return wraps ErrMalformed, which the operator counts per fleet.
//
// Everything here is a pure function or a plain value: safe for concurrent
// use, no I/O, no allocation kept beyond the returned values.
package protocol
