package devicesim

import (
	"context"
	"errors"
	"sync"
)

// Fleet is a set of simulated devices started and stopped together.
type Fleet struct {
	Devices []*Device
}

// StartAll connects every device, a few at a time so a large fleet does
// not hit the broker with thousands of simultaneous handshakes.
func (f *Fleet) StartAll(ctx context.Context, parallel int) error {
	if parallel <= 0 {
		parallel = 32
	}
	sem := make(chan struct{}, parallel)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, d := range f.Devices {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := d.Start(ctx); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// StopAll shuts every device down gracefully.
func (f *Fleet) StopAll(ctx context.Context) {
	var wg sync.WaitGroup
	for _, d := range f.Devices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = d.Stop(ctx)
		}()
	}
	wg.Wait()
}
