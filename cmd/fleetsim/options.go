package main

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/heraldiot/herald/internal/devicesim"
	"github.com/heraldiot/herald/mqtt"
)

// options are the command line.
type options struct {
	broker, protocol, topicRoot string
	devices                     int
	profile                     string
	models, versions, labels    string
	hardwareRevision, idPrefix  string

	rejectProbability, failProbability, hangProbability float64
	succeedOnAttempt                                    int
	rejectReasons, failReasons                          []string
	downloadTime, installTime, rebootTime               time.Duration
	jitter                                              float64
	fetch                                               bool

	churn         float64
	churnDowntime time.Duration
	churnAbrupt   bool

	keepAlive, willDelay time.Duration
	cleanSession         bool
	parallel             int

	username, password string
	cafile, cert, key  string
	insecure           bool
	progress, duration time.Duration
	list               bool

	flags *pflag.FlagSet
}

func (o *options) register(fs *pflag.FlagSet) {
	o.flags = fs
	fs.SortFlags = false
	fs.StringVar(&o.broker, "broker", "tcp://127.0.0.1:1883", "broker URL: tcp://, mqtt:// (plain) or tls://, ssl://, mqtts:// (TLS), host:port")
	fs.StringVarP(&o.protocol, "protocol", "V", "5", "MQTT version: 5 or 3.1.1")
	fs.StringVar(&o.topicRoot, "topic-root", "factory-7/sensors", "the fleet's topic root, as in its DeviceFleet's spec.topicRoot")
	fs.IntVarP(&o.devices, "devices", "n", 200, "number of devices")
	fs.StringVar(&o.profile, "profile", "", "YAML fleet profile: models, versions, labels, behaviour (see internal/devicesim.Profile)")
	fs.StringVar(&o.models, "models", "th-sensor", "models and their shares, e.g. th-sensor=3,th-sensor-pro=1")
	fs.StringVar(&o.versions, "versions", "1.0.0", "starting firmware versions and their shares, e.g. 1.8.2=3,1.9.1=1")
	fs.StringVar(&o.labels, "labels", "", "inventory labels, e.g. site=hall-1|hall-2,ring=beta ('|' deals values in turn)")
	fs.StringVar(&o.hardwareRevision, "hardware-revision", "rev A", "hardware revision in inventory")
	fs.StringVar(&o.idPrefix, "id-prefix", "", "prefix of every device ID, to run several simulators against one broker")

	fs.Float64Var(&o.rejectProbability, "reject-probability", 0, "share of devices that reject an update (0-1)")
	fs.StringSliceVar(&o.rejectReasons, "reject-reasons", nil, "reasons rejecting devices give (default low-battery)")
	fs.Float64Var(&o.failProbability, "fail-probability", 0, "share of devices whose update fails (0-1)")
	fs.StringSliceVar(&o.failReasons, "fail-reasons", nil, "reasons failing devices give, e.g. install-failed,rolled-back (default install-failed)")
	fs.Float64Var(&o.hangProbability, "hang-probability", 0, "share of devices that accept and never finish (0-1)")
	fs.IntVar(&o.succeedOnAttempt, "succeed-on-attempt", 0, "updates from this notice attempt on succeed, so retries recover failed devices (0: every attempt draws its outcome)")
	fs.DurationVar(&o.downloadTime, "download-time", 3*time.Second, "simulated download time")
	fs.DurationVar(&o.installTime, "install-time", 2*time.Second, "simulated install time")
	fs.DurationVar(&o.rebootTime, "reboot-time", time.Second, "time offline while rebooting into new firmware")
	fs.Float64Var(&o.jitter, "jitter", 0.3, "spread of download and install times, as a fraction either way (0-1)")
	fs.BoolVar(&o.fetch, "fetch", false, "download the image from the notice's URLs (HTTP GET) and check its size and SHA-256")

	fs.Float64Var(&o.churn, "churn", 0, "devices going offline per minute (idle devices only); 0 turns churn off")
	fs.DurationVar(&o.churnDowntime, "churn-downtime", 10*time.Second, "mean time a churned device stays offline")
	fs.BoolVar(&o.churnAbrupt, "churn-abrupt", false, "churned devices drop their connection (the broker publishes their Will) instead of saying goodbye")

	fs.DurationVar(&o.keepAlive, "keepalive", 30*time.Second, "MQTT keepalive")
	fs.DurationVar(&o.willDelay, "will-delay", 30*time.Second, "MQTT 5 Will Delay Interval")
	fs.BoolVar(&o.cleanSession, "clean-session", false, "start every connection with a clean session instead of keeping it for a day")
	fs.IntVar(&o.parallel, "connect-parallel", 64, "connections opened at a time at start")

	fs.StringVarP(&o.username, "username", "u", "", "user name (every device uses it)")
	fs.StringVarP(&o.password, "pw", "P", "", "password")
	fs.StringVar(&o.cafile, "cafile", "", "PEM file of CA certificates that sign the broker's (TLS URLs; default: the system's)")
	fs.StringVar(&o.cert, "cert", "", "PEM client certificate (TLS URLs)")
	fs.StringVar(&o.key, "key", "", "PEM client private key (TLS URLs)")
	fs.BoolVar(&o.insecure, "insecure", false, "do not check that the broker certificate's name matches the host")

	fs.DurationVar(&o.progress, "progress-interval", 2*time.Second, "how often to print the progress line when something changed; 0 turns it off")
	fs.DurationVar(&o.duration, "duration", 0, "stop after this long (default: run until SIGINT or SIGTERM)")
	fs.BoolVar(&o.list, "list", false, "print the devices (ID, model, version, cohort, labels) and exit without connecting")
}

func (o *options) changed(name string) bool { return o.flags.Changed(name) }

// fleet resolves the profile, the flags that override it and the device
// count into a checked profile.
func (o *options) fleet() (*devicesim.Profile, int, error) {
	var p *devicesim.Profile
	if o.profile != "" {
		for _, name := range []string{"models", "versions", "labels", "hardware-revision"} {
			if o.changed(name) {
				return nil, 0, fmt.Errorf("--%s describes a fleet without --profile; edit the profile instead", name)
			}
		}
		var err error
		if p, err = devicesim.LoadProfile(o.profile); err != nil {
			return nil, 0, err
		}
	} else {
		var err error
		if p, err = o.flagProfile(); err != nil {
			return nil, 0, err
		}
	}
	if o.changed("topic-root") || p.TopicRoot == "" {
		p.TopicRoot = o.topicRoot
	}
	if o.changed("id-prefix") {
		p.IDPrefix = o.idPrefix
	}
	b := &p.Behavior
	set := func(name string, apply func()) {
		if o.changed(name) {
			apply()
		}
	}
	setDefault := func(name string, d *devicesim.Duration, v time.Duration) {
		if o.changed(name) || d.Duration == 0 {
			d.Duration = v
		}
	}
	set("reject-probability", func() { b.RejectProbability = o.rejectProbability })
	set("reject-reasons", func() { b.RejectReasons = o.rejectReasons })
	set("fail-probability", func() { b.FailProbability = o.failProbability })
	set("fail-reasons", func() { b.FailReasons = o.failReasons })
	set("hang-probability", func() { b.HangProbability = o.hangProbability })
	set("succeed-on-attempt", func() { b.SucceedOnAttempt = o.succeedOnAttempt })
	setDefault("download-time", &b.DownloadTime, o.downloadTime)
	setDefault("install-time", &b.InstallTime, o.installTime)
	setDefault("reboot-time", &b.RebootTime, o.rebootTime)
	if o.changed("jitter") || o.profile == "" {
		b.Jitter = o.jitter
	}
	if err := p.Validate(); err != nil {
		return nil, 0, err
	}
	n := o.devices
	if !o.changed("devices") && p.Devices > 0 {
		n = p.Devices
	}
	if n < 1 {
		return nil, 0, fmt.Errorf("--devices %d: at least one device is needed", n)
	}
	return p, n, nil
}

// flagProfile builds a profile from --models, --versions, --labels and
// --hardware-revision: every model gets the same versions and labels.
func (o *options) flagProfile() (*devicesim.Profile, error) {
	models, err := weighted("--models", o.models)
	if err != nil {
		return nil, err
	}
	versions, err := weighted("--versions", o.versions)
	if err != nil {
		return nil, err
	}
	labels := map[string]string{}
	if o.labels != "" {
		for _, kv := range strings.Split(o.labels, ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return nil, fmt.Errorf("--labels: %q is not key=value", kv)
			}
			labels[k] = v
		}
	}
	p := &devicesim.Profile{}
	vmap := map[string]int{}
	for _, v := range versions {
		vmap[v.name] = v.weight
	}
	for _, m := range models {
		p.Models = append(p.Models, devicesim.ModelProfile{
			Name: m.name, Weight: m.weight, HardwareRevision: o.hardwareRevision, Versions: vmap, Labels: labels,
		})
	}
	return p, nil
}

type share struct {
	name   string
	weight int
}

// weighted parses "a=3,b=1" ("a" alone weighs 1).
func weighted(flag, s string) ([]share, error) {
	var out []share
	for _, item := range strings.Split(s, ",") {
		name, w, hasWeight := strings.Cut(strings.TrimSpace(item), "=")
		if name == "" {
			return nil, fmt.Errorf("%s: empty entry in %q", flag, s)
		}
		weight := 1
		if hasWeight {
			var err error
			if weight, err = strconv.Atoi(w); err != nil || weight < 0 {
				return nil, fmt.Errorf("%s: share %q of %s is not a whole number", flag, w, name)
			}
		}
		out = append(out, share{name, weight})
	}
	return out, nil
}

// mqttVersion reads --protocol.
func (o *options) mqttVersion() (mqtt.Version, error) {
	switch o.protocol {
	case "5", "5.0", "mqttv5":
		return mqtt.V5, nil
	case "3.1.1", "311", "mqttv311":
		return mqtt.V311, nil
	}
	return 0, fmt.Errorf("--protocol %q: use 5 or 3.1.1", o.protocol)
}

// brokerTLS reports whether --broker asks for TLS, and checks its form.
func (o *options) brokerTLS() (bool, error) {
	u, err := url.Parse(o.broker)
	if err != nil || u.Host == "" {
		return false, fmt.Errorf("--broker %q: want a URL such as tcp://127.0.0.1:1883", o.broker)
	}
	switch u.Scheme {
	case "tcp", "mqtt":
		return false, nil
	case "tls", "ssl", "mqtts":
		return true, nil
	}
	return false, fmt.Errorf("--broker %q: scheme %q is not tcp, mqtt, tls, ssl or mqtts", o.broker, u.Scheme)
}
