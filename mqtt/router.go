package mqtt

import (
	"slices"
	"sync"

	"github.com/heraldiot/herald/mqtt/packet"
)

// Handler receives messages. It runs on the client's dispatcher goroutine,
// one message at a time, so it should hand long work elsewhere; the message
// is the handler's to keep.
type Handler func(*Message)

// router sends each received message to the handlers of the subscriptions
// it matches.
type router struct {
	mu     sync.RWMutex
	routes []route
}

type route struct {
	filter  string
	subID   uint32
	handler Handler
}

// add routes filter to h, replacing an earlier route for the same filter.
func (r *router) add(filter string, subID uint32, h Handler) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.routes {
		if r.routes[i].filter == filter {
			r.routes[i] = route{filter, subID, h}
			return
		}
	}
	r.routes = append(r.routes, route{filter, subID, h})
}

func (r *router) remove(filter string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.routes = slices.DeleteFunc(r.routes, func(rt route) bool { return rt.filter == filter })
}

// route calls every matching handler once; fallback gets messages that match
// none. A server sends the identifiers of the subscriptions a message was
// published for [MQTT-3.3.4-3], so a message naming identifiers goes to the
// routes with those identifiers, and one naming none to the routes without
// an identifier whose filter matches its topic (shared subscriptions by
// their inner filter). mosquitto sends one copy per matching subscription,
// each with its own identifiers; routing a copy by topic to every matching
// handler would hand it to subscriptions it was not sent for, and defeat a
// shared subscription's load balancing. Identifiers no route knows (from a
// session an earlier process made) fall back to topic matching.
func (r *router) route(m *Message, fallback Handler) {
	r.mu.RLock()
	var matched []Handler
	byID := len(m.SubscriptionIDs) > 0
	for _, rt := range r.routes {
		if rt.handler != nil && byID && rt.subID != 0 && slices.Contains(m.SubscriptionIDs, rt.subID) {
			matched = append(matched, rt.handler)
		}
	}
	if len(matched) == 0 {
		for _, rt := range r.routes {
			if rt.handler != nil && rt.subID == 0 && packet.MatchTopic(rt.filter, m.Topic) {
				matched = append(matched, rt.handler)
			}
		}
	}
	r.mu.RUnlock()
	if len(matched) == 0 && fallback != nil {
		fallback(m)
	}
	for _, h := range matched {
		h(m)
	}
}
