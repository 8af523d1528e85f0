package testenv

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// Proxy forwards TCP connections to a target and can be told to stop
// forwarding while keeping connections open, which is what a dead link
// looks like to both ends: the tests use it to check keepalive detection.
type Proxy struct {
	// Addr is host:port the proxy listens on.
	Addr string

	target string
	ln     net.Listener
	black  atomic.Bool

	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

// StartProxy starts a proxy to target and stops it when tb ends.
func StartProxy(tb testing.TB, target string) *Proxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &Proxy{Addr: ln.Addr().String(), target: target, ln: ln}
	p.wg.Add(1)
	go p.accept()
	tb.Cleanup(p.Close)
	return p
}

// URL is the proxy's address as a tcp:// URL.
func (p *Proxy) URL() string { return "tcp://" + p.Addr }

// Blackhole makes the proxy swallow everything from now on, in both
// directions, without closing any connection.
func (p *Proxy) Blackhole() { p.black.Store(true) }

// Restore resumes forwarding.
func (p *Proxy) Restore() { p.black.Store(false) }

// CutAll closes every proxied connection, as a network reset would.
func (p *Proxy) CutAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// Close stops the proxy and closes its connections.
func (p *Proxy) Close() {
	p.ln.Close()
	p.CutAll()
	p.wg.Wait()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, client, server)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(server, client)
		go p.pipe(client, server)
	}
}

// pipe copies src to dst until either ends, dropping bytes while
// blackholed. A blackholed link does not pass on closes either: the far
// end must find out by itself that nothing arrives.
func (p *Proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.black.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				src.Close()
				return
			}
		}
		if err != nil {
			if !p.black.Load() {
				dst.Close()
			}
			return
		}
	}
}
