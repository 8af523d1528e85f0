package mqtt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldiot/herald/mqtt/packet"
)

// conn is one network connection of a client's session: a reader goroutine
// that decodes packets, and a writer goroutine that batches whatever callers
// appended to the write buffer into as few writes as possible. The writer
// runs only while there is writing to do, and keepalive is a timer, so an
// idle connection costs one parked goroutine.
type conn struct {
	c       *Client
	nc      net.Conn
	rb      *readBuffer // the reader's alone
	version Version
	gen     uint64 // which connection of the session this is
	server  string // the URL it was dialed with, for resolving redirects
	// ctx is the lifetime of the client's start that made the connection
	// (Client.ctx when it was installed): what the connection's goroutines
	// and its supervisor stop with.
	ctx context.Context

	// Negotiated at CONNACK.
	keepAlive       time.Duration
	pingTimeout     time.Duration
	early           time.Duration // how much earlier than due keepalive steps are taken
	serverMaxPacket uint32
	since           time.Time // when the connection was made

	// Topic alias tables of this connection: outAliases (nil when
	// automatic aliases are off) and callerAliases (made by the first
	// Message.TopicAlias) are used by publishers under Client.mu,
	// inAliases by the reader alone.
	outAliases    *outboundAliases
	callerAliases callerAliases
	inAliases     inboundAliases

	// The acknowledgements owed for received messages (ack.go).
	acks ackQueue

	// Re-authentication: authActive is set while an exchange runs, and
	// the reader passes it the server's AUTH packets through authSteps
	// (made only when an Authenticator is configured).
	authActive atomic.Bool
	authSteps  chan authStep

	wmu       sync.Mutex
	wbuf      []byte      // packets waiting for the writer
	spare     []byte      // the buffer the writer last wrote, for reuse
	closed    bool        // no more packets are taken: the connection ended or is ending
	writing   bool        // a writer goroutine is running
	writer    func()      // writeLoop as a value made once: starting one allocates nothing
	keepalive *time.Timer // nil without keepalive

	// The bounds of wbuf (see Options.MaxWriteBuffer), under wmu. Bytes
	// counted against maxWrite are len(wbuf)-exempt: exempt is what the
	// session resend queued before the start, which leaves with the first
	// write. maxWrite is 0, no bound, until start. QoS 0 publishers wait
	// for the writer from drainAt on. peak is the most ever counted.
	maxWrite, drainAt int
	exempt, peak      int

	drained   chan struct{} // writer finished a write; made by the first publisher to wait
	finishing atomic.Bool   // DISCONNECT is queued: flush, then close

	lastSend      atomic.Int64 // unix nanoseconds
	lastRecv      atomic.Int64
	pingSent      atomic.Int64 // when the outstanding PINGREQ went out, 0 if none
	readerWaiting atomic.Bool  // the reader waits for room in the handler queue

	// inboundUnacked counts QoS 1 and 2 messages received on this
	// connection and not yet answered with PUBACK or PUBCOMP, against our
	// Receive Maximum.
	inboundUnacked atomic.Int32

	closeOnce sync.Once
	done      chan struct{} // closed when the connection has ended
	err       error         // why it ended; valid after done
	wg        sync.WaitGroup
}

// maxBuffered is how much a writer buffer may hold before QoS 0 publishers
// wait for the socket to drain it, unless half of Options.MaxWriteBuffer is
// less.
const maxBuffered = 4 << 20

func newConn(c *Client, nc net.Conn, rb *readBuffer) *conn {
	now := time.Now().UnixNano()
	cn := &conn{
		c:       c,
		nc:      nc,
		rb:      rb,
		version: c.opts.Version,
		drainAt: max(min(maxBuffered, c.opts.MaxWriteBuffer/2), 1),
		done:    make(chan struct{}),
	}
	cn.writer = cn.writeLoop
	if c.opts.Authenticator != nil {
		cn.authSteps = make(chan authStep, 1)
	}
	cn.lastSend.Store(now)
	cn.lastRecv.Store(now)
	return cn
}

// start runs the reader, the keepalive timer, and a writer if something
// was queued before the start (a resumed session's packets).
func (cn *conn) start() {
	cn.since = time.Now()
	cn.wg.Add(1)
	go cn.readLoop()
	cn.wmu.Lock()
	defer cn.wmu.Unlock()
	// The session resent by install is the session's own state, which the
	// Store holds anyway; bounding it would fail every reconnect alike.
	cn.exempt = len(cn.wbuf)
	cn.maxWrite = cn.c.opts.MaxWriteBuffer
	if cn.keepAlive > 0 {
		cn.early = max(min(cn.keepAlive, cn.pingTimeout)/8, 10*time.Millisecond)
		cn.keepalive = time.AfterFunc(cn.keepAlive-cn.early, cn.keepAliveDue)
	}
	if len(cn.wbuf) > 0 {
		cn.wakeWriterLocked()
	}
}

// close ends the connection once, recording why, and hands the session to
// the client's supervisor.
func (cn *conn) close(err error) {
	cn.closeOnce.Do(func() {
		cn.err = err
		cn.wmu.Lock()
		cn.closed = true
		if cn.keepalive != nil {
			cn.keepalive.Stop()
		}
		cn.wmu.Unlock()
		cn.nc.Close()
		close(cn.done)
		cn.c.connectionEnded(cn)
	})
}

// closeWithReason sends a v5 DISCONNECT carrying the reason for err, then
// closes. The DISCONNECT goes out in one Write, which the runtime never
// interleaves with the writer's.
func (cn *conn) closeWithReason(err error) {
	if cn.version == V5 {
		d := packet.Disconnect{ReasonCode: packet.ReasonOf(err)}
		if !d.ReasonCode.IsError() {
			d.ReasonCode = packet.UnspecifiedError
		}
		if b, e := d.Append(nil, V5); e == nil {
			_ = cn.nc.SetWriteDeadline(time.Now().Add(time.Second))
			if n, _ := cn.nc.Write(b); n == len(b) {
				cn.c.countDirect(true, packet.TypeDisconnect, n)
			}
		}
	}
	cn.close(err)
}

// wakeWriterLocked starts a writer unless one runs, which will find what
// was appended when its write returns. The caller holds wmu, which orders
// the start before close, so the wait for the connection's goroutines
// sees it.
func (cn *conn) wakeWriterLocked() {
	if cn.writing {
		return
	}
	cn.writing = true
	cn.wg.Add(1)
	go cn.writer()
}

// admitLocked reports whether n more bytes may be queued, keeping the
// peak. A packet is refused only when something else is queued, so one
// larger than the bound still goes out on its own. The caller holds wmu.
func (cn *conn) admitLocked(n int) bool {
	if cn.maxWrite == 0 {
		return true // not started: install queues the session's resend
	}
	queued := len(cn.wbuf) - cn.exempt
	if queued > 0 && queued+n > cn.maxWrite {
		return false
	}
	if queued+n > cn.peak {
		cn.peak = queued + n
		cn.c.stats.noteWriteBuffer(cn.peak)
	}
	return true
}

// overflowLocked gives up on a connection whose server has stopped
// reading, when admitLocked refused n bytes: it takes no more packets from
// now on, so the buffer stops where it is. The caller closes the connection
// with the returned error after releasing wmu. Sending a DISCONNECT first
// would be pointless: it would queue behind what the server is not reading.
func (cn *conn) overflowLocked(n int) error {
	cn.closed = true
	cn.c.stats.writeBufferFull.Add(1)
	return fmt.Errorf("%w: %d bytes queued, %d more would pass MaxWriteBuffer (%d)",
		ErrWriteBufferFull, len(cn.wbuf)-cn.exempt, n, cn.maxWrite)
}

// closeIfOverflowed closes the connection when err is from overflowLocked.
// The caller must not hold wmu.
func (cn *conn) closeIfOverflowed(err error) {
	if errors.Is(err, ErrWriteBufferFull) {
		cn.close(err)
	}
}

// writeRaw appends already-encoded bytes. It reports false when the
// connection has ended, or ends it because the server is not reading.
func (cn *conn) writeRaw(b []byte) bool {
	cn.wmu.Lock()
	if cn.closed {
		cn.wmu.Unlock()
		return false
	}
	if !cn.admitLocked(len(b)) {
		err := cn.overflowLocked(len(b))
		cn.wmu.Unlock()
		cn.close(err)
		return false
	}
	cn.wbuf = append(cn.wbuf, b...)
	cn.wakeWriterLocked()
	cn.wmu.Unlock()
	cn.c.stats.sent.add(packet.Type(b[0]>>4), len(b))
	return true
}

// writeAck queues a PUBACK, PUBREC, PUBREL or PUBCOMP in its short form.
func (cn *conn) writeAck(t packet.Type, id uint16) bool {
	var b [4]byte
	b[0] = byte(t) << 4
	if t == packet.TypePubrel {
		b[0] |= 0x02
	}
	b[1], b[2], b[3] = 2, byte(id>>8), byte(id)
	return cn.writeRaw(b[:])
}

// writeAckReason queues an ack with a v5 reason code (the short form under 3.1.1).
func (cn *conn) writeAckReason(t packet.Type, id uint16, code ReasonCode) bool {
	if cn.version != V5 || code == packet.Success {
		return cn.writeAck(t, id)
	}
	b, err := (&packet.Ack{PacketType: t, PacketID: id, ReasonCode: code}).Append(nil, V5)
	if err != nil {
		return false
	}
	return cn.writeRaw(b)
}

// appendLocked encodes p into the write buffer, enforcing the server's
// Maximum Packet Size and our MaxWriteBuffer. On success encoded holds the
// packet's bytes, valid until the caller releases wmu; the caller holds wmu
// and wakes the writer. An error wrapping ErrWriteBufferFull means the
// connection takes no more packets, and the caller must pass it to
// closeIfOverflowed once it has released wmu.
func (cn *conn) appendLocked(p packet.Packet) (encoded []byte, err error) {
	start := len(cn.wbuf)
	buf, err := p.Append(cn.wbuf, cn.version)
	if err != nil {
		cn.wbuf = buf[:start]
		return nil, err
	}
	if cn.serverMaxPacket > 0 && len(buf)-start > int(cn.serverMaxPacket) {
		cn.wbuf = buf[:start]
		return nil, ErrPacketTooLarge
	}
	cn.wbuf = buf[:start] // admitLocked counts what was queued before p
	if !cn.admitLocked(len(buf) - start) {
		return nil, cn.overflowLocked(len(buf) - start)
	}
	cn.wbuf = buf
	cn.c.stats.sent.add(p.Type(), len(buf)-start)
	return buf[start:], nil
}

// appendPublishLocked is appendLocked for a PUBLISH, replacing its topic by
// an alias: the caller's choice (callerAlias, checked by checkPublish), or
// one assigned when outbound aliases are on. aliased reports that encoded
// is not the form to keep in the session store: aliases die with the
// connection, so a resend must carry the topic. The caller holds c.mu and wmu.
func (cn *conn) appendPublishLocked(p *packet.Publish, callerAlias uint16) (encoded []byte, aliased bool, err error) {
	topic := p.Topic
	var alias uint16
	var known bool
	switch {
	case callerAlias != 0:
		alias, known = callerAlias, cn.callerAliases.use(callerAlias, topic)
	case cn.outAliases != nil:
		alias, known = cn.outAliases.lookup(topic)
	default:
		encoded, err = cn.appendLocked(p)
		return encoded, false, err
	}
	p.Properties.TopicAlias = alias
	if known {
		p.Topic = nil
	}
	encoded, err = cn.appendLocked(p)
	p.Topic, p.Properties.TopicAlias = topic, 0
	if err != nil && !known {
		// Not sent, so not defined at the server either.
		if callerAlias != 0 {
			cn.callerAliases.forget(alias)
		} else {
			cn.outAliases.forget(topic)
		}
	}
	return encoded, true, err
}

// queuePublish queues p with its topic alias (appendPublishLocked) and
// wakes the writer. keep, when not nil, is given the bytes to remember
// for a resend before any writer can send them, and its error is
// returned; the caller holds Client.mu, which orders keep with a
// reconnect's resend. buffered is the write buffer's length afterwards,
// for waitDrained. It returns ErrNotConnected when the connection takes
// no more packets, and closes a connection whose server stopped reading.
func (cn *conn) queuePublish(p *packet.Publish, callerAlias uint16, keep func(encoded []byte, aliased bool) error) (buffered int, err error) {
	cn.wmu.Lock()
	if cn.closed {
		cn.wmu.Unlock()
		return 0, ErrNotConnected
	}
	encoded, aliased, err := cn.appendPublishLocked(p, callerAlias)
	if err == nil && keep != nil {
		err = keep(encoded, aliased)
	}
	if err == nil {
		cn.wakeWriterLocked()
	}
	buffered = len(cn.wbuf)
	cn.wmu.Unlock()
	cn.closeIfOverflowed(err)
	return buffered, err
}

// queueResend queues a packet of the session as the Store holds it, with
// DUP set on a PUBLISH sent before [MQTT-3.3.1-1]. install calls it, and
// queueBeforeStart, before start: no writer runs yet and nothing bounds
// the buffer, since the resend is the session's own state.
func (cn *conn) queueResend(encoded []byte, dup bool) {
	cn.wmu.Lock()
	start := len(cn.wbuf)
	cn.wbuf = append(cn.wbuf, encoded...)
	if dup {
		cn.wbuf[start] |= 0x08
	}
	cn.wmu.Unlock()
	cn.c.stats.sent.add(packet.Type(encoded[0]>>4), len(encoded))
}

// queueBeforeStart encodes p into the buffer start will write; see
// queueResend.
func (cn *conn) queueBeforeStart(p packet.Packet) error {
	cn.wmu.Lock()
	defer cn.wmu.Unlock()
	_, err := cn.appendLocked(p)
	return err
}

// writePacket queues p. It fails when the connection has ended.
func (cn *conn) writePacket(p packet.Packet) error {
	cn.wmu.Lock()
	if cn.closed {
		cn.wmu.Unlock()
		return ErrNotConnected
	}
	_, err := cn.appendLocked(p)
	if err == nil {
		cn.wakeWriterLocked()
	}
	cn.wmu.Unlock()
	cn.closeIfOverflowed(err)
	return err
}

// waitDrained blocks a QoS 0 publisher while the write buffer is over
// drainAt, so a fast publisher meets the socket's pace instead of memory
// growth. buffered is the length the caller saw; below drainAt there is
// nothing to do. drainAt is fixed at the connection's creation.
func (cn *conn) waitDrained(buffered int, stop <-chan struct{}) {
	if buffered < cn.drainAt {
		return
	}
	for {
		cn.wmu.Lock()
		n, closed := len(cn.wbuf), cn.closed
		drained := signalChan(&cn.drained)
		cn.wmu.Unlock()
		if n < cn.drainAt || closed {
			return
		}
		select {
		case <-drained:
		case <-cn.done:
			return
		case <-stop:
			return
		}
	}
}

// writeLoop flushes the write buffer until it is empty, then ends: the
// next append starts another. Packets appended during a write go out with
// the next one, which is what batches writes.
//
// A writer that waited for more work instead would live on after the
// burst it served. The runtime never frees a goroutine's record, it keeps
// it for reuse, so every writer alive at once is memory held for good,
// and a thousand clients waking together would keep a thousand of them.
func (cn *conn) writeLoop() {
	defer cn.wg.Done()
	for {
		// Let publishers that are runnable append before the write: one
		// write per batch instead of one per packet is most of the CPU a
		// QoS 1 stream costs.
		runtime.Gosched()
		if err := cn.flush(); err != nil {
			cn.close(fmt.Errorf("write: %w", err))
			return
		}
		cn.wmu.Lock()
		if len(cn.wbuf) > 0 {
			cn.wmu.Unlock()
			continue
		}
		cn.writing = false
		// Read under wmu, which shutdown holds to queue the DISCONNECT
		// and set finishing: seen here, the DISCONNECT has gone out,
		// after everything queued before it.
		finished := cn.finishing.Load()
		cn.wmu.Unlock()
		if finished {
			cn.close(ErrClosed)
		}
		return
	}
}

// shutdown queues the DISCONNECT d, after which the connection takes no
// more packets, and has the writer send everything queued, then close. It
// waits until the connection has ended or ctx ends.
func (cn *conn) shutdown(ctx context.Context, d *packet.Disconnect) error {
	cn.wmu.Lock()
	if cn.closed {
		cn.wmu.Unlock()
		return nil
	}
	_, err := cn.appendLocked(d)
	if errors.Is(err, ErrPacketTooLarge) {
		// Reason string and user properties are what the sender must
		// leave out to fit the server's maximum [MQTT-3.14.2-3],
		// [MQTT-3.14.2-4].
		d.Properties.ReasonString, d.Properties.User = nil, nil
		_, err = cn.appendLocked(d)
	}
	cn.closed = true
	cn.finishing.Store(true)
	cn.wakeWriterLocked()
	cn.wmu.Unlock()
	if err != nil {
		cn.close(ErrClosed)
		return err
	}
	select {
	case <-cn.done:
		if errors.Is(cn.err, ErrClosed) {
			return nil
		}
		return cn.err
	case <-ctx.Done():
		cn.close(ErrClosed)
		return ctx.Err()
	}
}

// flush writes everything queued so far in one Write. Callers keep
// appending to the other buffer meanwhile, which is what batches writes.
func (cn *conn) flush() error {
	cn.wmu.Lock()
	buf := cn.wbuf
	cn.wbuf, cn.spare, cn.exempt = cn.spare[:0], nil, 0
	cn.wmu.Unlock()
	if len(buf) == 0 {
		cn.wmu.Lock()
		cn.spare = buf
		cn.wmu.Unlock()
		return nil
	}
	// A write that cannot finish within the keepalive window means the
	// link is gone even if TCP has not noticed.
	deadline := time.Time{}
	if cn.keepAlive > 0 {
		deadline = time.Now().Add(cn.keepAlive + cn.pingTimeout)
	}
	_ = cn.nc.SetWriteDeadline(deadline)
	_, err := cn.nc.Write(buf)
	cn.lastSend.Store(time.Now().UnixNano())
	cn.c.stats.bytesOut.Add(uint64(len(buf)))
	cn.wmu.Lock()
	// A QoS 0 burst may overshoot maxBuffered before publishers wait;
	// keep such a buffer rather than regrow one from nothing.
	if cap(buf) <= 2*maxBuffered {
		cn.spare = buf[:0]
	}
	if cn.drained != nil {
		signal(cn.drained)
	}
	cn.wmu.Unlock()
	return err
}

// keepAliveDue runs on the keepalive timer: it takes the step that is due
// and sets the timer for the next one.
func (cn *conn) keepAliveDue() {
	next, err := cn.keepAliveStep(time.Now())
	if err != nil {
		cn.close(err)
		return
	}
	cn.wmu.Lock()
	if !cn.closed {
		cn.keepalive.Reset(next)
	}
	cn.wmu.Unlock()
}

// keepAliveStep sends PINGREQ when the link has been quiet for a keepalive
// interval, and declares it dead when the answer to a ping does not come
// within pingTimeout [MQTT-3.1.2-23]. It returns when to check next. Each
// step is taken a little early, since timers fire late, so a dead link is
// declared by keepalive + ping timeout, never after.
//
// The two clocks run apart. While a ping is unanswered, "quiet" means
// nothing sent: the server drops a client silent for 1.5× the keepalive
// [MQTT-3.1.2-24], so a ping timeout longer than the keepalive must not
// hold back the next PINGREQ. Otherwise silence either way counts, so a
// link we only write to is still probed.
func (cn *conn) keepAliveStep(now time.Time) (time.Duration, error) {
	n := now.UnixNano()
	recv := cn.lastRecv.Load()
	quiet := min(cn.lastSend.Load(), recv)
	next := time.Duration(-1) // when the ping times out, if one is unanswered
	if sent := cn.pingSent.Load(); sent != 0 {
		switch due := time.Duration(sent-n) + cn.pingTimeout - cn.early; {
		case recv >= sent:
			// Something arrived after the ping: the link is alive.
			cn.pingSent.Store(0)
		case cn.readerWaiting.Load():
			// We, not the link, are slow: the reader is parked on the
			// handler queue, so unread bytes may be waiting.
			return cn.early, nil
		case due <= 0:
			return 0, ErrKeepAliveTimeout
		default:
			next = due
			quiet = cn.lastSend.Load()
		}
	}
	if due := time.Duration(quiet-n) + cn.keepAlive - cn.early; due > 0 {
		if next >= 0 {
			return min(next, due), nil
		}
		return due, nil
	}
	cn.releaseWriteBuffers()
	if next < 0 {
		// The timeout runs from the first unanswered ping: a second one
		// sent while it waits does not extend it.
		cn.pingSent.Store(n)
		next = cn.pingTimeout - cn.early
	}
	cn.lastSend.Store(n) // the flush will too; a check before it must not ping again
	cn.writeRaw([]byte{0xC0, 0})
	return min(next, cn.keepAlive-cn.early), nil
}

// releaseWriteBuffers lets the write buffers go when nothing is queued.
// Keepalive calls it when the link has been quiet for a keepalive
// interval: buffers a burst grew (up to 2×maxBuffered each) are not kept
// by a client that has gone idle.
func (cn *conn) releaseWriteBuffers() {
	cn.wmu.Lock()
	if !cn.writing && len(cn.wbuf) == 0 {
		cn.wbuf, cn.spare = nil, nil
	}
	cn.wmu.Unlock()
}

// readLoop decodes packets until the connection fails and hands each to the
// client. Packet bodies alias the read buffer when they fit in it, so the
// handlers copy what they keep before the next read; larger ones get a
// buffer of their own, up to MaximumPacketSize: a larger PUBLISH is read
// past without being buffered.
func (cn *conn) readLoop() {
	defer cn.wg.Done()
	defer cn.rb.release()
	var hdr [5]byte
	maxSize := cn.c.opts.MaximumPacketSize
	for {
		h, err := readHeader(cn.rb, hdr[:], cn.version, maxSize)
		if errors.Is(err, packet.ErrPacketTooLarge) && h.Type == packet.TypePublish {
			var s oversizedPublish
			if s, err = cn.skipPublish(h); err == nil {
				if err = cn.c.dropOversized(cn, s); err != nil {
					cn.closeWithReason(err)
					return
				}
				continue
			}
		}
		if err != nil {
			cn.readFailed(err)
			return
		}
		var b []byte
		if h.Remaining <= readBufferSize {
			b, err = cn.rb.next(h.Remaining)
		} else {
			b = make([]byte, h.Remaining)
			err = cn.rb.readFull(b)
		}
		if err != nil {
			cn.readFailed(err)
			return
		}
		cn.lastRecv.Store(time.Now().UnixNano())
		n := h.Remaining + headerSize(h.Remaining)
		cn.c.stats.bytesIn.Add(uint64(n))
		cn.c.stats.received.add(h.Type, n)
		in := decodeTargets.Get().(*inboundPackets)
		err = cn.c.handlePacket(cn, in, h, b)
		in.trim()
		decodeTargets.Put(in)
		if err != nil {
			cn.closeWithReason(err)
			return
		}
	}
}

func (cn *conn) readFailed(err error) {
	if cn.finishing.Load() {
		// We sent DISCONNECT; the server closing its side is the
		// expected end, not a lost connection.
		cn.close(ErrClosed)
		return
	}
	var pe *packet.Error
	if errors.As(err, &pe) {
		cn.closeWithReason(err)
		return
	}
	if errors.Is(err, io.EOF) {
		err = fmt.Errorf("connection closed by server: %w", err)
	}
	cn.close(err)
}

// readHeader reads a fixed header byte by byte, so the remaining length is
// checked against our maximum before any of the body is read. A header
// over the maximum is returned with packet.ErrPacketTooLarge, for the
// reader to skip an oversized PUBLISH.
func readHeader(rb *readBuffer, hdr []byte, v Version, maxSize uint32) (packet.Header, error) {
	for i := 0; i < len(hdr); i++ {
		b, err := rb.readByte()
		if err != nil {
			return packet.Header{}, err
		}
		hdr[i] = b
		if i > 0 && b&0x80 == 0 {
			h, _, err := packet.DecodeHeader(hdr[:i+1], v, maxSize)
			if errors.Is(err, packet.ErrPacketTooLarge) {
				// Well-formed but too large: decode it again without
				// the limit, which DecodeHeader checks last.
				h, _, _ = packet.DecodeHeader(hdr[:i+1], v, 0)
			}
			return h, err
		}
	}
	_, _, err := packet.DecodeHeader(hdr, v, maxSize)
	return packet.Header{}, err
}

// decodeTargets holds inboundPackets for readers handling a packet. A
// reader that kept its own, on its stack, would keep a stack large enough
// for them (~2 KiB) while it waits, which the runtime cannot shrink; taking
// one per packet costs a pool round trip. A cache, like readBuffers.
var decodeTargets = sync.Pool{New: func() any { return new(inboundPackets) }}

// inboundPackets are the reader's reusable decode targets.
type inboundPackets struct {
	publish    packet.Publish
	ack        packet.Ack
	suback     packet.Suback
	unsuback   packet.Unsuback
	disconnect packet.Disconnect
}

// maxPooledElems is the most elements a slice of a pooled decode target
// keeps between packets. Decoding reuses a slice's capacity, so one hostile
// packet (a PUBLISH with thousands of user properties is some 10 times
// larger in memory than on the wire) would otherwise be held for as long
// as the pool keeps the target, which a busy client does for good.
const maxPooledElems = 32

// trim lets go of slices a packet grew beyond maxPooledElems.
func (in *inboundPackets) trim() {
	for _, pr := range [...]*packet.Properties{&in.publish.Properties, &in.ack.Properties,
		&in.suback.Properties, &in.unsuback.Properties, &in.disconnect.Properties} {
		if cap(pr.User) > maxPooledElems {
			pr.User = nil
		}
		if cap(pr.SubscriptionIDs) > maxPooledElems {
			pr.SubscriptionIDs = nil
		}
	}
	if cap(in.suback.ReasonCodes) > maxPooledElems {
		in.suback.ReasonCodes = nil
	}
	if cap(in.unsuback.ReasonCodes) > maxPooledElems {
		in.unsuback.ReasonCodes = nil
	}
}

// maxLoggedTopic is how much of a skipped message's topic is logged.
const maxLoggedTopic = 128

// oversizedPublish is what the reader learnt of a PUBLISH it skipped.
type oversizedPublish struct {
	qos   QoS
	id    uint16 // QoS 1 and 2
	topic string // at most maxLoggedTopic bytes of it
	size  int    // the whole packet's
}

// skipPublish reads past the body of a PUBLISH larger than
// MaximumPacketSize without buffering it: the start of the topic, for the
// log, and the packet identifier, to acknowledge it; the rest, topic
// included, is discarded in chunks of the read buffer. A v5 server must
// not send such a packet [MQTT-3.1.2-25], yet skipping it there too is
// the lenient choice: closing would only bring it back at the next
// connect. Its properties are not read, so a topic alias it sets is not
// learnt, and a later PUBLISH relying on that alias closes the connection.
func (cn *conn) skipPublish(h packet.Header) (oversizedPublish, error) {
	s := oversizedPublish{qos: QoS(h.Flags >> 1 & 0x03), size: h.Remaining + headerSize(h.Remaining)}
	if s.qos == AtMostOnce && h.Flags&0x08 != 0 {
		return s, packet.ErrDupQoS0 // [MQTT-3.3.1-2]
	}
	b, err := cn.rb.next(2)
	if err != nil {
		return s, err
	}
	topicLen := int(b[0])<<8 | int(b[1])
	fields := 2 + topicLen
	if s.qos > AtMostOnce {
		fields += 2
	}
	if fields > h.Remaining {
		return s, fmt.Errorf("oversized PUBLISH: %d-byte topic in a %d-byte body: %w", topicLen, h.Remaining, packet.ErrShortBuffer)
	}
	logged := min(topicLen, maxLoggedTopic)
	if b, err = cn.rb.next(logged); err != nil {
		return s, err
	}
	// Cutting the topic may split a character; the log needs valid text.
	s.topic = strings.ToValidUTF8(string(b), "\uFFFD")
	if err := cn.rb.discard(topicLen - logged); err != nil {
		return s, err
	}
	if s.qos > AtMostOnce {
		if b, err = cn.rb.next(2); err != nil {
			return s, err
		}
		if s.id = uint16(b[0])<<8 | uint16(b[1]); s.id == 0 {
			return s, packet.ErrPacketIDZero // [MQTT-2.2.1-3]
		}
	}
	if err := cn.rb.discard(h.Remaining - fields); err != nil {
		return s, err
	}
	cn.lastRecv.Store(time.Now().UnixNano())
	cn.c.stats.bytesIn.Add(uint64(s.size))
	cn.c.stats.received.add(packet.TypePublish, s.size)
	return s, nil
}
