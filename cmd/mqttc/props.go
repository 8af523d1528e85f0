package main

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/heraldiot/herald/mqtt"
)

// property is one -D group: `-D command identifier value`, or for user
// properties `-D command user-property name value`.
type property struct {
	command string // lower case: connect, publish, will, subscribe, ...
	name    string // lower case, '-' between words, as mosquitto spells it
	key     string // the user property's name
	value   string
	num     uint32 // value, for numeric properties, once checked
}

type propKind byte

const (
	kindByte propKind = iota
	kindUint16
	kindUint32
	kindVarInt
	kindString
	kindBinary
	kindPair
)

// defaultHandlerQueue is mqtt.Options.HandlerQueue's default.
const defaultHandlerQueue = 256

// propertyKinds are the MQTT 5.0 properties by their mosquitto names.
var propertyKinds = map[string]propKind{
	"payload-format-indicator":          kindByte,
	"message-expiry-interval":           kindUint32,
	"content-type":                      kindString,
	"response-topic":                    kindString,
	"correlation-data":                  kindBinary,
	"subscription-identifier":           kindVarInt,
	"session-expiry-interval":           kindUint32,
	"assigned-client-identifier":        kindString,
	"server-keep-alive":                 kindUint16,
	"authentication-method":             kindString,
	"authentication-data":               kindBinary,
	"request-problem-information":       kindByte,
	"will-delay-interval":               kindUint32,
	"request-response-information":      kindByte,
	"response-information":              kindString,
	"server-reference":                  kindString,
	"reason-string":                     kindString,
	"receive-maximum":                   kindUint16,
	"topic-alias-maximum":               kindUint16,
	"topic-alias":                       kindUint16,
	"maximum-qos":                       kindByte,
	"retain-available":                  kindByte,
	"user-property":                     kindPair,
	"maximum-packet-size":               kindUint32,
	"wildcard-subscription-available":   kindByte,
	"subscription-identifier-available": kindByte,
	"shared-subscription-available":     kindByte,
}

// allowedProperties are what a client may put in each packet (MQTT 5.0
// 2.2.2.2), plus those mosquitto accepts but cannot send (subscription
// identifiers in PUBLISH). A pair outside this table is "not allowed".
var allowedProperties = map[string][]string{
	"connect": {"session-expiry-interval", "receive-maximum", "maximum-packet-size", "topic-alias-maximum",
		"request-response-information", "request-problem-information", "user-property",
		"authentication-method", "authentication-data"},
	"publish": {"payload-format-indicator", "message-expiry-interval", "topic-alias", "response-topic",
		"correlation-data", "user-property", "subscription-identifier", "content-type"},
	"puback":      {"reason-string", "user-property"},
	"pubrec":      {"reason-string", "user-property"},
	"pubrel":      {"reason-string", "user-property"},
	"pubcomp":     {"reason-string", "user-property"},
	"subscribe":   {"subscription-identifier", "user-property"},
	"unsubscribe": {"user-property"},
	"disconnect":  {"session-expiry-interval", "reason-string", "user-property"},
	"auth":        {"authentication-method", "authentication-data", "reason-string", "user-property"},
	"will": {"will-delay-interval", "payload-format-indicator", "message-expiry-interval", "content-type",
		"response-topic", "correlation-data", "user-property"},
}

// supportedProperties are the allowed ones Herald's client can send. The
// client offers no enhanced authentication, no outbound topic aliases (and
// announces Topic Alias Maximum 0), and sends DISCONNECT, UNSUBSCRIBE and
// the acknowledgements without properties.
var supportedProperties = map[string][]string{
	"connect": {"session-expiry-interval", "receive-maximum", "maximum-packet-size",
		"request-response-information", "request-problem-information", "user-property"},
	"publish": {"payload-format-indicator", "message-expiry-interval", "response-topic",
		"correlation-data", "user-property", "content-type"},
	"subscribe": {"subscription-identifier", "user-property"},
	"will":      allowedProperties["will"],
}

// parseProperty checks one -D group's words (after -D) and returns the
// property.
func parseProperty(words []string) (property, error) {
	p := property{command: strings.ToLower(words[0]), name: strings.ToLower(words[1])}
	if _, ok := allowedProperties[p.command]; !ok {
		return p, usageErrorf("Invalid command given in --property argument.")
	}
	kind, ok := propertyKinds[p.name]
	if !ok {
		return p, usageErrorf("Invalid property name given in --property argument.")
	}
	if !slices.Contains(allowedProperties[p.command], p.name) {
		return p, usageErrorf("%s property not allowed for %s in --property argument.", p.name, p.command)
	}
	if !slices.Contains(supportedProperties[p.command], p.name) {
		return p, usageErrorf("%s property not supported for %s in --property argument.", p.name, p.command)
	}
	if kind == kindPair {
		p.key, p.value = words[2], words[3]
		return p, nil
	}
	p.value = words[2]
	var limit uint64
	switch kind {
	case kindByte:
		limit = 0xFF
	case kindUint16:
		limit = 0xFFFF
	case kindUint32:
		limit = 0xFFFFFFFF
	case kindVarInt:
		limit = 268435455
	default:
		return p, nil
	}
	n, err := strconv.ParseUint(p.value, 10, 64)
	// A subscription identifier of 0 is a Protocol Error (3.8.2.1.2); a
	// format indicator or request flag is 0 or 1 (3.3.2.3.2, 3.1.2.11.6-7),
	// and the client's Message can only say "UTF-8 or not" anyway.
	if err != nil || n > limit || (kind == kindVarInt && n == 0) || (isFlagProperty(p.name) && n > 1) {
		return p, usageErrorf("Property value (%s) out of range for property %s.", p.value, p.name)
	}
	p.num = uint32(n)
	return p, nil
}

func isFlagProperty(name string) bool {
	return name == "payload-format-indicator" || name == "request-problem-information" ||
		name == "request-response-information"
}

// propertyWords is how many words follow -D for the identifier given.
func propertyWords(identifier string) int {
	if strings.EqualFold(identifier, "user-property") {
		return 4
	}
	return 3
}

// applyConnect puts the connect properties into o.
func applyConnect(props []property, o *mqtt.Options) {
	for _, p := range props {
		if p.command != "connect" {
			continue
		}
		switch p.name {
		case "session-expiry-interval":
			o.SessionExpiry = time.Duration(p.num) * time.Second
		case "receive-maximum":
			// The client caps Receive Maximum at its handler queue, so
			// the queue grows with it (never below the client's default).
			o.ReceiveMaximum = uint16(p.num)
			o.HandlerQueue = max(int(p.num), defaultHandlerQueue)
		case "maximum-packet-size":
			o.MaximumPacketSize = p.num
		case "request-response-information":
			o.RequestResponseInfo = p.num == 1
		case "request-problem-information":
			o.DisableProblemInfo = p.num == 0
		case "user-property":
			o.UserProperties = append(o.UserProperties, mqtt.UserProperty{Key: p.key, Value: p.value})
		}
	}
}

// applyPublish puts the publish properties into m.
func applyPublish(props []property, m *mqtt.Message) {
	for _, p := range props {
		if p.command != "publish" {
			continue
		}
		applyMessageProperty(p, &m.PayloadUTF8, &m.Expiry, &m.ContentType, &m.ResponseTopic, &m.CorrelationData, &m.UserProperties)
	}
}

// applyWill puts the will properties into w.
func applyWill(props []property, w *mqtt.Will) {
	for _, p := range props {
		if p.command != "will" {
			continue
		}
		if p.name == "will-delay-interval" {
			w.Delay = time.Duration(p.num) * time.Second
			continue
		}
		applyMessageProperty(p, &w.PayloadUTF8, &w.Expiry, &w.ContentType, &w.ResponseTopic, &w.CorrelationData, &w.UserProperties)
	}
}

// applyMessageProperty sets the field of a message or will that p names;
// the two share their properties but not a type.
func applyMessageProperty(p property, utf8 *bool, expiry *time.Duration, contentType, responseTopic *string,
	correlation *[]byte, user *[]mqtt.UserProperty) {
	switch p.name {
	case "payload-format-indicator":
		*utf8 = p.num == 1
	case "message-expiry-interval":
		*expiry = time.Duration(p.num) * time.Second
	case "content-type":
		*contentType = p.value
	case "response-topic":
		*responseTopic = p.value
	case "correlation-data":
		*correlation = []byte(p.value)
	case "user-property":
		*user = append(*user, mqtt.UserProperty{Key: p.key, Value: p.value})
	}
}

// applySubscribe puts the subscribe properties into req.
func applySubscribe(props []property, req *mqtt.SubscribeRequest) {
	for _, p := range props {
		if p.command != "subscribe" {
			continue
		}
		switch p.name {
		case "subscription-identifier":
			req.ID = p.num
		case "user-property":
			req.UserProperties = append(req.UserProperties, mqtt.UserProperty{Key: p.key, Value: p.value})
		}
	}
}
