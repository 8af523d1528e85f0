package main

import (
	"context"
	"errors"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/heraldiot/herald/mqtt"
	"github.com/heraldiot/herald/mqtt/packet"
)

// subFlags are mosquitto_sub's own flags.
type subFlags struct {
	conn               connFlags
	topics             []string // -t
	filterOut          []string // -T
	unsubscribe        []string // -U
	verbose            bool
	count              int // -C
	timeout            int // -W, seconds
	format             string
	noEOL              bool // -N
	noStale            bool // -R
	retainedOnly       bool
	removeRetained     bool
	exitAfterSubscribe bool // -E
	retainAsPublished  bool
}

func newSubCommand(e *env) *cobra.Command {
	f := &subFlags{}
	cmd := newSubcommand(e, "sub", "sub {-t topic ... | -L URL} [flags]",
		"Subscribe and print messages, as mosquitto_sub does", &f.conn,
		func(cmd *cobra.Command) error { return runSub(cmd.Context(), e, cmd.Flags(), f) })
	fs := cmd.Flags()
	fs.StringArrayVarP(&f.topics, "topic", "t", nil, "topic filter to subscribe to; may be repeated")
	fs.StringArrayVarP(&f.filterOut, "filter-out", "T", nil, "do not print topics matching this filter; may be repeated")
	fs.StringArrayVarP(&f.unsubscribe, "unsubscribe", "U", nil, "topic filter to unsubscribe from; may be repeated")
	fs.BoolVarP(&f.verbose, "verbose", "v", false, `print messages as "topic payload"`)
	fs.IntVarP(&f.count, "count", "C", 0, "exit after this many messages")
	fs.IntVarP(&f.timeout, "timeout", "W", 0, "exit with code 27 after this many seconds")
	fs.StringVarP(&f.format, "format", "F", "", "output format (%t topic, %p payload, ...; see mosquitto_sub(1))")
	fs.BoolVarP(&f.noEOL, "no-eol", "N", false, "do not print a newline after each message")
	fs.BoolVarP(&f.noStale, "no-retained", "R", false, "do not print stale (retained) messages")
	fs.BoolVar(&f.retainedOnly, "retained-only", false, "print only retained messages; exit at the first other one")
	fs.BoolVar(&f.removeRetained, "remove-retained", false, "clear each retained message received")
	fs.BoolVarP(&f.exitAfterSubscribe, "exit-after-subscribe", "E", false, "exit once the subscriptions are acknowledged")
	fs.BoolVar(&f.retainAsPublished, "retain-as-published", false, "v5: keep the retain flag as published")
	return cmd
}

// check applies mosquitto_sub's rules to the sub-only flags.
func (f *subFlags) check(fs *pflag.FlagSet, c *connection) (*printer, error) {
	if c.urlTopic != "" {
		f.topics = append([]string{c.urlTopic}, f.topics...)
	}
	if len(f.topics) == 0 {
		return nil, usageErrorf("You must specify a topic to subscribe to.")
	}
	for _, list := range []struct {
		what    string
		filters []string
	}{{"subscription", f.topics}, {"filter", f.filterOut}, {"unsubscribe", f.unsubscribe}} {
		for _, filter := range list.filters {
			if packet.ValidTopicFilter([]byte(filter)) != nil {
				return nil, usageErrorf("Invalid %s topic '%s', are all '+' and '#' wildcards correct?", list.what, filter)
			}
		}
	}
	if fs.Changed("count") && f.count < 1 {
		return nil, usageErrorf("Invalid message count \"%d\".", f.count)
	}
	if fs.Changed("timeout") && f.timeout < 1 {
		return nil, usageErrorf("Invalid timeout \"%d\".", f.timeout)
	}
	if f.noStale && f.retainedOnly {
		return nil, usageErrorf("Combining '-R' and '--retained-only' makes no sense.")
	}
	if f.retainAsPublished && c.version != mqtt.V5 {
		return nil, usageErrorf("--retain-as-published is only valid for MQTT v5 clients.")
	}
	p := &printer{verbose: f.verbose, eol: !f.noEOL}
	if fs.Changed("format") {
		var err error
		if p.format, err = compileFormat(f.format); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// runSub subscribes and prints messages until -C messages, -W seconds,
// --retained-only's first fresh message, or a signal.
func runSub(ctx context.Context, e *env, fs *pflag.FlagSet, f *subFlags) error {
	c, err := f.conn.resolve(fs)
	if err != nil {
		return err
	}
	p, err := f.check(fs, c)
	if err != nil {
		return err
	}
	sub := newSubscriber(e, f, p)
	s, err := dial(ctx, e, c, f.conn.debug, sub.handle)
	if err != nil {
		return err
	}
	sub.start(s)
	defer s.close()
	defer sub.stop()

	if done, err := subscribe(ctx, s, f, c); done || err != nil {
		return err
	}
	// The timeout counts from the SUBACK, so a slow broker or TLS
	// handshake does not eat into the time a script allows for messages.
	var timeout <-chan time.Time
	if f.timeout > 0 {
		t := time.NewTimer(time.Duration(f.timeout) * time.Second)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-sub.done:
	case <-ctx.Done():
	case <-timeout:
		sub.stop()
		sub.settle()
		return exitErrorf(exitTimeout, "Timed out")
	}
	sub.stop()
	sub.settle()
	return nil
}

// subscribe sends the SUBSCRIBE and any UNSUBSCRIBEs. done means the run
// is over: -E, or every subscription was refused.
func subscribe(ctx context.Context, s *session, f *subFlags, c *connection) (done bool, err error) {
	req := mqtt.SubscribeRequest{}
	for _, t := range f.topics {
		req.Subscriptions = append(req.Subscriptions, mqtt.Subscription{
			Filter: t, QoS: c.qos, RetainAsPublished: f.retainAsPublished,
		})
	}
	if c.version == mqtt.V5 {
		applySubscribe(f.conn.props, &req)
	}
	codes, err := s.client.SubscribeWith(ctx, req)
	var refused *mqtt.SubscribeError
	switch {
	case errors.As(err, &refused) && len(refused.Filters) == len(codes):
		// As mosquitto_sub: say so, disconnect, exit 0.
		return true, exitErrorf(exitOK, "All subscription requests were denied.")
	case errors.As(err, &refused):
		// Some filters were granted; mosquitto_sub carries on quietly.
	case ctx.Err() != nil:
		return true, nil
	case err != nil:
		return true, exitErrorf(exitFailure, "Error: %v", err)
	}
	for _, t := range f.unsubscribe {
		if err := s.client.Unsubscribe(ctx, t); err != nil && ctx.Err() == nil && !errors.As(err, &refused) {
			return true, exitErrorf(exitFailure, "Error: %v", err)
		}
	}
	return f.exitAfterSubscribe, nil
}
