package controllers

import (
	"fmt"

	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
)

// ShardLabel assigns a DeviceFleet and its FirmwareRollouts to a shard:
// managers started with --watch-label-selector serve only the objects it
// selects, so fleets spread over several manager Deployments (the
// sharding scheme Flux uses), each with its own leader election.
const ShardLabel = "sharding.herald.dev/key"

// ParseShardSelector reads --watch-label-selector: empty selects
// everything.
func ParseShardSelector(s string) (labels.Selector, error) {
	if s == "" {
		return labels.Everything(), nil
	}
	sel, err := labels.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("--watch-label-selector %q: %w", s, err)
	}
	return sel, nil
}

// ShardCache restricts a cache to the shard's DeviceFleets and
// FirmwareRollouts. The controllers see both only through the cache, so a
// manager never opens a broker session for another shard's fleet, and
// Secrets follow the fleets (they are read uncached, one by one).
func ShardCache(o cache.Options, sel labels.Selector) cache.Options {
	if sel == nil || sel.Empty() {
		return o
	}
	if o.ByObject == nil {
		o.ByObject = map[client.Object]cache.ByObject{}
	}
	for _, obj := range []client.Object{&v1.DeviceFleet{}, &v1.FirmwareRollout{}} {
		o.ByObject[obj] = cache.ByObject{Label: sel}
	}
	return o
}
