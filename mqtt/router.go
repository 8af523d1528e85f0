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
// none. A message that names subscription identifiers (v5) goes to the
// routes with those identifiers; otherwise filters are matched against the
// topic, with shared subscriptions matched by their inner filter.
func (r *router) route(m *Message, fallback Handler) {
	r.mu.RLock()
	var matched []Handler
	for _, rt := range r.routes {
		if rt.handler == nil {
			continue
		}
		var ok bool
		if rt.subID != 0 && len(m.SubscriptionIDs) > 0 {
			ok = slices.Contains(m.SubscriptionIDs, rt.subID)
		} else {
			ok = packet.MatchTopic(rt.filter, m.Topic)
		}
		if ok {
			matched = append(matched, rt.handler)
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
