package mqtt

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
)

// ProxyError is an HTTP proxy's refusal to open a tunnel, such as 407 Proxy
// Authentication Required when the proxy URL lacks or has wrong credentials.
type ProxyError struct {
	// Proxy is the proxy's host:port.
	Proxy string
	// Target is the host:port the tunnel was asked for.
	Target string
	// StatusCode and Status are from the proxy's response.
	StatusCode int
	Status     string
}

// Error names the proxy, the target and the proxy's status line.
func (e *ProxyError) Error() string {
	return fmt.Sprintf("mqtt: proxy %s refused CONNECT %s: %s", e.Proxy, e.Target, e.Status)
}

// dialNetwork opens a byte stream to addr: directly, or through the HTTP
// proxy Options.Proxy names for it. secure tells whether TLS will run over
// the stream, which is what picks HTTPS_PROXY over HTTP_PROXY.
func dialNetwork(ctx context.Context, o *Options, addr string, secure bool) (net.Conn, error) {
	proxy, err := proxyFor(o, addr, secure)
	if err != nil {
		return nil, fmt.Errorf("proxy for %s: %w", addr, err)
	}
	if proxy == nil {
		return o.dialTCP(ctx, addr)
	}
	return dialProxy(ctx, o, proxy, addr)
}

// proxyFor asks Options.Proxy about addr. The request it is given is shaped
// for http.ProxyFromEnvironment, which reads only the URL: scheme http for
// transports that are plain text (tcp, mqtt, ws) and https for those that
// are encrypted (tls, ssl, mqtts, wss), mirroring which variable applies
// to http:// and https:// URLs. The tunnel is an HTTP CONNECT either way.
func proxyFor(o *Options, addr string, secure bool) (*url.URL, error) {
	if o.Proxy == nil {
		return nil, nil
	}
	scheme := "http"
	if secure {
		scheme = "https"
	}
	req := &http.Request{
		Method: http.MethodConnect,
		URL:    &url.URL{Scheme: scheme, Host: addr},
		Host:   addr,
		Header: make(http.Header),
	}
	return o.Proxy(req)
}

// dialProxy connects to proxy and asks it for a tunnel to addr.
func dialProxy(ctx context.Context, o *Options, proxy *url.URL, addr string) (net.Conn, error) {
	// Only plain-HTTP proxies: CONNECT through an https:// proxy would need
	// its own TLS settings, and socks5:// is another protocol altogether.
	if proxy.Scheme != "http" {
		return nil, fmt.Errorf("proxy %s: unsupported scheme %q (want http)", proxy.Redacted(), proxy.Scheme)
	}
	proxyAddr := proxy.Host
	if proxy.Port() == "" {
		proxyAddr = net.JoinHostPort(proxy.Hostname(), "80")
	}
	conn, err := o.dialTCP(ctx, proxyAddr)
	if err != nil {
		return nil, fmt.Errorf("proxy %s: %w", proxyAddr, err)
	}
	// A proxy that accepts the connection and then says nothing must not
	// outlive the connect timeout.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	tunnel, err := connectTunnel(conn, proxy, proxyAddr, addr)
	if !stop() {
		conn.Close()
		return nil, fmt.Errorf("proxy %s: CONNECT %s: %w", proxyAddr, addr, ctx.Err())
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	return tunnel, nil
}

// connectTunnel sends CONNECT over conn (RFC 9110 section 9.3.6) and reads
// the answer. After a 200 the connection is a byte stream to addr.
func connectTunnel(conn net.Conn, proxy *url.URL, proxyAddr, addr string) (net.Conn, error) {
	// addr comes from url.Parse, which rejects control characters, so it
	// cannot smuggle header lines into the request.
	req := "CONNECT " + addr + " HTTP/1.1\r\nHost: " + addr + "\r\n"
	if u := proxy.User; u != nil {
		pass, _ := u.Password()
		cred := base64.StdEncoding.EncodeToString([]byte(u.Username() + ":" + pass))
		req += "Proxy-Authorization: Basic " + cred + "\r\n"
	}
	req += "\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		return nil, fmt.Errorf("proxy %s: CONNECT %s: %w", proxyAddr, addr, err)
	}
	br := bufio.NewReader(conn)
	// The method tells ReadResponse that a 2xx has no body: what follows
	// the headers belongs to the tunnel, so resp.Body is never read.
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		return nil, fmt.Errorf("proxy %s: CONNECT %s: %w", proxyAddr, addr, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &ProxyError{Proxy: proxyAddr, Target: addr, StatusCode: resp.StatusCode, Status: resp.Status}
	}
	// The proxy may have sent the server's first bytes in the same segment
	// as its response; they sit in br and must be read before the socket.
	if br.Buffered() > 0 {
		return &bufferedConn{Conn: conn, r: br}, nil
	}
	return conn, nil
}

// bufferedConn is a net.Conn whose reads first drain bytes already read
// from it into r.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
