// Package packet encodes and decodes MQTT 3.1.1 and 5.0 control packets.
//
// Decoding is pure and bounds-checked: each packet type's Unmarshal reads one
// packet body from a byte slice and never panics, whatever the bytes. Decoded
// []byte fields (topics, payloads, strings, properties) alias the input slice:
// they stay valid only as long as the caller keeps that slice unchanged, so
// copy what must outlive a reused read buffer. Slices inside a decoded packet
// (user properties, subscriptions, reason codes) are reused by the next
// Unmarshal into the same value, which is what makes steady-state decoding
// allocation-free. UnmarshalOptions can have user properties checked but not
// kept, for a reader that does not look at them.
//
// Encoding appends to a caller's buffer (Append methods), computing the
// remaining length first so that no temporary buffer is needed.
//
// A malformed or forbidden packet yields an *Error that names the problem and
// carries the v5 reason code to send in DISCONNECT; see ReasonOf.
package packet
