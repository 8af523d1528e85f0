package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

// BrokerKind names an MQTT broker implementation the interop tests run
// the client against.
type BrokerKind string

// The brokers of the interop tier. `make interop-brokers` installs or
// builds each; docs/development.md says how.
const (
	Mosquitto BrokerKind = "mosquitto" // Debian's mosquitto 2.0
	Mochi     BrokerKind = "mochi"     // mochi-mqtt v2, built from hack/interop/mochi
	NATS      BrokerKind = "nats"      // Debian's nats-server 2.9 with its MQTT gateway
	Aedes     BrokerKind = "aedes"     // aedes 1.x on Node.js, from npm
	RabbitMQ  BrokerKind = "rabbitmq"  // Debian's RabbitMQ 3.10 with the rabbitmq_mqtt plugin
)

// BrokerKinds are all the brokers of the interop tier, mosquitto first as
// the reference.
var BrokerKinds = []BrokerKind{Mosquitto, Mochi, NATS, Aedes, RabbitMQ}

// Feature is something a test needs from a broker that not every broker has.
type Feature string

// The features brokers are known to differ in.
const (
	FeatureMQTT5      Feature = "MQTT 5.0"
	FeatureQoS2       Feature = "QoS 2"
	FeatureSharedSubs Feature = "shared subscriptions"
	// FeatureTopicAliases is taking topic aliases from clients, which a
	// broker must announce in CONNACK (Topic Alias Maximum).
	FeatureTopicAliases Feature = "topic aliases from clients"
	// FeatureQueuedOrder is delivering the messages queued for a
	// persistent session in the order they were published [MQTT-4.6.0-6].
	FeatureQueuedOrder Feature = "ordered delivery of queued messages"
	// FeatureQueuedExpiry is dropping a message queued for a persistent
	// session once its MQTT 5.0 Message Expiry Interval has passed
	// [MQTT-3.3.2-5].
	FeatureQueuedExpiry Feature = "dropping queued messages that expired"
)

// RequiredEnv, when set (the Makefile sets it), turns a missing broker
// binary from a skipped test into a failed one, so CI never passes by
// quietly testing nothing.
const RequiredEnv = "HERALD_INTEROP_REQUIRED"

// lacks says, per broker, which features it does not have and why. A
// feature of MQTT 5.0 is lacking wherever MQTT 5.0 is.
var lacks = map[BrokerKind]map[Feature]string{
	Mochi: {
		FeatureTopicAliases: "mochi-mqtt 2.7.9 never puts its Topic Alias Maximum in CONNACK, " +
			"and a client must take the missing property as 0: no aliases [MQTT-3.2.2-17]",
		FeatureQueuedOrder: "mochi-mqtt 2.7.9 sends a returning client its queued messages sorted " +
			"by creation time in whole seconds, in random order within a second",
		FeatureQueuedExpiry: "mochi-mqtt 2.7.9 drops expired messages in a once-a-second sweep that " +
			"counts whole seconds, not when it sends them, so a returning client can get one up to " +
			"about two seconds after it expired",
	},
	NATS: {
		FeatureMQTT5: "nats-server 2.9's MQTT gateway speaks MQTT 3.1.1 only",
		FeatureQoS2: "nats-server 2.9 serves MQTT QoS 0 and 1 only: it grants QoS 2 subscriptions " +
			"QoS 1 and closes the connection on a QoS 2 PUBLISH",
	},
	Aedes: {
		FeatureMQTT5: "aedes 1.x speaks MQTT 3.1.1 only (MQTT 5.0 is in its 2.0 betas)",
	},
	RabbitMQ: {
		FeatureMQTT5: "RabbitMQ's MQTT plugin speaks MQTT 5.0 from 3.13 on; Debian 12 ships 3.10",
		FeatureQoS2: "RabbitMQ 3.10 grants QoS 2 subscriptions QoS 1 and answers a QoS 2 PUBLISH " +
			"with PUBACK, as if it were QoS 1, which a client must take as a protocol error",
	},
}

// InteropBroker is a broker of some kind started for one test, and what it
// is known to lack. It serves plain TCP on loopback, anonymous clients
// allowed, and keeps its state in the test's temporary directory.
type InteropBroker struct {
	Kind BrokerKind
	// Addr is host:port of the MQTT listener.
	Addr string

	log func() string
}

// URL is the broker's address as a tcp:// URL.
func (b *InteropBroker) URL() string { return "tcp://" + b.Addr }

// Lacks returns why the broker cannot serve f, or "" when it can.
func (b *InteropBroker) Lacks(f Feature) string {
	if why := lacks[b.Kind][f]; why != "" {
		return why
	}
	if f != FeatureMQTT5 && f.mqtt5Only() {
		return lacks[b.Kind][FeatureMQTT5]
	}
	return ""
}

func (f Feature) mqtt5Only() bool {
	return f == FeatureSharedSubs || f == FeatureTopicAliases || f == FeatureQueuedExpiry
}

// Log returns the broker's most recent log lines.
func (b *InteropBroker) Log() string { return b.log() }

// StartInteropBroker starts a broker of kind for tb and stops it when tb
// ends, logging its output if tb failed. A broker that is not installed
// skips tb, or fails it when RequiredEnv is set.
func StartInteropBroker(tb testing.TB, kind BrokerKind) *InteropBroker {
	tb.Helper()
	if kind == Mosquitto {
		if _, err := MosquittoPath(); err != nil {
			missingBroker(tb, kind, err)
		}
		m := StartBroker(tb, BrokerOptions{})
		return &InteropBroker{Kind: kind, Addr: m.Addr, log: m.Log}
	}
	find, ok := interopBrokers[kind]
	if !ok {
		tb.Fatalf("testenv: unknown broker kind %q", kind)
	}
	launch, err := find()
	if err != nil {
		missingBroker(tb, kind, err)
	}
	// Free ports are picked by binding and releasing them, so another
	// process can take one before the broker binds it; a few attempts make
	// that harmless.
	for attempt := 0; ; attempt++ {
		addr, err := FreeAddr()
		if err != nil {
			tb.Fatal(err)
		}
		procs, err := launch(tb.TempDir(), addr)
		if err == nil {
			broker := procs[len(procs)-1]
			tb.Cleanup(func() {
				// The broker first, then what it needs.
				for _, p := range slices.Backward(procs) {
					p.stop()
				}
				if tb.Failed() {
					tb.Logf("%s log:\n%s", kind, broker.log.String())
				}
			})
			return &InteropBroker{Kind: kind, Addr: addr, log: broker.log.String}
		}
		if attempt == 2 || !addrInUse(err) {
			tb.Fatal(err)
		}
	}
}

// launcher starts a broker listening on addr with its files in dir. It
// returns the processes it started, the broker last; on failure it has
// stopped them.
type launcher func(dir, addr string) ([]*process, error)

// interopBrokers finds, for each kind of broker but mosquitto (which
// StartBroker runs), its installed programs and returns how to launch it.
// Finding fails when the broker is not installed.
var interopBrokers = map[BrokerKind]func() (launcher, error){
	Mochi:    findMochi,
	NATS:     findNATS,
	Aedes:    findAedes,
	RabbitMQ: findRabbitMQ,
}

func missingBroker(tb testing.TB, kind BrokerKind, err error) {
	tb.Helper()
	msg := fmt.Sprintf("%s broker not installed (%v); `make interop-brokers` installs it", kind, err)
	if os.Getenv(RequiredEnv) != "" {
		tb.Fatalf("%s, and %s is set: every broker must be there", msg, RequiredEnv)
	}
	tb.Skip(msg)
}

// lookPath finds a program on PATH or in the directories Debian and
// Homebrew install servers into, which a user's PATH may lack.
func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin", "/opt/homebrew/bin"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found", name)
}

// repoBin returns the path of name under the repository's bin/, where the
// Makefile builds and installs what the tests need, or an error saying it
// is missing.
func repoBin(name string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	p := filepath.Join(root, "bin", name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s not found", p)
	}
	return p, nil
}
