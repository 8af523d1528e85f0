package mqtt_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"

	"github.com/heraldiot/herald/internal/testenv"
	"github.com/heraldiot/herald/mqtt"
)

// connectProxy is an HTTP proxy that only opens CONNECT tunnels, as
// egress proxies do, and demands Basic credentials.
type connectProxy struct {
	srv        *httptest.Server
	user, pass string

	mu      sync.Mutex
	tunnels map[string]int // by target host:port
	conns   []net.Conn
	pipes   sync.WaitGroup
}

func startConnectProxy(t *testing.T, user, pass string) *connectProxy {
	t.Helper()
	p := &connectProxy{user: user, pass: pass, tunnels: map[string]int{}}
	p.srv = httptest.NewServer(p)
	t.Cleanup(func() {
		// httptest forgets hijacked connections, so the tunnels are
		// closed here, which ends their pipes.
		p.srv.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.pipes.Wait()
	})
	return p
}

// url is the proxy's URL carrying user info, which may be nil.
func (p *connectProxy) url(user *url.Userinfo) *url.URL {
	return &url.URL{Scheme: "http", Host: p.srv.Listener.Addr().String(), User: user}
}

// tunnelsTo reports how many tunnels to target the proxy has opened.
func (p *connectProxy) tunnelsTo(target string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.tunnels[target]
}

func (p *connectProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodConnect {
		http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
		return
	}
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte(p.user+":"+p.pass))
	if r.Header.Get("Proxy-Authorization") != want {
		w.Header().Set("Proxy-Authenticate", `Basic realm="test"`)
		http.Error(w, "who are you?", http.StatusProxyAuthRequired)
		return
	}
	upstream, err := net.Dial("tcp", r.Host)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	client, brw, err := w.(http.Hijacker).Hijack()
	if err != nil {
		upstream.Close()
		return
	}
	p.mu.Lock()
	p.tunnels[r.Host]++
	p.conns = append(p.conns, client, upstream)
	p.mu.Unlock()
	if _, err := client.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n")); err != nil {
		client.Close()
		upstream.Close()
		return
	}
	p.pipes.Add(2)
	go p.pipe(upstream, brw.Reader) // the server may have read ahead
	go p.pipe(client, upstream)
}

func (p *connectProxy) pipe(dst net.Conn, src io.Reader) {
	defer p.pipes.Done()
	_, _ = io.Copy(dst, src)
	dst.Close()
}

func TestProxyTunnelsEveryTransport(t *testing.T) {
	b := testenv.StartBroker(t, testenv.BrokerOptions{TLS: true, WebSockets: true, WebSocketsTLS: true})
	// A colon in the password checks that only the first one separates it
	// from the user name.
	proxy := startConnectProxy(t, "device", "pa:ss")
	transports := []struct {
		name, url, addr string
	}{
		{"tcp", b.URL(), b.Addr},
		{"tls", b.TLSURL(), b.TLSAddr},
		{"ws", b.WSURL(), b.WSAddr},
		{"wss", b.WSSURL(), b.WSSAddr},
	}
	for _, tr := range transports {
		for _, v := range versions {
			t.Run(tr.name+"/v"+v.String(), func(t *testing.T) {
				before := proxy.tunnelsTo(tr.addr)
				// The broker is on loopback, which http.ProxyFromEnvironment
				// never proxies, so the proxy is named directly.
				c := dial(t, b, mqtt.Options{Version: v, ClientID: "proxied", Servers: []string{tr.url},
					TLSConfig: b.Certs.ClientTLSConfig(false),
					Proxy:     http.ProxyURL(proxy.url(url.UserPassword("device", "pa:ss")))})
				if n := proxy.tunnelsTo(tr.addr) - before; n != 1 {
					t.Fatalf("proxy opened %d tunnels to %s, want 1", n, tr.addr)
				}
				pubSubRoundTrip(t, c, c, "proxy/"+tr.name+"/"+v.String())
			})
		}
	}
}

func TestProxyRefusal(t *testing.T) {
	// The proxy refuses before it would dial, so the servers need not exist.
	proxy := startConnectProxy(t, "device", "right")
	for name, user := range map[string]*url.Userinfo{
		"no credentials":    nil,
		"wrong credentials": url.UserPassword("device", "wrong"),
	} {
		for _, server := range []string{"tcp://broker.invalid", "ws://broker.invalid/mqtt"} {
			t.Run(name+"/"+server, func(t *testing.T) {
				_, err := mqtt.Dial(testContext(t), mqtt.Options{Servers: []string{server},
					Proxy: http.ProxyURL(proxy.url(user))})
				var pe *mqtt.ProxyError
				if !errors.As(err, &pe) || pe.StatusCode != http.StatusProxyAuthRequired {
					t.Fatalf("err = %v, want a ProxyError with status 407", err)
				}
				if pe.Proxy != proxy.url(nil).Host {
					t.Errorf("ProxyError names proxy %q, want %q", pe.Proxy, proxy.url(nil).Host)
				}
			})
		}
	}
}

func TestProxyUnsupportedScheme(t *testing.T) {
	errDialled := errors.New("dialled")
	_, err := mqtt.Dial(testContext(t), mqtt.Options{
		Servers: []string{"tcp://broker.invalid"},
		Proxy:   http.ProxyURL(&url.URL{Scheme: "socks5", Host: "proxy.invalid:1080"}),
		Dialer: func(context.Context, string, string) (net.Conn, error) {
			return nil, errDialled
		},
	})
	if err == nil || errors.Is(err, errDialled) {
		t.Fatalf("err = %v, want a refusal before dialling the socks5 proxy or the server", err)
	}
}

// TestProxySchemeMapping checks which proxy variable each transport
// consults, since the request's scheme is what http.ProxyFromEnvironment
// keys HTTP_PROXY and HTTPS_PROXY on, and each scheme's default port.
func TestProxySchemeMapping(t *testing.T) {
	errStop := errors.New("stop at the proxy lookup")
	for server, want := range map[string]string{
		"tcp://broker.invalid":           "http://broker.invalid:1883",
		"mqtt://broker.invalid:1884":     "http://broker.invalid:1884",
		"ws://broker.invalid/mqtt":       "http://broker.invalid:80",
		"tls://broker.invalid":           "https://broker.invalid:8883",
		"ssl://broker.invalid":           "https://broker.invalid:8883",
		"mqtts://broker.invalid":         "https://broker.invalid:8883",
		"wss://broker.invalid/mqtt":      "https://broker.invalid:443",
		"ws://broker.invalid:8080/mqtt":  "http://broker.invalid:8080",
		"wss://broker.invalid:8443/mqtt": "https://broker.invalid:8443",
	} {
		t.Run(server, func(t *testing.T) {
			var got string
			_, err := mqtt.Dial(testContext(t), mqtt.Options{
				Servers: []string{server},
				Proxy: func(r *http.Request) (*url.URL, error) {
					got = r.URL.String()
					return nil, errStop
				},
			})
			if !errors.Is(err, errStop) {
				t.Fatalf("err = %v, want the proxy lookup's", err)
			}
			if got != want {
				t.Fatalf("proxy asked about %q, want %q", got, want)
			}
		})
	}
}

// TestProxyKeepsBytesAfterResponse uses a proxy that sends the server's
// first bytes, a CONNACK, in the same write as its 200 response. The client
// reads the response through a buffer; if it dropped what the buffer holds
// beyond the headers, CONNACK would never arrive and connect would fail.
func TestProxyKeepsBytesAfterResponse(t *testing.T) {
	for _, v := range versions {
		t.Run("v"+v.String(), func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			var served sync.WaitGroup
			served.Add(1)
			go func() {
				defer served.Done()
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				defer conn.Close()
				br := bufio.NewReader(conn)
				req, err := http.ReadRequest(br)
				if err != nil || req.Method != http.MethodConnect {
					t.Errorf("proxy read %v, %v; want a CONNECT", req, err)
					return
				}
				resp := append([]byte("HTTP/1.1 200 OK\r\n\r\n"), connackAccepted[v]...)
				if _, err := conn.Write(resp); err != nil {
					return
				}
				// Swallow CONNECT, DISCONNECT and whatever else until the
				// client hangs up.
				_, _ = io.Copy(io.Discard, br)
			}()
			t.Cleanup(func() {
				ln.Close()
				served.Wait()
			})
			c := dial(t, nil, mqtt.Options{Version: v, ClientID: "buffered", Servers: []string{"tcp://broker.invalid"},
				DisableAutoReconnect: true,
				Proxy:                http.ProxyURL(&url.URL{Scheme: "http", Host: ln.Addr().String()})})
			if !c.IsConnected() {
				t.Fatal("not connected after CONNACK")
			}
		})
	}
}
