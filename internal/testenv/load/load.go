// Package load publishes a generated fleet's messages to a broker, for
// benchmarks. It lives apart from testenv because it uses Herald's MQTT
// client, whose own tests use testenv.
package load

import (
	"context"
	"fmt"
	"os"
	"sync"

	"github.com/heraldiot/herald/mqtt"
)

// Publish publishes n messages, message(i) for each i, over a few pipelined
// connections, as a large fleet's devices would have over time. Messages
// are made as they go, so a million-device fleet's retained state never
// sits in the loader's memory at once.
func Publish(ctx context.Context, url string, n int, message func(i int) mqtt.Message) error {
	const conns, inflight = 4, 64
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, conns*inflight)
	for c := range conns {
		cl, err := mqtt.Dial(ctx, mqtt.Options{Servers: []string{url}, ClientID: fmt.Sprintf("loader-%d-%d", os.Getpid(), c)})
		if err != nil {
			return err
		}
		defer cl.Disconnect(context.Background())
		for w := range inflight {
			wg.Go(func() {
				for i := c*inflight + w; i < n; i += conns * inflight {
					m := message(i)
					if err := cl.Publish(ctx, &m); err != nil {
						errs <- fmt.Errorf("publish %s: %w", m.Topic, err)
						cancel()
						return
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	return <-errs
}
