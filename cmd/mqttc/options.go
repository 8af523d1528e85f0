package main

import (
	"crypto/tls"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/spf13/pflag"

	"github.com/heraldiot/herald/mqtt"
	"github.com/heraldiot/herald/mqtt/packet"
)

// neverExpires is the v5 session expiry interval that means "never".
const neverExpires = 0xFFFFFFFF

// connection is the checked outcome of the connection flags.
type connection struct {
	opts    mqtt.Options
	version mqtt.Version
	qos     mqtt.QoS
	tls     *tls.Config
	// address is host:port; the TLS layer, if any, is ours (see dial).
	address string
	// urlTopic is the topic an -L URL named.
	urlTopic string
}

// resolve checks the shared flags as mosquitto does and builds the client
// options from them.
func (f *connFlags) resolve(fs *pflag.FlagSet) (*connection, error) {
	c := &connection{}
	var err error
	if c.version, err = f.protocolVersion(fs); err != nil {
		return nil, err
	}
	if f.qos < 0 || f.qos > 2 {
		return nil, usageErrorf("Invalid QoS given: %d", f.qos)
	}
	c.qos = mqtt.QoS(f.qos)
	if f.keepAlive < 5 || f.keepAlive > 65535 {
		return nil, usageErrorf("Invalid keepalive given, it must be between 5 and 65535 inclusive.")
	}
	if fs.Changed("port") && (f.port < 1 || f.port > 65535) {
		return nil, usageErrorf("Invalid port given: %d", f.port)
	}
	clientID, err := f.clientID(fs)
	if err != nil {
		return nil, err
	}
	expiry, err := f.sessionExpirySeconds(clientID)
	if err != nil {
		return nil, err
	}

	host, port := f.host, f.port
	username, password := f.username, f.password
	hasPassword := fs.Changed("pw")
	forceTLS := fs.Changed("port") && f.port == 8883
	if f.url != "" {
		u, err := parseBrokerURL(f.url)
		if err != nil {
			return nil, err
		}
		host, port, c.urlTopic = u.host, u.port, u.topic
		forceTLS = forceTLS || u.tls
		if u.hasUser {
			username = u.username
			password, hasPassword = u.password, u.hasPassword
		}
	}
	if c.tls, err = f.tlsConfig(host, forceTLS); err != nil {
		return nil, err
	}
	if c.tls != nil && !fs.Changed("port") && f.url == "" {
		port = 8883
	}
	if hasPassword && username == "" && c.version == mqtt.V311 {
		// 3.1.1 has no password without a user name. [MQTT-3.1.2-22]
		return nil, exitErrorf(exitFailure, "Error: Problem setting username and/or password.")
	}
	will, err := f.will(c.version)
	if err != nil {
		return nil, err
	}

	c.address = net.JoinHostPort(host, strconv.Itoa(port))
	c.opts = mqtt.Options{
		Servers:    []string{"tcp://" + c.address},
		Version:    c.version,
		ClientID:   clientID,
		CleanStart: !f.persistent,
		KeepAlive:  time.Duration(f.keepAlive) * time.Second,
		Username:   username,
		Will:       will,
	}
	if hasPassword {
		c.opts.Password = []byte(password)
	}
	if c.version == mqtt.V5 {
		c.opts.SessionExpiry = time.Duration(expiry) * time.Second
		applyConnect(f.props, &c.opts)
	}
	return c, nil
}

// protocolVersion reads -V. A -D property makes the client speak 5.0, as
// it does mosquitto's; naming 3.1.1 explicitly as well is a contradiction.
func (f *connFlags) protocolVersion(fs *pflag.FlagSet) (mqtt.Version, error) {
	var v mqtt.Version
	switch f.version {
	case "5", "mqttv5":
		v = mqtt.V5
	case "311", "mqttv311":
		v = mqtt.V311
	case "31", "mqttv31":
		return 0, usageErrorf("MQTT v3.1 is not supported; use -V 311 or -V 5.")
	default:
		return 0, usageErrorf("Invalid protocol version argument given.")
	}
	if len(f.props) > 0 {
		if fs.Changed("protocol-version") && v == mqtt.V311 {
			return 0, usageErrorf("-D/--property needs MQTT v5 (-V 5).")
		}
		v = mqtt.V5
	}
	return v, nil
}

// clientID is -i, or -I with the process id appended. Empty lets a v5
// broker assign one; a 3.1.1 broker accepts empty with a clean session.
func (f *connFlags) clientID(fs *pflag.FlagSet) (string, error) {
	if fs.Changed("id") && fs.Changed("id-prefix") {
		return "", usageErrorf("-i and -I argument cannot be used together.")
	}
	id := f.id
	if fs.Changed("id-prefix") {
		id = f.idPrefix + strconv.Itoa(os.Getpid())
	}
	if f.persistent && id == "" {
		return "", usageErrorf("You must provide a client id if you are using the -c option.")
	}
	return id, nil
}

// sessionExpirySeconds reads -x. It defaults to "never" with -c and to 0
// (the session ends with the connection) without, as in mosquitto.
func (f *connFlags) sessionExpirySeconds(clientID string) (uint32, error) {
	if f.sessionExpiry == "" {
		if f.persistent {
			return neverExpires, nil
		}
		return 0, nil
	}
	var n uint64
	switch f.sessionExpiry {
	case "-1", "∞":
		n = neverExpires
	default:
		var err error
		n, err = strconv.ParseUint(f.sessionExpiry, 10, 64)
		if err != nil {
			return 0, usageErrorf("session-expiry-interval not a number.")
		}
		if n > neverExpires {
			return 0, usageErrorf("session-expiry-interval out of range.")
		}
	}
	if n == neverExpires && clientID == "" {
		return 0, usageErrorf("You must provide a client id if you are using an infinite session expiry interval.")
	}
	return uint32(n), nil
}

// will builds the last will from the --will-* flags.
func (f *connFlags) will(v mqtt.Version) (*mqtt.Will, error) {
	if f.willTopic == "" {
		if f.willPayload != "" {
			return nil, usageErrorf("Will payload given, but no will topic given.")
		}
		return nil, nil
	}
	if packet.ValidTopicName([]byte(f.willTopic)) != nil {
		return nil, usageErrorf("Invalid will topic '%s', does it contain '+' or '#'?", f.willTopic)
	}
	if f.willQoS < 0 || f.willQoS > 2 {
		return nil, usageErrorf("Invalid will QoS %d.", f.willQoS)
	}
	w := &mqtt.Will{Topic: f.willTopic, Payload: []byte(f.willPayload), QoS: mqtt.QoS(f.willQoS), Retain: f.willRetain}
	if v == mqtt.V5 {
		applyWill(f.props, w)
	}
	return w, nil
}
