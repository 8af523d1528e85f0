package mqtt

import (
	"fmt"

	"github.com/heraldiot/herald/mqtt/packet"
)

// Topic aliases (MQTT 5.0 section 3.3.2.3.4) replace a topic name by a
// small integer for the rest of one network connection. Mappings never
// outlive the connection [MQTT-3.3.2-7], so both tables below belong to a
// conn and a reconnect starts with empty ones.

// outboundAliases assigns aliases to the topics we publish to, up to the
// smaller of Options.OutboundTopicAliases and the server's Topic Alias
// Maximum. When all are taken, the least recently used alias is remapped:
// a fleet publishing to many topics keeps the hot ones short.
//
// Publishers hold Client.mu while they use it, which also orders the
// mappings exactly as the packets reach the write buffer.
type outboundAliases struct {
	byTopic map[string]uint16
	topics  []string // by alias; index 0 is unused
	// An LRU list threaded through the alias numbers; index 0 is the
	// sentinel, so next[0] is the most and prev[0] the least recently used.
	prev, next []uint16
	assigned   uint16   // aliases 1..assigned have been handed out
	free       []uint16 // handed out, then forgotten
}

func newOutboundAliases(maximum uint16) *outboundAliases {
	if maximum == 0 {
		return nil
	}
	n := int(maximum) + 1
	return &outboundAliases{
		byTopic: make(map[string]uint16, n),
		topics:  make([]string, n),
		prev:    make([]uint16, n),
		next:    make([]uint16, n),
	}
}

// lookup returns the alias for topic and whether the server already knows
// the mapping, in which case the PUBLISH may carry an empty topic name.
// Otherwise the PUBLISH must carry both the topic and the alias, which
// (re)defines the mapping at the server.
func (a *outboundAliases) lookup(topic []byte) (alias uint16, known bool) {
	// Indexing with string(topic) does not allocate; only a new mapping
	// copies the topic, so the table never aliases the caller's memory.
	if alias, ok := a.byTopic[string(topic)]; ok {
		a.unlink(alias)
		a.pushFront(alias)
		return alias, true
	}
	switch {
	case len(a.free) > 0:
		alias, a.free = a.free[len(a.free)-1], a.free[:len(a.free)-1]
	case int(a.assigned) < len(a.topics)-1:
		a.assigned++
		alias = a.assigned
	default:
		alias = a.prev[0]
		a.unlink(alias)
		delete(a.byTopic, a.topics[alias])
	}
	t := string(topic)
	a.byTopic[t] = alias
	a.topics[alias] = t
	a.pushFront(alias)
	return alias, false
}

// forget undoes a mapping whose defining PUBLISH was never sent, so the
// next publish to topic defines it again instead of relying on it. The
// alias number goes back to the free list; whatever the server still maps
// it to is overwritten when it is next defined.
func (a *outboundAliases) forget(topic []byte) {
	alias, ok := a.byTopic[string(topic)]
	if !ok {
		return
	}
	delete(a.byTopic, string(topic))
	a.unlink(alias)
	a.topics[alias] = ""
	a.free = append(a.free, alias)
}

func (a *outboundAliases) unlink(x uint16) {
	p, n := a.prev[x], a.next[x]
	a.next[p], a.prev[n] = n, p
	a.prev[x], a.next[x] = 0, 0
}

func (a *outboundAliases) pushFront(x uint16) {
	first := a.next[0]
	a.prev[x], a.next[x] = 0, first
	a.prev[first], a.next[0] = x, x
}

// inboundAliases resolves the aliases the server uses toward us, up to the
// Topic Alias Maximum we announced. Only the connection's reader uses it.
type inboundAliases struct {
	topics []string // by alias; index 0 is unused
}

// resolve returns the topic of a received PUBLISH, learning or applying
// its alias.
func (a *inboundAliases) resolve(p *packet.Publish, maximum uint16) (string, error) {
	alias := p.Properties.TopicAlias
	if alias == 0 && p.Properties.Has(packet.PropTopicAlias) {
		return "", fmt.Errorf("%w: topic alias 0", packet.TopicAliasInvalid) // [MQTT-3.3.2-8]
	}
	if alias == 0 {
		if len(p.Topic) == 0 {
			// [MQTT-3.3.2-8] An empty topic name needs an alias.
			return "", fmt.Errorf("%w: PUBLISH with an empty topic name and no topic alias", packet.ProtocolError)
		}
		return string(p.Topic), nil
	}
	if alias > maximum {
		// [MQTT-3.3.2-9]
		return "", fmt.Errorf("%w: topic alias %d above our maximum %d", packet.TopicAliasInvalid, alias, maximum)
	}
	if a.topics == nil {
		a.topics = make([]string, int(maximum)+1)
	}
	if len(p.Topic) > 0 {
		t := string(p.Topic)
		a.topics[alias] = t
		return t, nil
	}
	t := a.topics[alias]
	if t == "" {
		return "", fmt.Errorf("%w: topic alias %d was never defined on this connection", packet.ProtocolError, alias)
	}
	return t, nil
}

// callerAliases are the aliases publishers choose themselves
// (Message.TopicAlias), numbered above the automatic ones: what each maps
// to at the server on this connection. The map is made at the first such
// publish; publishers hold Client.mu.
type callerAliases struct {
	topics map[uint16]string
}

// use reports whether the server already maps alias to topic, so the
// PUBLISH may carry an empty topic name; otherwise the PUBLISH (re)defines
// the mapping, which use records.
func (a *callerAliases) use(alias uint16, topic []byte) (known bool) {
	if t, ok := a.topics[alias]; ok && t == string(topic) {
		return true
	}
	if a.topics == nil {
		a.topics = make(map[uint16]string)
	}
	a.topics[alias] = string(topic)
	return false
}

// forget undoes the mapping of alias, whose defining PUBLISH was never sent.
func (a *callerAliases) forget(alias uint16) { delete(a.topics, alias) }

// checkCallerAlias says whether alias is one a caller may choose on a
// connection whose server announced ack: above the automatic aliases and
// at most the server's Topic Alias Maximum (3.3.2.3.4). A topic alias the
// server did not allow is a protocol error that would cost the connection
// [MQTT-3.3.2-9]; refusing it here costs the caller one publish.
func checkCallerAlias(alias uint16, v Version, ack *Connack, automatic uint16) error {
	if v != V5 {
		return fmt.Errorf("%w: topic aliases need MQTT 5.0", ErrTopicAliasInvalid)
	}
	if ack == nil {
		return nil // checked again once connected, before it is sent
	}
	lo := min(automatic, ack.TopicAliasMaximum) + 1
	if alias < lo || alias > ack.TopicAliasMaximum {
		if lo > ack.TopicAliasMaximum {
			return fmt.Errorf("%w: %d, and the server's Topic Alias Maximum %d leaves none for the caller (OutboundTopicAliases %d)",
				ErrTopicAliasInvalid, alias, ack.TopicAliasMaximum, automatic)
		}
		return fmt.Errorf("%w: %d is outside %d–%d (the server's Topic Alias Maximum %d, OutboundTopicAliases %d)",
			ErrTopicAliasInvalid, alias, lo, ack.TopicAliasMaximum, ack.TopicAliasMaximum, automatic)
	}
	return nil
}
