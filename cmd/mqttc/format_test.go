package main

import (
	"testing"
	"time"

	"github.com/heraldiot/herald/mqtt"
)

func TestFormatRender(t *testing.T) {
	at := time.Date(2026, 3, 7, 9, 5, 2, 123456789, time.FixedZone("CET", 3600))
	msg := &mqtt.Message{Topic: "a/b", Payload: []byte("hello"), QoS: 1, Retain: true,
		ContentType: "text/plain", UserProperties: []mqtt.UserProperty{{Key: "k", Value: "v"}, {Key: "k", Value: "w"}},
		SubscriptionIDs: []uint32{9}, Expiry: 30 * time.Second}
	r := &delivery{msg: msg, wire: wireMessage{mid: 7, hasExpiry: true}, at: at}
	for _, c := range []struct{ format, want string }{
		{"%t %p", "a/b hello"},
		{"%q%r%m%l", "1175"},
		{"%x %X", "68656c6c6f 68656C6C6F"},
		{"[%5t][%-5t][%.1t][%05l][%-3m]", "[  a/b][a/b  ][a][00005][7  ]"},
		{"[%3p][%8p][%-8p][%.2p]", "[hel][   hello][hello   ][hello]"},
		{"[%5q][%-3r][%08t]", "[1][1][     a/b]"},
		{"%C|%P|%S|%E|%F|%A|%R|%D", "text/plain|k:v k:w|9|30||||"},
		{`\t\\\e%%@@\0`, "\t\\\x1b%@\x00"},
		{"%I|%U", "2026-03-07T09:05:02+0100|1772870702.123456789"},
		{"@Y-@m-@d @H:@M:@S @z @Z @N @j @a @b @e @Q", "2026-03-07 09:05:02 +0100 CET 123456789 066 Sat Mar  7 %Q"},
		{"%j", `{"tst":"2026-03-07T09:05:02.123456Z+0100","topic":"a/b","qos":1,"retain":1,"payloadlen":5,"mid":7,` +
			`"properties":{"subscription-identifier":9,"content-type":"text/plain","user-properties":{"k":"v","k":"w"},` +
			`"message-expiry-interval":30},"payload":"hello"}`},
	} {
		parts, err := compileFormat(c.format)
		if err != nil {
			t.Errorf("compileFormat(%q): %v", c.format, err)
			continue
		}
		got, warnings := appendFormatted(nil, parts, r)
		if string(got) != c.want || len(warnings) > 0 {
			t.Errorf("-F %q = %q (warnings %q), want %q", c.format, got, warnings, c.want)
		}
	}
}

func TestFormatJSONPayload(t *testing.T) {
	msg := &mqtt.Message{Topic: "t", Payload: []byte("a\"\\\n\x00\x1f\xff")}
	r := &delivery{msg: msg, at: time.Unix(0, 0).UTC()}
	parts, _ := compileFormat("%j")
	got, _ := appendFormatted(nil, parts, r)
	want := `{"tst":"1970-01-01T00:00:00.000000Z+0000","topic":"t","qos":0,"retain":0,"payloadlen":7,"payload":"a\"\\\n\u0000\u001f` + "\xff" + `"}`
	if string(got) != want {
		t.Errorf("%%j = %q, want %q", got, want)
	}
	parts, _ = compileFormat("%J")
	if got, warnings := appendFormatted(nil, parts, r); len(got) != 0 || len(warnings) != 1 {
		t.Errorf("%%J of a non-JSON payload = %q, warnings %q; want nothing and one warning", got, warnings)
	}
}

func TestFormatErrors(t *testing.T) {
	for format, want := range map[string]string{
		"%z":        "Invalid format specifier 'z'.",
		"%5":        "Incomplete format specifier.",
		"abc%":      "Incomplete format specifier.",
		"abc@":      "Incomplete format specifier.",
		`abc\`:      "Incomplete escape specifier.",
		`\q`:        "Invalid escape specifier 'q'.",
		"%-05.3t %": "Incomplete format specifier.",
	} {
		_, err := compileFormat(format)
		if err == nil || err.Error() != want {
			t.Errorf("compileFormat(%q) = %v, want %q", format, err, want)
		}
	}
}

func TestPrinterModes(t *testing.T) {
	full := &delivery{msg: &mqtt.Message{Topic: "t", Payload: []byte("p")}}
	empty := &delivery{msg: &mqtt.Message{Topic: "t"}}
	for _, c := range []struct {
		p           printer
		full, empty string
	}{
		{printer{eol: true}, "p\n", ""},
		{printer{}, "p", ""},
		{printer{verbose: true, eol: true}, "t p\n", "t (null)\n"},
		{printer{verbose: true}, "t p", ""},
		{printer{format: []formatPart{{param: 't', precision: -1}}, verbose: true, eol: true}, "t\n", "t\n"},
		{printer{format: []formatPart{}, eol: true}, "\n", "\n"},
	} {
		gotFull, _ := c.p.appendMessage(nil, full)
		gotEmpty, _ := c.p.appendMessage(nil, empty)
		if string(gotFull) != c.full || string(gotEmpty) != c.empty {
			t.Errorf("%+v: %q and %q, want %q and %q", c.p, gotFull, gotEmpty, c.full, c.empty)
		}
	}
}
