package main

import (
	"net"
	"strconv"
	"strings"
)

// brokerURL is what -L names: mqtt(s)://[username[:password]@]host[:port]/topic.
type brokerURL struct {
	tls         bool
	username    string
	password    string
	hasUser     bool
	hasPassword bool
	host        string
	port        int
	topic       string
}

// parseBrokerURL reads an -L URL as mosquitto does: the topic is everything
// after the first '/' that follows the host, taken literally (no
// percent-decoding), and the port defaults by scheme.
func parseBrokerURL(s string) (brokerURL, error) {
	var u brokerURL
	rest, ok := strings.CutPrefix(s, "mqtt://")
	if !ok {
		rest, ok = strings.CutPrefix(s, "mqtts://")
		u.tls = true
	}
	if !ok {
		return u, usageErrorf("unsupported URL scheme.")
	}
	authority, topic, ok := strings.Cut(rest, "/")
	if !ok {
		return u, usageErrorf("Invalid URL for -L argument specified - topic missing.")
	}
	if topic == "" {
		return u, usageErrorf("Invalid URL for -L argument specified - topic missing.")
	}
	u.topic = topic
	if i := strings.LastIndexByte(authority, '@'); i >= 0 {
		u.hasUser = true
		u.username, u.password, u.hasPassword = strings.Cut(authority[:i], ":")
		authority = authority[i+1:]
	}
	u.host = authority
	u.port = 1883
	if u.tls {
		u.port = 8883
	}
	// A port follows the last ':' unless that colon is inside an IPv6
	// literal ("[::1]").
	if i := strings.LastIndexByte(authority, ':'); i >= 0 && !strings.HasSuffix(authority, "]") {
		host, port, err := net.SplitHostPort(authority)
		if err != nil {
			return u, usageErrorf("Invalid URL for -L argument specified: %v.", err)
		}
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return u, usageErrorf("Invalid port given: %s", port)
		}
		u.host, u.port = host, n
	}
	u.host = strings.TrimSuffix(strings.TrimPrefix(u.host, "["), "]")
	if u.host == "" {
		return u, usageErrorf("Invalid URL for -L argument specified - host missing.")
	}
	return u, nil
}
