package main

import (
	"github.com/heraldiot/herald/mqtt"
)

// The texts below are libmosquitto's, so that our messages read like
// mosquitto_pub's and mosquitto_sub's. The Go client's own names differ in
// case and wording.

// v311ConnackTexts are mosquitto_connack_string's, by 3.1.1 return code.
var v311ConnackTexts = map[byte]string{
	0: "Connection Accepted.",
	1: "Connection Refused: unacceptable protocol version.",
	2: "Connection Refused: identifier rejected.",
	3: "Connection Refused: broker unavailable.",
	4: "Connection Refused: bad user name or password.",
	5: "Connection Refused: not authorised.",
}

// reasonTexts are mosquitto_reason_string's, by MQTT 5.0 reason code.
var reasonTexts = map[byte]string{
	0x00: "Success",
	0x01: "Granted QoS 1",
	0x02: "Granted QoS 2",
	0x04: "Disconnect with Will Message",
	0x10: "No matching subscribers",
	0x11: "No subscription existed",
	0x18: "Continue authentication",
	0x19: "Re-authenticate",
	0x80: "Unspecified error",
	0x81: "Malformed Packet",
	0x82: "Protocol Error",
	0x83: "Implementation specific error",
	0x84: "Unsupported Protocol Version",
	0x85: "Client Identifier not valid",
	0x86: "Bad User Name or Password",
	0x87: "Not authorized",
	0x88: "Server unavailable",
	0x89: "Server busy",
	0x8A: "Banned",
	0x8B: "Server shutting down",
	0x8C: "Bad authentication method",
	0x8D: "Keep Alive timeout",
	0x8E: "Session taken over",
	0x8F: "Topic Filter invalid",
	0x90: "Topic Name invalid",
	0x91: "Packet Identifier in use",
	0x92: "Packet Identifier not found",
	0x93: "Receive Maximum exceeded",
	0x94: "Topic Alias invalid",
	0x95: "Packet too large",
	0x96: "Message rate too high",
	0x97: "Quota exceeded",
	0x98: "Administrative action",
	0x99: "Payload format invalid",
	0x9A: "Retain not supported",
	0x9B: "QoS not supported",
	0x9C: "Use another server",
	0x9D: "Server moved",
	0x9E: "Shared Subscriptions not supported",
	0x9F: "Connection rate exceeded",
	0xA0: "Maximum connect time",
	0xA1: "Subscription identifiers not supported",
	0xA2: "Wildcard Subscriptions not supported",
}

// connackText words a refused CONNACK as mosquitto does.
func connackText(v mqtt.Version, code byte) string {
	if v == mqtt.V311 {
		if s, ok := v311ConnackTexts[code]; ok {
			return s
		}
		return "Connection Refused: unknown reason."
	}
	if code == 0x84 {
		return reasonText(code) + ". Try connecting to an MQTT v5 broker, or use MQTT v3.x mode."
	}
	return reasonText(code)
}

// reasonText names an MQTT 5.0 reason code as mosquitto does.
func reasonText(code byte) string {
	if s, ok := reasonTexts[code]; ok {
		return s
	}
	return "Unknown reason"
}
