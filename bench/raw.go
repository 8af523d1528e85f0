package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/heraldiot/herald/mqtt/packet"
)

// rawConn is an MQTT connection with no client library: packets are
// encoded with Herald's codec and written to the socket as they are. It is
// what the limit of the benchmark and the QoS 0 counting subscriber use.
type rawConn struct {
	nc      net.Conn
	br      *bufio.Reader
	version packet.Version
	// receiveMaximum is the server's Receive Maximum (65535 under 3.1.1,
	// which has no such limit).
	receiveMaximum int
}

// dialRaw connects and exchanges CONNECT and CONNACK. keepAlive 0 turns
// keepalive off, so the server never expects a PINGREQ.
func dialRaw(ctx context.Context, addr string, v packet.Version, clientID string, keepAlive time.Duration) (*rawConn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &rawConn{nc: nc, br: bufio.NewReaderSize(nc, 256<<10), version: v, receiveMaximum: 65535}
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	connect := &packet.Connect{
		Version:    v,
		CleanStart: true,
		KeepAlive:  uint16(keepAlive / time.Second),
		ClientID:   []byte(clientID),
	}
	if err := c.write(connect); err != nil {
		nc.Close()
		return nil, err
	}
	p, err := c.read()
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("read CONNACK: %w", err)
	}
	ack, ok := p.(*packet.Connack)
	switch {
	case !ok:
		err = fmt.Errorf("server sent %s before CONNACK", p.Type())
	case ack.ReasonCode != packet.Success:
		err = fmt.Errorf("server refused the connection: %v", ack.ReasonCode)
	}
	if err != nil {
		nc.Close()
		return nil, err
	}
	if ack.Properties.Has(packet.PropReceiveMaximum) {
		c.receiveMaximum = int(ack.Properties.ReceiveMaximum)
	}
	_ = nc.SetDeadline(time.Time{})
	return c, nil
}

func (c *rawConn) write(p packet.Packet) error {
	b, err := p.Append(nil, c.version)
	if err != nil {
		return err
	}
	_, err = c.nc.Write(b)
	return err
}

// read decodes the next whole packet; it is for the handshakes, not the hot
// path, and allocates.
func (c *rawConn) read() (packet.Packet, error) {
	h, body, err := c.next()
	if err != nil {
		return nil, err
	}
	p, err := packet.New(h.Type)
	if err != nil {
		return nil, err
	}
	if err := p.Unmarshal(c.version, h.Flags, append([]byte(nil), body...)); err != nil {
		return nil, fmt.Errorf("%s: %w", h.Type, err)
	}
	return p, nil
}

// next reads one packet's fixed header and body. The body aliases the
// read buffer and is valid until the next call; bodies larger than the
// buffer are not expected from mosquitto here and are refused.
func (c *rawConn) next() (packet.Header, []byte, error) {
	var hdr [5]byte
	for i := range hdr {
		b, err := c.br.ReadByte()
		if err != nil {
			return packet.Header{}, nil, err
		}
		hdr[i] = b
		if i > 0 && b&0x80 == 0 {
			h, _, err := packet.DecodeHeader(hdr[:i+1], c.version, 0)
			if err != nil {
				return h, nil, err
			}
			body, err := c.br.Peek(h.Remaining)
			if err != nil {
				return h, nil, err
			}
			_, _ = c.br.Discard(h.Remaining)
			return h, body, nil
		}
	}
	return packet.Header{}, nil, packet.ErrVarIntTooLong
}

// disconnect sends a normal DISCONNECT and closes the socket.
func (c *rawConn) disconnect() error {
	err := c.write(&packet.Disconnect{})
	return errors.Join(err, c.nc.Close())
}

// encodePublishes encodes n PUBLISH packets of the same topic, payload and
// QoS back to back, with packet identifiers cycling through 1–65535. All
// have the same size, which it returns.
func encodePublishes(v packet.Version, qos byte, topic string, payload []byte, n int) ([]byte, int, error) {
	p := &packet.Publish{QoS: qos, Topic: []byte(topic), Payload: payload}
	if qos > 0 {
		p.PacketID = 1
	}
	one, err := p.Append(nil, v)
	if err != nil {
		return nil, 0, err
	}
	size := len(one)
	buf := make([]byte, 0, size*n)
	for i := range n {
		if qos > 0 {
			p.PacketID = uint16(i%65535 + 1)
		}
		if buf, err = p.Append(buf, v); err != nil {
			return nil, 0, err
		}
	}
	if len(buf) != size*n {
		return nil, 0, errors.New("PUBLISH packets differ in size")
	}
	return buf, size, nil
}

// rawBatch is how much the raw QoS 0 writer hands the socket per Write.
const rawBatch = 256 << 10

// rawPublisher is the limit the libraries are measured against: the same
// PUBLISH bytes any client would send, encoded before the clock starts and
// written in large batches, with the in-flight window honoured for QoS 1.
type rawPublisher struct {
	c       *rawConn
	cfg     *runConfig
	encoded []byte
	size    int
}

func dialRawPublisher(ctx context.Context, cfg *runConfig) (publisher, error) {
	c, err := dialRaw(ctx, cfg.addr, cfg.version, cfg.clientID, cfg.keepAlive)
	if err != nil {
		return nil, err
	}
	return &rawPublisher{c: c, cfg: cfg}, nil
}

// prepare encodes the run's packets; the child calls it before timing.
func (r *rawPublisher) prepare(n int) error {
	var err error
	r.encoded, r.size, err = encodePublishes(r.c.version, r.cfg.qos, r.cfg.topic, r.cfg.payload(), n)
	return err
}

func (r *rawPublisher) publish(n int) error {
	if len(r.encoded) != n*r.size {
		return errors.New("raw: prepare was not called for this n")
	}
	if r.cfg.qos == 0 {
		for off := 0; off < len(r.encoded); off += rawBatch {
			if _, err := r.c.nc.Write(r.encoded[off:min(off+rawBatch, len(r.encoded))]); err != nil {
				return err
			}
		}
		return nil
	}
	return r.publishQoS1(n)
}

// publishQoS1 keeps at most window packets unacknowledged. A reader
// goroutine counts PUBACKs a buffer-load at a time and wakes the writer,
// which then writes every packet the window has room for in one Write.
func (r *rawPublisher) publishQoS1(n int) error {
	window := min(r.cfg.window, r.c.receiveMaximum)
	var acked atomic.Int64
	wake := make(chan struct{}, 1)
	readErr := make(chan error, 1)
	go func() {
		readErr <- r.readAcks(n, &acked, wake)
	}()
	sent := 0
	for sent < n {
		room := window - (sent - int(acked.Load()))
		if room <= 0 {
			select {
			case <-wake:
				continue
			case err := <-readErr:
				return fmt.Errorf("reading PUBACKs after %d of %d: %w", acked.Load(), n, err)
			}
		}
		k := min(room, n-sent)
		if _, err := r.c.nc.Write(r.encoded[sent*r.size : (sent+k)*r.size]); err != nil {
			return err
		}
		sent += k
	}
	return <-readErr
}

// readAcks reads until n PUBACKs have arrived. It publishes the count after
// each run of packets already buffered, so one wake-up covers many acks.
func (r *rawPublisher) readAcks(n int, acked *atomic.Int64, wake chan<- struct{}) error {
	got := 0
	for got < n {
		h, body, err := r.c.next()
		if err != nil {
			return err
		}
		if h.Type != packet.TypePuback {
			return fmt.Errorf("unexpected %s", h.Type)
		}
		// v5: a reason code, if present, must be a success (< 0x80).
		if len(body) > 2 && body[2] >= 0x80 {
			return fmt.Errorf("PUBACK reason code 0x%02X", body[2])
		}
		got++
		if r.c.br.Buffered() < 4 || got == n {
			acked.Store(int64(got))
			select {
			case wake <- struct{}{}:
			default:
			}
		}
	}
	return nil
}

// fence writes one QoS 1 PUBLISH and reads until its PUBACK; it is used
// after QoS 0 runs, when no reader goroutine is running.
func (r *rawPublisher) echo(context.Context) error {
	return errors.New("the raw writer takes no part in the idle test")
}

func (r *rawPublisher) fence() error {
	p := &packet.Publish{QoS: 1, PacketID: 1, Topic: []byte(r.cfg.topic), Payload: r.cfg.payload()}
	if err := r.c.write(p); err != nil {
		return err
	}
	for {
		h, body, err := r.c.next()
		if err != nil {
			return err
		}
		if h.Type == packet.TypePuback && len(body) >= 2 && body[0] == 0 && body[1] == 1 {
			return nil
		}
	}
}

func (r *rawPublisher) close() error { return r.c.disconnect() }

// subscriber counts the PUBLISH packets a raw connection receives, which is
// how a QoS 0 run learns that the broker has accepted and routed every
// message. It runs in the driver, so its CPU is not charged to the client.
type subscriber struct {
	c      *rawConn
	want   int
	count  atomic.Int64
	doneAt time.Time // when the want-th message arrived; valid after done
	done   chan struct{}
	err    error // why reading stopped early; valid after ended
	ended  chan struct{}
}

func subscribe(ctx context.Context, addr, topic string, want int) (*subscriber, error) {
	c, err := dialRaw(ctx, addr, packet.V311, "bench-counter", 0)
	if err != nil {
		return nil, err
	}
	req := &packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: []byte(topic)}}}
	if err := c.write(req); err != nil {
		c.nc.Close()
		return nil, err
	}
	p, err := c.read()
	if err == nil {
		if ack, ok := p.(*packet.Suback); !ok || len(ack.ReasonCodes) != 1 || ack.ReasonCodes[0] >= 0x80 {
			err = fmt.Errorf("subscribe %q refused: %v", topic, p)
		}
	}
	if err != nil {
		c.nc.Close()
		return nil, err
	}
	s := &subscriber{c: c, want: want, done: make(chan struct{}), ended: make(chan struct{})}
	go s.run()
	return s, nil
}

func (s *subscriber) run() {
	defer close(s.ended)
	for {
		h, _, err := s.c.next()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.EOF) {
				s.err = err
			}
			return
		}
		if h.Type != packet.TypePublish {
			continue
		}
		if s.count.Add(1) == int64(s.want) {
			s.doneAt = time.Now()
			close(s.done)
		}
	}
}

// wait returns when every message has arrived, or fails when none has
// arrived for stall: mosquitto drops QoS 0 messages it cannot queue, and a
// lost message must show as a failed run, not a hang.
func (s *subscriber) wait(stall time.Duration) error {
	last, lastChange := int64(-1), time.Now()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-s.done:
			return nil
		case <-s.ended:
			return fmt.Errorf("subscriber connection ended after %d of %d messages: %v", s.count.Load(), s.want, s.err)
		case now := <-tick.C:
			if n := s.count.Load(); n != last {
				last, lastChange = n, now
			} else if now.Sub(lastChange) > stall {
				return fmt.Errorf("only %d of %d messages arrived (none for %s)", n, s.want, stall)
			}
		}
	}
}

func (s *subscriber) close() {
	_ = s.c.disconnect()
	<-s.ended
}
