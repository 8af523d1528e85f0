package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/heraldiot/herald/mqtt"
	"github.com/heraldiot/herald/mqtt/packet"
)

// pubFlags are mosquitto_pub's own flags.
type pubFlags struct {
	conn        connFlags
	topic       string
	message     string
	file        string
	stdinLines  bool // -l
	stdinFile   bool // -s
	null        bool // -n
	retain      bool
	repeat      int
	repeatDelay float64
}

func newPubCommand(e *env) *cobra.Command {
	f := &pubFlags{}
	cmd := newSubcommand(e, "pub", "pub {-t topic | -L URL} {-m message | -f file | -l | -s | -n} [flags]",
		"Publish a message, as mosquitto_pub does", &f.conn,
		func(cmd *cobra.Command) error { return runPub(cmd.Context(), e, cmd, f) })
	fs := cmd.Flags()
	fs.StringVarP(&f.topic, "topic", "t", "", "topic to publish to")
	fs.StringVarP(&f.message, "message", "m", "", "message payload")
	fs.StringVarP(&f.file, "file", "f", "", "send the contents of a file as the message")
	fs.BoolVarP(&f.stdinLines, "stdin-line", "l", false, "send each line read from stdin as a message")
	fs.BoolVarP(&f.stdinFile, "stdin-file", "s", false, "send all of stdin as one message")
	fs.BoolVarP(&f.null, "null-message", "n", false, "send a zero length message")
	fs.BoolVarP(&f.retain, "retain", "r", false, "retain the message")
	fs.IntVar(&f.repeat, "repeat", 1, "with -m, -f, -s or -n, publish the message this many times")
	fs.Float64Var(&f.repeatDelay, "repeat-delay", 0, "seconds to wait between repeated messages")
	return cmd
}

// runPub publishes as mosquitto_pub: connect, publish, wait until every
// message is through its QoS flow (a QoS 0 one: written), disconnect.
func runPub(ctx context.Context, e *env, cmd *cobra.Command, f *pubFlags) error {
	c, err := f.conn.resolve(cmd.Flags())
	if err != nil {
		return err
	}
	if err := f.check(cmd, c); err != nil {
		return err
	}
	var payload []byte
	switch {
	case cmd.Flags().Changed("message"):
		payload = []byte(f.message)
	case f.file != "":
		if payload, err = os.ReadFile(f.file); err != nil {
			return &exitError{code: exitFailure, lines: []string{
				fmt.Sprintf("Error: Unable to open file %q.", f.file), fmt.Sprintf("Error loading input file %q.", f.file)}}
		}
	case f.stdinFile:
		if payload, err = io.ReadAll(e.stdin); err != nil {
			return exitErrorf(exitFailure, "Error loading input from stdin: %v.", err)
		}
	}

	s, err := dial(ctx, e, c, f.conn.debug, nil)
	if err != nil {
		return err
	}
	defer s.close()
	p := &publisher{s: s, e: e, f: f, qos: c.qos, topic: f.topic}
	if p.topic == "" {
		p.topic = c.urlTopic
	}
	if c.version == mqtt.V5 {
		p.props = f.conn.props
	}
	_, lost := s.tap.counts()
	if f.stdinLines {
		err = p.publishLines(ctx, e.stdin)
	} else {
		err = p.publishRepeated(ctx, payload)
	}
	if err != nil {
		return err
	}
	// QoS 0 publishes return once queued; the DISCONNECT must not go out
	// before them, or the broker would drop them.
	wctx, cancel := context.WithTimeout(ctx, disconnectTimeout)
	defer cancel()
	_ = s.tap.awaitWritten(wctx, p.sent, lost)
	return nil
}

// check applies mosquitto_pub's rules about topic and message flags.
func (f *pubFlags) check(cmd *cobra.Command, c *connection) error {
	fs := cmd.Flags()
	modes := 0
	for _, set := range []bool{fs.Changed("message"), f.file != "", f.stdinLines, f.stdinFile, f.null} {
		if set {
			modes++
		}
	}
	if modes > 1 {
		return usageErrorf("Only one type of message can be sent at once.")
	}
	topic := f.topic
	if topic == "" {
		topic = c.urlTopic
	}
	if topic == "" || modes == 0 {
		return usageErrorf("Both topic and message must be supplied.")
	}
	if packet.ValidTopicName([]byte(topic)) != nil {
		return usageErrorf("Invalid publish topic '%s', does it contain '+' or '#'?", topic)
	}
	if f.repeat < 1 {
		return usageErrorf("--repeat argument must be >0.")
	}
	if f.repeatDelay < 0 {
		return usageErrorf("--repeat-delay argument must be >=0.0.")
	}
	return nil
}

// publisher sends the messages of one mqttc pub run.
type publisher struct {
	s     *session
	e     *env
	f     *pubFlags
	qos   mqtt.QoS
	topic string
	props []property
	sent  int // messages handed to the client, which numbers them as mosquitto does
}

// publishRepeated sends payload --repeat times, --repeat-delay apart.
func (p *publisher) publishRepeated(ctx context.Context, payload []byte) error {
	delay := time.Duration(p.f.repeatDelay * float64(time.Second))
	for i := range p.f.repeat {
		if i > 0 && delay > 0 {
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil
			}
		}
		if err := p.publish(ctx, payload); err != nil {
			return err
		}
	}
	return nil
}

// publishLines sends every line of r as a message, as it arrives. The line
// ends are not sent; a last line without one is.
func (p *publisher) publishLines(ctx context.Context, r io.Reader) error {
	lines := make(chan []byte)
	readErr := make(chan error, 1)
	// A blocked read cannot be interrupted, so reading has its own
	// goroutine and a signal can still end the run; readCtx releases it
	// when the run ends first.
	readCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		br := bufio.NewReader(r)
		for {
			line, err := br.ReadBytes('\n')
			if len(line) > 0 && line[len(line)-1] == '\n' {
				line = line[:len(line)-1]
			} else if len(line) == 0 && err != nil {
				readErr <- err
				return
			}
			select {
			case lines <- line:
			case <-readCtx.Done():
				return
			}
			if err != nil {
				readErr <- err
				return
			}
		}
	}()
	for {
		select {
		case line := <-lines:
			if err := p.publish(ctx, line); err != nil {
				return err
			}
		case err := <-readErr:
			if errors.Is(err, io.EOF) {
				return nil
			}
			return exitErrorf(exitFailure, "Error reading stdin: %v", err)
		case <-ctx.Done():
			return nil
		}
	}
}

// publish sends one message and waits for its QoS flow. A v5 refusal is a
// warning, as with mosquitto_pub, not a failure.
func (p *publisher) publish(ctx context.Context, payload []byte) error {
	m := &mqtt.Message{Topic: p.topic, Payload: payload, QoS: p.qos, Retain: p.f.retain}
	applyPublish(p.props, m)
	p.sent++
	err := p.s.client.Publish(ctx, m)
	var refused *mqtt.PublishError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &refused):
		if !p.e.quiet {
			fmt.Fprintf(p.e.stderr, "Warning: Publish %d failed: %s.\n", p.sent, reasonText(byte(refused.Code)))
		}
		return nil
	case ctx.Err() != nil:
		return nil
	}
	return exitErrorf(exitFailure, "Error: %v", err)
}
