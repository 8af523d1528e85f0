// Package mqtt is Herald's MQTT 3.1.1 and 5.0 client.
//
// A Client keeps one session with a broker across connections: it connects
// to the first reachable server of a list, reconnects with exponential
// backoff and full jitter when the link is lost, and resumes the session,
// resending unacknowledged PUBLISH and PUBREL packets in their original
// order, or resubscribing and resending as new when the server kept nothing.
//
// Publishing is pipelined: many publishes may be in flight at once, up to
// the server's Receive Maximum; writes from all callers are batched by one
// writer goroutine, and there is no goroutine per message. Publish returns
// when the QoS flow completes (at once for QoS 0, at PUBACK for QoS 1, at
// PUBCOMP for QoS 2) and allocates nothing in steady state.
//
// Inbound messages are handed to handlers on a dispatcher goroutine, never on
// the connection's reader, in the order they arrived, each message once to
// the handler of every Subscribe call it matches. The queue between the
// reader and the dispatcher is bounded (Options.HandlerQueue). QoS 1 and 2
// messages are acknowledged after their handler returns (or, with manual
// acknowledgement, at Message.Ack, in arrival order), so the server's
// in-flight window (our Receive Maximum, never more than the queue) bounds
// them and they are never dropped. When the queue is full the reader waits
// for room (back-pressure), and the keepalive timer does not count that
// wait as a dead link; but while a caller waits for an acknowledgement,
// which may be a handler publishing at QoS 1, the reader reads on, dropping
// QoS 0 messages that find the queue full (counted in Stats) and queueing
// QoS 1 and 2 ones beyond the bound. Options.DropQoS0WhenFull drops QoS 0
// messages whenever the queue is full.
//
// Guarantees per QoS: QoS 0 at most once; QoS 1 at least once, across
// reconnects for as long as the session lives; QoS 2 exactly once in both
// directions while the session and its Store live.
package mqtt
