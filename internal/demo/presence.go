package demo

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/heraldiot/herald/mqtt"
	"github.com/heraldiot/herald/protocol"
)

// waitOnline waits until n devices under the topic root report online
// presence on the broker: what the operator will find when it subscribes.
// It gives up when sim exits.
func waitOnline(ctx context.Context, brokerURL, root string, n int, sim *Process) error {
	topics, err := protocol.NewTopics(root)
	if err != nil {
		return err
	}
	var (
		mu     sync.Mutex
		online = map[string]bool{}
		enough = make(chan struct{})
		once   sync.Once
	)
	handle := func(m *mqtt.Message) {
		id, _, err := topics.ParseDeviceTopic(m.Topic)
		if err != nil || protocol.IsWithdrawal(m.Payload) {
			return
		}
		p, err := protocol.ParsePresence(m.Payload)
		if err != nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if p.State == protocol.PresenceOnline {
			online[id] = true
		} else {
			delete(online, id)
		}
		if len(online) >= n {
			once.Do(func() { close(enough) })
		}
	}
	c, err := mqtt.Dial(ctx, mqtt.Options{
		Servers: []string{brokerURL}, ClientID: fmt.Sprintf("herald-demo-%d", time.Now().UnixNano()),
		CleanStart: true, HandlerQueue: 4096,
	})
	if err != nil {
		return fmt.Errorf("watch presence on %s: %w", brokerURL, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.Disconnect(dctx)
	}()
	if err := c.Subscribe(ctx, handle, mqtt.Subscription{Filter: topics.AllPresence(), QoS: mqtt.AtLeastOnce}); err != nil {
		return fmt.Errorf("watch presence on %s: %w", brokerURL, err)
	}
	select {
	case <-enough:
		return nil
	case <-sim.Done():
		return sim.Exited()
	case <-ctx.Done():
		return ctx.Err()
	}
}
