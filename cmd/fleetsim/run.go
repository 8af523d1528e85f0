package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/heraldiot/herald/internal/devicesim"
	"github.com/heraldiot/herald/mqtt"
	"github.com/heraldiot/herald/protocol"
)

// run simulates the fleet until ctx ends or --duration passes.
func run(ctx context.Context, cmd *cobra.Command, o *options, out io.Writer) error {
	profile, n, err := o.fleet()
	if err != nil {
		return err
	}
	specs := profile.Specs(n)
	if o.list {
		return list(out, specs)
	}
	version, err := o.mqttVersion()
	if err != nil {
		return err
	}
	useTLS, err := o.brokerTLS()
	if err != nil {
		return err
	}
	if !useTLS && (o.cafile != "" || o.cert != "" || o.insecure) {
		return fmt.Errorf("--cafile, --cert, --key and --insecure need a TLS broker URL (tls://, ssl:// or mqtts://)")
	}
	configure := func(*mqtt.Options) {}
	if useTLS || o.username != "" {
		var tc *tls.Config
		if useTLS {
			if tc, err = o.tlsConfig(); err != nil {
				return err
			}
		}
		configure = func(opts *mqtt.Options) {
			opts.TLSConfig = tc
			opts.Username, opts.Password = o.username, []byte(o.password)
		}
	}
	// One socket per device, a few for the process itself and HTTP fetches.
	if err := raiseOpenFiles(uint64(n) + 256); err != nil {
		return err
	}

	behavior := profile.Behavior.Behavior()
	if o.fetch {
		behavior.Fetch = devicesim.HTTPFetch(&http.Client{
			Timeout:   2 * time.Minute,
			Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: 64},
		})
	}
	fleet := &devicesim.Fleet{}
	for _, s := range specs {
		d, err := devicesim.New(devicesim.Config{
			ID: s.ID, Model: s.Model, FirmwareVersion: s.FirmwareVersion, HardwareRevision: s.HardwareRevision,
			Labels: s.Labels, Broker: o.broker, Version: version, TopicRoot: profile.TopicRoot,
			KeepAlive: o.keepAlive, WillDelay: o.willDelay, PersistentSession: !o.cleanSession,
			Behavior: behavior, MQTT: configure,
		})
		if err != nil {
			return err
		}
		fleet.Devices = append(fleet.Devices, d)
	}

	start := time.Now()
	fmt.Fprintf(out, "fleetsim: connecting %d devices to %s (MQTT %s, topic root %s)\n", n, o.broker, versionName(version), profile.TopicRoot)
	if err := fleet.StartAll(ctx, o.parallel); err != nil {
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		fleet.StopAll(stopCtx)
		cancel()
		if ctx.Err() != nil {
			return nil // interrupted while connecting
		}
		return startError(err)
	}
	fmt.Fprintf(out, "fleetsim: %d devices online in %s: %s\n", n, time.Since(start).Round(time.Millisecond), describe(specs))

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if o.duration > 0 {
		runCtx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	var wg sync.WaitGroup
	if o.churn > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fleet.Churn(runCtx, devicesim.Churn{PerMinute: o.churn, Downtime: o.churnDowntime, Abrupt: o.churnAbrupt, Seed: 1})
		}()
	}
	progress(runCtx, out, fleet, start, o.progress)
	wg.Wait()

	stopCtx, stop := context.WithTimeout(context.Background(), 15*time.Second)
	defer stop()
	at := fleet.Stats()
	fleet.StopAll(stopCtx)
	fmt.Fprintln(out, summary(at, time.Since(start)))
	return nil
}

func versionName(v mqtt.Version) string {
	if v == mqtt.V311 {
		return "3.1.1"
	}
	return "5"
}

// startError summarises the devices that could not connect.
func startError(err error) error {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	msg := fmt.Sprintf("%d devices could not connect; the first: %v", len(errs), errs[0])
	return errors.New(msg)
}

// list prints the fleet without connecting it.
func list(out io.Writer, specs []devicesim.Spec) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tMODEL\tVERSION\tCOHORT\tHARDWARE\tLABELS")
	for _, s := range specs {
		var labels []string
		for _, k := range slices.Sorted(maps.Keys(s.Labels)) {
			labels = append(labels, k+"="+s.Labels[k])
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.Model, s.FirmwareVersion,
			protocol.CohortSegment(protocol.Cohort(s.ID)), s.HardwareRevision, strings.Join(labels, ","))
	}
	return tw.Flush()
}

// describe counts a fleet by model and version: "th-sensor 200 (1.8.2 ×100, 1.9.1 ×100), ...".
func describe(specs []devicesim.Spec) string {
	var parts []string
	for _, m := range devicesim.CountByModel(specs) {
		parts = append(parts, fmt.Sprintf("%s %d (%s)", m.Model, m.Devices, devicesim.FormatCounts(m.Versions, 0)))
	}
	return strings.Join(parts, ", ")
}

// progress prints a line whenever the fleet changed, at most once per
// interval, until ctx ends.
func progress(ctx context.Context, out io.Writer, fleet *devicesim.Fleet, start time.Time, interval time.Duration) {
	if interval <= 0 {
		<-ctx.Done()
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	last := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		line := progressLine(fleet.Stats())
		if line == last {
			continue
		}
		last = line
		fmt.Fprintf(out, "[%6s] %s\n", time.Since(start).Round(time.Second), line)
	}
}

func progressLine(s devicesim.Stats) string {
	return fmt.Sprintf("online %d/%d | updating: accepted %d, downloading %d, installing %d, rebooting %d | reported: succeeded %d, failed %d, rejected %d, canceled %d | firmware %s",
		s.Online, s.Devices, s.Accepted, s.Downloading, s.Installing, s.Rebooting,
		s.Succeeded, s.Failed, s.Rejected, s.Canceled, devicesim.FormatCounts(s.Versions, 4))
}

// summary is the line printed at exit.
func summary(s devicesim.Stats, ran time.Duration) string {
	return fmt.Sprintf("fleetsim: ran %s with %d devices, %d online at the end; updates succeeded %d, failed %d, rejected %d, canceled %d; %d reboots, %d churn outages; firmware %s; %s",
		ran.Round(time.Second), s.Devices, s.Online, s.Succeeded, s.Failed, s.Rejected, s.Canceled,
		s.Reboots, s.Churned, devicesim.FormatCounts(s.Versions, 6), memory())
}

// memory describes the process's memory: peak resident set from /proc
// where there is one, else what the Go runtime holds.
func memory() string {
	if f, err := os.Open("/proc/self/status"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
				fields := strings.Fields(rest)
				if kb, err := strconv.Atoi(fields[0]); err == nil {
					return fmt.Sprintf("peak memory %d MiB", kb/1024)
				}
			}
		}
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return fmt.Sprintf("memory %d MiB", m.Sys>>20)
}
