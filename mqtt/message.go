package mqtt

import (
	"time"
	"unsafe"

	"github.com/heraldiot/herald/mqtt/packet"
)

// QoS is an MQTT quality of service level.
type QoS byte

// The three QoS levels.
const (
	AtMostOnce  QoS = 0
	AtLeastOnce QoS = 1
	ExactlyOnce QoS = 2
)

// Version is the MQTT protocol version a client speaks.
type Version = packet.Version

// Protocol versions.
const (
	V311 = packet.V311
	V5   = packet.V5
)

// ReasonCode is an MQTT 5.0 reason code (or a 3.1.1 return code).
type ReasonCode = packet.ReasonCode

// UserProperty is an MQTT 5.0 user property.
type UserProperty struct {
	Key, Value string
}

// Message is an application message, published or received. The MQTT 5.0
// fields are ignored under 3.1.1.
type Message struct {
	Topic   string
	Payload []byte
	QoS     QoS
	Retain  bool
	// Duplicate is set on a received message the server may have sent before.
	Duplicate bool

	// PayloadUTF8 is the Payload Format Indicator: the payload is UTF-8 text.
	PayloadUTF8 bool
	// Expiry is the message expiry interval, in whole seconds; 0 means none.
	// On a received message it is the time left.
	Expiry time.Duration
	// ContentType describes the payload, e.g. "application/json".
	ContentType string
	// ResponseTopic and CorrelationData carry a request/response exchange.
	ResponseTopic   string
	CorrelationData []byte
	UserProperties  []UserProperty
	// SubscriptionIDs are the identifiers of the subscriptions that matched
	// a received message.
	SubscriptionIDs []uint32
	// TopicAlias (v5, publish only) has the topic travel as this two-byte
	// alias: the first publish with it on a connection carries topic and
	// alias, later ones with the same topic only the alias, and one with
	// another topic maps the alias to that topic. Topic is still required,
	// for the first publish on every connection and for resends. It must
	// lie above the aliases Options.OutboundTopicAliases assigns
	// (1..min(OutboundTopicAliases, server maximum)) and at most the
	// server's Topic Alias Maximum, or Publish fails with
	// ErrTopicAliasInvalid. 0: none, or automatic aliasing if enabled.
	// Received messages always carry their resolved topic and no alias.
	TopicAlias uint16

	// ack is set on a received message whose acknowledgement waits for
	// Ack (Options.ManualAck, SubscribeRequest.ManualAck).
	ack *heldAck
}

// bytesOf views s as a byte slice without copying. The codec only reads
// the fields it encodes, so the view is never written through.
func bytesOf(s string) []byte {
	if s == "" {
		return nil
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// fillPublish sets the fields of p from m for encoding under version v;
// the MQTT 5.0 fields are left out under 3.1.1. user is scratch space for
// user properties, returned for reuse.
func fillPublish(p *packet.Publish, m *Message, v Version, user []packet.UserProperty) []packet.UserProperty {
	p.Dup = false
	p.QoS = byte(m.QoS)
	p.Retain = m.Retain
	p.Topic = bytesOf(m.Topic)
	p.Payload = m.Payload
	p.Properties.Reset()
	if v != V5 {
		return user
	}
	return setMessageProperties(&p.Properties, m, user)
}

// setMessageProperties sets the v5 message properties of a PUBLISH or a
// will from m. The byte slices view m's strings, so pr must be encoded
// while m is unchanged. user is scratch space, returned for reuse.
func setMessageProperties(pr *packet.Properties, m *Message, user []packet.UserProperty) []packet.UserProperty {
	if m.PayloadUTF8 {
		pr.PayloadFormat = 1
	}
	pr.MessageExpiry = uint32(m.Expiry / time.Second)
	pr.ContentType = bytesOf(m.ContentType)
	pr.ResponseTopic = bytesOf(m.ResponseTopic)
	pr.CorrelationData = m.CorrelationData
	user = user[:0]
	for _, u := range m.UserProperties {
		user = append(user, packet.UserProperty{Key: bytesOf(u.Key), Value: bytesOf(u.Value)})
	}
	pr.User = user
	return user
}

// messageFrom copies a decoded PUBLISH into a Message that owns its memory,
// since p aliases the connection's read buffer.
func messageFrom(p *packet.Publish, topic string) *Message {
	m := &Message{
		Topic:     topic,
		QoS:       QoS(p.QoS),
		Retain:    p.Retain,
		Duplicate: p.Dup,
	}
	if len(p.Payload) > 0 {
		m.Payload = append([]byte(nil), p.Payload...)
	}
	pr := &p.Properties
	m.PayloadUTF8 = pr.PayloadFormat == 1
	m.Expiry = time.Duration(pr.MessageExpiry) * time.Second
	if pr.ContentType != nil {
		m.ContentType = string(pr.ContentType)
	}
	if pr.ResponseTopic != nil {
		m.ResponseTopic = string(pr.ResponseTopic)
	}
	if pr.CorrelationData != nil {
		m.CorrelationData = append([]byte{}, pr.CorrelationData...)
	}
	m.UserProperties = userPropertiesFrom(pr.User)
	if len(pr.SubscriptionIDs) > 0 {
		m.SubscriptionIDs = append([]uint32(nil), pr.SubscriptionIDs...)
	}
	return m
}

func userPropertiesFrom(in []packet.UserProperty) []UserProperty {
	if len(in) == 0 {
		return nil
	}
	out := make([]UserProperty, len(in))
	for i, u := range in {
		out[i] = UserProperty{Key: string(u.Key), Value: string(u.Value)}
	}
	return out
}
