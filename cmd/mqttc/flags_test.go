package main

import (
	"reflect"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/heraldiot/herald/mqtt"
)

func TestParseBrokerURL(t *testing.T) {
	for _, c := range []struct {
		url  string
		want brokerURL
		err  string
	}{
		{url: "mqtt://host/a/b", want: brokerURL{host: "host", port: 1883, topic: "a/b"}},
		{url: "mqtts://host/t", want: brokerURL{tls: true, host: "host", port: 8883, topic: "t"}},
		{url: "mqtt://u:p:q@host:1884/t%2F", want: brokerURL{username: "u", password: "p:q", hasUser: true, hasPassword: true, host: "host", port: 1884, topic: "t%2F"}},
		{url: "mqtt://u@[::1]:1885/t", want: brokerURL{username: "u", hasUser: true, host: "::1", port: 1885, topic: "t"}},
		{url: "mqtt://[::1]/t", want: brokerURL{host: "::1", port: 1883, topic: "t"}},
		{url: "http://host/t", err: "unsupported URL scheme."},
		{url: "mqtt://host", err: "Invalid URL for -L argument specified - topic missing."},
		{url: "mqtt://host/", err: "Invalid URL for -L argument specified - topic missing."},
		{url: "mqtt://host:0/t", err: "Invalid port given: 0"},
	} {
		got, err := parseBrokerURL(c.url)
		switch {
		case c.err != "":
			if err == nil || err.Error() != c.err {
				t.Errorf("parseBrokerURL(%q) error %v, want %q", c.url, err, c.err)
			}
		case err != nil || got != c.want:
			t.Errorf("parseBrokerURL(%q) = %+v, %v; want %+v", c.url, got, err, c.want)
		}
	}
}

func TestParseFlagsProperties(t *testing.T) {
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	var f connFlags
	f.register(fs)
	var message string
	fs.StringVarP(&message, "message", "m", "", "")
	// "-m -D" is a message, not a property; -D groups anywhere else are.
	err := parseFlags(fs, []string{"-m", "-D", "-D", "publish", "user-property", "k", "v", "-q", "1",
		"--property", "CONNECT", "Session-Expiry-Interval", "60"}, &f)
	if err != nil {
		t.Fatal(err)
	}
	want := []property{
		{command: "publish", name: "user-property", key: "k", value: "v"},
		{command: "connect", name: "session-expiry-interval", value: "60", num: 60},
	}
	if message != "-D" || f.qos != 1 || !reflect.DeepEqual(f.props, want) {
		t.Errorf("message %q, qos %d, props %+v", message, f.qos, f.props)
	}
}

func TestParsePropertyErrors(t *testing.T) {
	for _, c := range []struct {
		words []string
		want  string
	}{
		{[]string{"bogus", "content-type", "x"}, "Invalid command given in --property argument."},
		{[]string{"publish", "bogus", "x"}, "Invalid property name given in --property argument."},
		{[]string{"connect", "content-type", "x"}, "content-type property not allowed for connect in --property argument."},
		{[]string{"publish", "topic-alias", "1"}, "topic-alias property not supported for publish in --property argument."},
		{[]string{"disconnect", "reason-string", "x"}, "reason-string property not supported for disconnect in --property argument."},
		{[]string{"publish", "payload-format-indicator", "2"}, "Property value (2) out of range for property payload-format-indicator."},
		{[]string{"subscribe", "subscription-identifier", "0"}, "Property value (0) out of range for property subscription-identifier."},
		{[]string{"connect", "receive-maximum", "65536"}, "Property value (65536) out of range for property receive-maximum."},
		{[]string{"publish", "message-expiry-interval", "abc"}, "Property value (abc) out of range for property message-expiry-interval."},
	} {
		_, err := parseProperty(c.words)
		if err == nil || err.Error() != c.want {
			t.Errorf("parseProperty(%q) = %v, want %q", c.words, err, c.want)
		}
	}
}

// TestResolveOptions checks what the connection flags turn into.
func TestResolveOptions(t *testing.T) {
	resolve := func(t *testing.T, argv ...string) *connection {
		t.Helper()
		fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
		var f connFlags
		f.register(fs)
		if err := parseFlags(fs, argv, &f); err != nil {
			t.Fatal(err)
		}
		c, err := f.resolve(fs)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := resolve(t)
	if c.version != mqtt.V311 || c.address != "localhost:1883" || !c.opts.CleanStart || c.opts.KeepAlive != time.Minute || c.tls != nil {
		t.Errorf("defaults: %+v", c)
	}
	// -c under v5 keeps the session forever unless -x says otherwise.
	c = resolve(t, "-V", "mqttv5", "-c", "-i", "me")
	if c.opts.CleanStart || c.opts.SessionExpiry != neverExpires*time.Second || c.opts.ClientID != "me" {
		t.Errorf("-c -V 5: %+v", c.opts)
	}
	c = resolve(t, "-V", "5", "-c", "-i", "me", "-x", "90")
	if c.opts.SessionExpiry != 90*time.Second {
		t.Errorf("-x 90: expiry %v", c.opts.SessionExpiry)
	}
	// A -D property makes the client speak v5.
	c = resolve(t, "-D", "connect", "user-property", "a", "b", "-D", "connect", "receive-maximum", "2000")
	if c.version != mqtt.V5 || len(c.opts.UserProperties) != 1 || c.opts.ReceiveMaximum != 2000 || c.opts.HandlerQueue < 2000 {
		t.Errorf("-D connect: %+v", c.opts)
	}
	// TLS flags move the default port to 8883.
	c = resolve(t, "--tls-use-os-certs", "-h", "broker")
	if c.tls == nil || c.address != "broker:8883" || c.tls.ServerName != "broker" {
		t.Errorf("--tls-use-os-certs: %+v", c)
	}
	c = resolve(t, "-L", "mqtt://u:p@h:1999/t", "-u", "ignored")
	if c.address != "h:1999" || c.opts.Username != "u" || string(c.opts.Password) != "p" || c.urlTopic != "t" {
		t.Errorf("-L: %+v", c)
	}
	c = resolve(t, "--will-topic", "w", "--will-payload", "bye", "--will-qos", "2", "--will-retain")
	if w := c.opts.Will; w == nil || w.Topic != "w" || string(w.Payload) != "bye" || w.QoS != 2 || !w.Retain {
		t.Errorf("will: %+v", c.opts.Will)
	}
}
