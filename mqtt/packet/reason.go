package packet

import "fmt"

// ReasonCode is an MQTT 5.0 reason code, or a 3.1.1 CONNACK/SUBACK return
// code. Codes of 0x80 and above are failures; a ReasonCode is an error so
// that a failed acknowledgement can be returned as one.
type ReasonCode byte

// Reason codes of MQTT 5.0, section 2.4. Several share a value; the name
// used depends on the packet.
const (
	Success                             ReasonCode = 0x00
	NormalDisconnection                 ReasonCode = 0x00
	GrantedQoS0                         ReasonCode = 0x00
	GrantedQoS1                         ReasonCode = 0x01
	GrantedQoS2                         ReasonCode = 0x02
	DisconnectWithWillMessage           ReasonCode = 0x04
	NoMatchingSubscribers               ReasonCode = 0x10
	NoSubscriptionExisted               ReasonCode = 0x11
	ContinueAuthentication              ReasonCode = 0x18
	ReAuthenticate                      ReasonCode = 0x19
	UnspecifiedError                    ReasonCode = 0x80
	MalformedPacket                     ReasonCode = 0x81
	ProtocolError                       ReasonCode = 0x82
	ImplementationSpecificError         ReasonCode = 0x83
	UnsupportedProtocolVersion          ReasonCode = 0x84
	ClientIdentifierNotValid            ReasonCode = 0x85
	BadUserNameOrPassword               ReasonCode = 0x86
	NotAuthorized                       ReasonCode = 0x87
	ServerUnavailable                   ReasonCode = 0x88
	ServerBusy                          ReasonCode = 0x89
	Banned                              ReasonCode = 0x8A
	ServerShuttingDown                  ReasonCode = 0x8B
	BadAuthenticationMethod             ReasonCode = 0x8C
	KeepAliveTimeout                    ReasonCode = 0x8D
	SessionTakenOver                    ReasonCode = 0x8E
	TopicFilterInvalid                  ReasonCode = 0x8F
	TopicNameInvalid                    ReasonCode = 0x90
	PacketIdentifierInUse               ReasonCode = 0x91
	PacketIdentifierNotFound            ReasonCode = 0x92
	ReceiveMaximumExceeded              ReasonCode = 0x93
	TopicAliasInvalid                   ReasonCode = 0x94
	PacketTooLarge                      ReasonCode = 0x95
	MessageRateTooHigh                  ReasonCode = 0x96
	QuotaExceeded                       ReasonCode = 0x97
	AdministrativeAction                ReasonCode = 0x98
	PayloadFormatInvalid                ReasonCode = 0x99
	RetainNotSupported                  ReasonCode = 0x9A
	QoSNotSupported                     ReasonCode = 0x9B
	UseAnotherServer                    ReasonCode = 0x9C
	ServerMoved                         ReasonCode = 0x9D
	SharedSubscriptionsNotSupported     ReasonCode = 0x9E
	ConnectionRateExceeded              ReasonCode = 0x9F
	MaximumConnectTime                  ReasonCode = 0xA0
	SubscriptionIdentifiersNotSupported ReasonCode = 0xA1
	WildcardSubscriptionsNotSupported   ReasonCode = 0xA2
)

// Return codes of MQTT 3.1.1 CONNACK (3.2.2.3) and SUBACK (3.9.3).
const (
	V311Accepted                    ReasonCode = 0x00
	V311UnacceptableProtocolVersion ReasonCode = 0x01
	V311IdentifierRejected          ReasonCode = 0x02
	V311ServerUnavailable           ReasonCode = 0x03
	V311BadUserNameOrPassword       ReasonCode = 0x04
	V311NotAuthorized               ReasonCode = 0x05
	V311SubscribeFailure            ReasonCode = 0x80
)

var reasonNames = map[ReasonCode]string{
	0x00: "success", 0x01: "granted QoS 1", 0x02: "granted QoS 2", 0x04: "disconnect with will message",
	0x10: "no matching subscribers", 0x11: "no subscription existed", 0x18: "continue authentication",
	0x19: "re-authenticate", 0x80: "unspecified error", 0x81: "malformed packet", 0x82: "protocol error",
	0x83: "implementation specific error", 0x84: "unsupported protocol version",
	0x85: "client identifier not valid", 0x86: "bad user name or password", 0x87: "not authorized",
	0x88: "server unavailable", 0x89: "server busy", 0x8A: "banned", 0x8B: "server shutting down",
	0x8C: "bad authentication method", 0x8D: "keep alive timeout", 0x8E: "session taken over",
	0x8F: "topic filter invalid", 0x90: "topic name invalid", 0x91: "packet identifier in use",
	0x92: "packet identifier not found", 0x93: "receive maximum exceeded", 0x94: "topic alias invalid",
	0x95: "packet too large", 0x96: "message rate too high", 0x97: "quota exceeded",
	0x98: "administrative action", 0x99: "payload format invalid", 0x9A: "retain not supported",
	0x9B: "QoS not supported", 0x9C: "use another server", 0x9D: "server moved",
	0x9E: "shared subscriptions not supported", 0x9F: "connection rate exceeded",
	0xA0: "maximum connect time", 0xA1: "subscription identifiers not supported",
	0xA2: "wildcard subscriptions not supported",
}

// String names the code as MQTT 5.0 does.
func (r ReasonCode) String() string {
	if n, ok := reasonNames[r]; ok {
		return n
	}
	return fmt.Sprintf("reason code 0x%02X", byte(r))
}

// Error makes a failed reason code usable as an error.
func (r ReasonCode) Error() string { return fmt.Sprintf("mqtt: %s (0x%02X)", r.String(), byte(r)) }

// IsError reports whether r signals failure (0x80 and above).
func (r ReasonCode) IsError() bool { return r >= 0x80 }

// V311ConnackString names a 3.1.1 CONNACK return code.
func V311ConnackString(r ReasonCode) string {
	switch r {
	case V311Accepted:
		return "connection accepted"
	case V311UnacceptableProtocolVersion:
		return "unacceptable protocol version"
	case V311IdentifierRejected:
		return "identifier rejected"
	case V311ServerUnavailable:
		return "server unavailable"
	case V311BadUserNameOrPassword:
		return "bad user name or password"
	case V311NotAuthorized:
		return "not authorized"
	}
	return fmt.Sprintf("return code 0x%02X", byte(r))
}

// ValidFor reports whether the v5 tables list r for a packet of type t.
func (r ReasonCode) ValidFor(t Type) bool {
	switch t {
	case TypeConnack:
		return r == Success || (r >= UnspecifiedError && r <= Banned) || r == BadAuthenticationMethod ||
			r == TopicNameInvalid || r == PacketTooLarge || r == QuotaExceeded || r == PayloadFormatInvalid ||
			r == RetainNotSupported || r == QoSNotSupported || r == UseAnotherServer || r == ServerMoved ||
			r == ConnectionRateExceeded
	case TypePuback, TypePubrec:
		return r == Success || r == NoMatchingSubscribers || r == UnspecifiedError ||
			r == ImplementationSpecificError || r == NotAuthorized || r == TopicNameInvalid ||
			r == PacketIdentifierInUse || r == QuotaExceeded || r == PayloadFormatInvalid
	case TypePubrel, TypePubcomp:
		return r == Success || r == PacketIdentifierNotFound
	case TypeSuback:
		return r <= GrantedQoS2 || r == UnspecifiedError || r == ImplementationSpecificError ||
			r == NotAuthorized || r == TopicFilterInvalid || r == PacketIdentifierInUse ||
			r == QuotaExceeded || r == SharedSubscriptionsNotSupported ||
			r == SubscriptionIdentifiersNotSupported || r == WildcardSubscriptionsNotSupported
	case TypeUnsuback:
		return r == Success || r == NoSubscriptionExisted || r == UnspecifiedError ||
			r == ImplementationSpecificError || r == NotAuthorized || r == TopicFilterInvalid ||
			r == PacketIdentifierInUse
	case TypeDisconnect:
		return r == NormalDisconnection || r == DisconnectWithWillMessage ||
			(r >= UnspecifiedError && r <= WildcardSubscriptionsNotSupported && r != BadUserNameOrPassword &&
				r != ServerUnavailable && r != Banned && r != BadAuthenticationMethod &&
				r != ClientIdentifierNotValid && r != UnsupportedProtocolVersion &&
				r != PacketIdentifierInUse && r != PacketIdentifierNotFound)
	case TypeAuth:
		return r == Success || r == ContinueAuthentication || r == ReAuthenticate
	}
	return false
}
