package main

import (
	"fmt"
	"time"
)

// appendJSON renders %j (payload as a JSON string) or, with rawPayload, %J
// (payload inserted as JSON), with mosquitto_sub's keys in its order.
func appendJSON(dst []byte, r *delivery, rawPayload bool) []byte {
	m := r.msg
	dst = append(dst, `{"tst":`...)
	dst = appendJSONString(dst, jsonTimestamp(r.at))
	dst = append(dst, `,"topic":`...)
	dst = appendJSONString(dst, m.Topic)
	dst = fmt.Appendf(dst, `,"qos":%d,"retain":%d,"payloadlen":%d`, m.QoS, b2i(m.Retain), len(m.Payload))
	if m.QoS > 0 {
		dst = fmt.Appendf(dst, `,"mid":%d`, r.wire.mid)
	}
	dst = appendJSONProperties(dst, r)
	dst = append(dst, `,"payload":`...)
	if rawPayload {
		dst = append(dst, m.Payload...)
	} else {
		dst = appendJSONString(dst, string(m.Payload))
	}
	return append(dst, '}')
}

// appendJSONProperties adds the v5 properties, if any. mosquitto_sub lists
// them in wire order, which the mosquitto broker makes: subscription
// identifiers first, the message expiry last, the rest as the publisher
// sent them. mqtt.Message does not keep that order, so this assumes the
// publisher sent ascending property identifiers, as Herald's client does.
func appendJSONProperties(dst []byte, r *delivery) []byte {
	m := r.msg
	start := len(dst)
	dst = append(dst, `,"properties":{`...)
	inner := len(dst)
	sep := func() {
		if len(dst) > inner {
			dst = append(dst, ',')
		}
	}
	for _, id := range m.SubscriptionIDs {
		sep()
		dst = fmt.Appendf(dst, `"subscription-identifier":%d`, id)
	}
	if r.wire.hasFormat {
		sep()
		dst = fmt.Appendf(dst, `"payload-format-indicator":%d`, r.wire.format)
	}
	for _, s := range []struct{ key, val string }{
		{"content-type", m.ContentType},
		{"response-topic", m.ResponseTopic},
		{"correlation-data", string(m.CorrelationData)},
	} {
		if s.val != "" {
			sep()
			dst = appendJSONString(append(dst, `"`+s.key+`":`...), s.val)
		}
	}
	if len(m.UserProperties) > 0 {
		sep()
		dst = append(dst, `"user-properties":{`...)
		for i, u := range m.UserProperties {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, u.Key)
			dst = append(dst, ':')
			dst = appendJSONString(dst, u.Value)
		}
		dst = append(dst, '}')
	}
	if r.wire.hasExpiry {
		sep()
		dst = fmt.Appendf(dst, `"message-expiry-interval":%d`, m.Expiry/time.Second)
	}
	if len(dst) == inner {
		return dst[:start]
	}
	return append(dst, '}')
}

// jsonTimestamp is mosquitto_sub's "tst": local time with microseconds, a
// literal Z and then the numeric zone, e.g. 2026-11-22T14:11:36.512034Z+0000.
func jsonTimestamp(t time.Time) string {
	return t.Format("2006-01-02T15:04:05.000000") + "Z" + t.Format("-0700")
}

// appendJSONString quotes s as cJSON does: the two mandatory escapes, the
// short forms for control characters and \u00XX for the others; all other
// bytes, UTF-8 or not, pass through.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\b':
			dst = append(dst, `\b`...)
		case '\f':
			dst = append(dst, `\f`...)
		case '\n':
			dst = append(dst, `\n`...)
		case '\r':
			dst = append(dst, `\r`...)
		case '\t':
			dst = append(dst, `\t`...)
		default:
			if c < 0x20 {
				dst = fmt.Appendf(dst, `\u%04x`, c)
				continue
			}
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}
