package mqtt

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/heraldiot/herald/mqtt/packet"
)

// Handler receives messages. It runs on the client's dispatcher goroutine,
// one message at a time, so it should hand long work elsewhere; the message
// is the handler's to keep. It may call any method of the client,
// Disconnect included, but must not wait for another message of the same
// client (a Requester.Request of its own, say): none is delivered until it
// returns.
type Handler func(*Message)

// router sends each received message to the handlers of the subscriptions
// it matches.
type router struct {
	mu        sync.RWMutex
	routes    []route
	lastOwner uint64
	// manualRoutes counts routes with manual acknowledgement, so the
	// reader looks for them only when there are some.
	manualRoutes atomic.Int32
}

type route struct {
	filter  string
	subID   uint32
	handler Handler
	// owner names the Subscribe call that made the route: a message whose
	// topic several of one call's filters match reaches its handler once.
	owner uint64
	// manual: the handler acknowledges with Message.Ack
	// (SubscribeRequest.ManualAck).
	manual bool
}

// newOwner returns a name for one Subscribe call's routes.
func (r *router) newOwner() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lastOwner++
	return r.lastOwner
}

// add routes filter to h for the Subscribe call owner, replacing an
// earlier route for the same filter.
func (r *router) add(filter string, subID uint32, h Handler, owner uint64, manual bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rt := route{filter: filter, subID: subID, handler: h, owner: owner, manual: manual}
	if manual {
		r.manualRoutes.Add(1)
	}
	for i := range r.routes {
		if r.routes[i].filter == filter {
			if r.routes[i].manual {
				r.manualRoutes.Add(-1)
			}
			r.routes[i] = rt
			return
		}
	}
	r.routes = append(r.routes, rt)
}

func (r *router) remove(filter string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.routes = slices.DeleteFunc(r.routes, func(rt route) bool {
		if rt.filter != filter {
			return false
		}
		if rt.manual {
			r.manualRoutes.Add(-1)
		}
		return true
	})
}

// route calls the handler of every Subscribe call the message matches,
// once per call however many of its filters match (a server that delivers
// one copy for overlapping subscriptions [MQTT-3.3.4-2] must not make it
// two); fallback gets messages that match none.
//
// A server sends the identifiers of the subscriptions a message was
// published for [MQTT-3.3.4-3], so a message naming identifiers goes to
// the routes with those identifiers, and one naming none to the routes
// without an identifier whose filter matches its topic (shared
// subscriptions by their inner filter). mosquitto sends one copy per
// matching subscription, each with its own identifiers; routing a copy by
// topic to every matching handler would hand it to subscriptions it was
// not sent for, and defeat a shared subscription's load balancing.
// Identifiers no route knows (from a session an earlier process made) fall
// back to topic matching.
func (r *router) route(m *Message, fallback Handler) {
	var buf [4]route
	r.mu.RLock()
	matched := r.matchLocked(m, buf[:0])
	r.mu.RUnlock()
	if len(matched) == 0 && fallback != nil {
		fallback(m)
	}
	for _, rt := range matched {
		rt.handler(m)
	}
}

// matchLocked appends to matched the routes whose handlers route calls
// for m. r.mu is held.
func (r *router) matchLocked(m *Message, matched []route) []route {
	byID := len(m.SubscriptionIDs) > 0
	for _, rt := range r.routes {
		if rt.handler != nil && byID && rt.subID != 0 && slices.Contains(m.SubscriptionIDs, rt.subID) {
			matched = addOnce(matched, rt)
		}
	}
	if len(matched) == 0 {
		for _, rt := range r.routes {
			if rt.handler != nil && rt.subID == 0 && packet.MatchTopic(rt.filter, m.Topic) {
				matched = addOnce(matched, rt)
			}
		}
	}
	return matched
}

// manual reports whether route would hand m to a handler that
// acknowledges by hand.
func (r *router) manual(m *Message) bool {
	var buf [4]route
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.ContainsFunc(r.matchLocked(m, buf[:0]), func(rt route) bool { return rt.manual })
}

// delivers reports whether route would hand m to any handler, given
// whether there is a fallback.
func (r *router) delivers(m *Message, fallback bool) bool {
	if fallback {
		return true
	}
	var buf [4]route
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.matchLocked(m, buf[:0])) > 0
}

// addOnce appends rt unless a route of the same Subscribe call is there.
func addOnce(matched []route, rt route) []route {
	for _, seen := range matched {
		if seen.owner == rt.owner {
			return matched
		}
	}
	return append(matched, rt)
}
