package devicesim

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/heraldiot/herald/protocol"
)

// Fleet is a set of simulated devices started and stopped together.
type Fleet struct {
	Devices []*Device
}

// StartAll connects every device, parallel at a time (default 32), so a
// large fleet does not hit the broker with thousands of simultaneous
// handshakes.
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

// Stats is a snapshot of a fleet.
type Stats struct {
	Devices, Online int
	// Accepted, Downloading and Installing count devices working on an
	// update now, by the last state they reported; Rebooting those
	// rebooting into new firmware (or back into the old one).
	Accepted, Downloading, Installing, Rebooting int
	// Updates counts the update notices devices acted on since the fleet
	// started; Succeeded, Failed, Rejected and Canceled count outcomes.
	Updates                               int
	Succeeded, Failed, Rejected, Canceled int
	// Reboots and Churned count reboots and churn outages since the fleet started.
	Reboots, Churned int
	// Versions counts devices by the firmware they run.
	Versions map[string]int
}

// Stats returns a snapshot of the fleet.
func (f *Fleet) Stats() Stats {
	s := Stats{Devices: len(f.Devices), Versions: map[string]int{}}
	for _, d := range f.Devices {
		d.mu.Lock()
		c, cnt, version, rebooting := d.client, d.counts, d.version, d.rebooting
		var state protocol.State
		if d.job != nil {
			state = d.job.state
		}
		d.mu.Unlock()
		if c != nil && c.IsConnected() {
			s.Online++
		}
		switch {
		case rebooting:
			s.Rebooting++
		case state == protocol.StateAccepted:
			s.Accepted++
		case state == protocol.StateDownloading:
			s.Downloading++
		case state == protocol.StateInstalling:
			s.Installing++
		}
		s.Updates += cnt.updates
		s.Succeeded += cnt.succeeded
		s.Failed += cnt.failed
		s.Rejected += cnt.rejected
		s.Canceled += cnt.canceled
		s.Reboots += cnt.reboots
		s.Churned += cnt.churned
		s.Versions[version]++
	}
	return s
}

// Churn takes devices offline and brings them back, as flaky links and
// power cuts do in a real fleet.
type Churn struct {
	// PerMinute is how many devices go offline per minute, on average.
	PerMinute float64
	// Downtime is how long a device stays offline, on average; each outage
	// lasts between half and one and a half times it.
	Downtime time.Duration
	// Abrupt drops connections without DISCONNECT, so that the broker
	// publishes Wills (after the Will delay), instead of saying goodbye.
	Abrupt bool
	// Seed makes the choice of devices repeatable.
	Seed uint64
}

// Churn runs c until ctx ends. Only idle devices go offline: a device busy
// with an update stays connected until it is done. Devices offline when
// ctx ends stay offline.
func (f *Fleet) Churn(ctx context.Context, c Churn) {
	if c.PerMinute <= 0 || len(f.Devices) == 0 {
		<-ctx.Done()
		return
	}
	r := rand.New(rand.NewPCG(c.Seed, c.Seed^0x5851f42d4c957f2d))
	var wg sync.WaitGroup
	defer wg.Wait()
	mean := time.Duration(float64(time.Minute) / c.PerMinute)
	for {
		// Exponential gaps: outages arrive independently of each other.
		if !sleep(ctx, time.Duration(r.ExpFloat64()*float64(mean))) {
			return
		}
		for range 8 { // a few tries to find an idle device
			d := f.Devices[r.IntN(len(f.Devices))]
			if !d.GoOffline(ctx, c.Abrupt) {
				continue
			}
			down := time.Duration(float64(c.Downtime) * (0.5 + r.Float64()))
			wg.Add(1)
			go func() {
				defer wg.Done()
				if sleep(ctx, down) {
					d.comeBack(ctx)
				}
			}()
			break
		}
	}
}

// comeBack starts a device that churn took offline, retrying until it is
// connected, stopped, or ctx ends.
func (d *Device) comeBack(ctx context.Context) {
	for attempt := 0; ; attempt++ {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := d.Start(sctx)
		cancel()
		d.mu.Lock()
		gone := d.stopped
		d.mu.Unlock()
		if err == nil || gone {
			return
		}
		if !sleep(ctx, time.Duration(min(attempt+1, 10))*time.Second) {
			return
		}
	}
}
