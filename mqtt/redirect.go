package mqtt

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/heraldiot/herald/mqtt/packet"
)

// A v5 server may send a client elsewhere (section 4.11): Use Another
// Server (0x9C, for now) or Server Moved (0x9D, for good), with a Server
// Reference, in CONNACK or DISCONNECT. Following is opt-in
// (Options.MaxRedirects), because a reference is an instruction from the
// network to connect somewhere else.

func isRedirect(code ReasonCode) bool {
	return code == packet.UseAnotherServer || code == packet.ServerMoved
}

// redirectTarget returns the server a refused CONNECT points to, or "" if
// it points nowhere we may follow.
func (c *Client) redirectTarget(err error, current string) string {
	var ce *ConnectError
	if !errors.As(err, &ce) {
		return ""
	}
	return c.followable(ce.Code, ce.ServerReference, current)
}

// noteRedirect remembers where a DISCONNECT told us to go, for the next
// connect: once for Use Another Server, from then on for Server Moved.
func (c *Client) noteRedirect(cn *conn) {
	var de *DisconnectError
	if !errors.As(cn.err, &de) {
		return
	}
	target := c.followable(de.Code, de.ServerReference, cn.server)
	if target == "" {
		return
	}
	c.log.Info("redirected by the server", "from", cn.server, "to", target, "moved", de.Code == packet.ServerMoved)
	c.mu.Lock()
	c.redirect, c.redirectMoved = target, de.Code == packet.ServerMoved
	c.mu.Unlock()
}

// followable returns the server URL a redirect with code and reference
// sends us to from current, or "" when redirects are off, code is not a
// redirect, or the reference is unusable.
func (c *Client) followable(code ReasonCode, ref, current string) string {
	if c.opts.MaxRedirects <= 0 || !isRedirect(code) || ref == "" {
		return ""
	}
	target, err := resolveReference(ref, current)
	if err != nil {
		c.log.Info("ignoring server reference", "reference", ref, "error", err.Error())
		return ""
	}
	return target
}

// resolveReference turns a Server Reference into a server URL. The
// specification leaves its format to the server; common practice is a
// host with an optional port, sometimes a list separated by spaces, and
// some servers send a whole URL. The first entry is used; a bare host
// keeps the scheme (and so TLS or WebSocket) of the current server, and
// its default port unless one is given.
func resolveReference(ref, current string) (string, error) {
	fields := strings.Fields(ref)
	if len(fields) == 0 {
		return "", errors.New("empty server reference")
	}
	ref = fields[0]
	if strings.Contains(ref, "://") {
		u, err := url.Parse(ref)
		if err != nil || u.Host == "" {
			return "", fmt.Errorf("server reference %q is not a URL with a host", ref)
		}
		return u.String(), nil
	}
	u, err := url.Parse(current)
	if err != nil {
		return "", err
	}
	host, port, err := net.SplitHostPort(ref)
	if err != nil {
		// No port: the whole reference is the host (IPv6 in brackets or not).
		host, port = strings.TrimSuffix(strings.TrimPrefix(ref, "["), "]"), ""
	}
	if host == "" || strings.ContainsAny(host, "/?#@ ") {
		return "", fmt.Errorf("server reference %q is not a host", ref)
	}
	u.Host = host
	if strings.Contains(host, ":") {
		u.Host = "[" + host + "]"
	}
	if port != "" {
		u.Host = net.JoinHostPort(host, port)
	}
	return u.String(), nil
}
