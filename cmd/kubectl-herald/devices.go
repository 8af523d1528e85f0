package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/internal/brokerconn"
	"github.com/heraldiot/herald/internal/view"
	"github.com/heraldiot/herald/mqtt"
	"github.com/heraldiot/herald/protocol"
)

// devicesFlags are the flags of `devices`.
type devicesFlags struct {
	states  []string
	output  string
	timeout time.Duration
	// Overrides of the fleet's connection settings, for users who may not
	// read its Secrets or cannot reach its broker's address.
	brokerURLs    []string
	username      string
	password      string
	caFile        string
	tlsServerName string
}

// stateFilters are the values --state takes: the states devices report,
// the operator's skipped, and inProgress for the three unfinished states.
var stateFilters = []string{"accepted", "downloading", "installing", "inProgress", "succeeded", "failed", "rejected", "canceled", "skipped"}

func newDevicesCommand(a *app) *cobra.Command {
	var f devicesFlags
	cmd := &cobra.Command{
		Use:   "devices ROLLOUT",
		Short: "List the devices that reported on a rollout, from the broker's retained status messages",
		Long: `List the devices that reported on a rollout, read from the broker's retained
status messages (R/devices/+/status) with the inventory and presence each
device retains, filtered to the rollout's UID.

The plugin connects to the fleet's broker with the fleet's own settings:
its URLs, TLS and credentials Secrets, read with your own rights. When you
may not read those Secrets, or the broker's address is not reachable from
where you are (use kubectl port-forward), override them with the --broker-*
flags and --username/--password. It connects with a client ID of its own,
never the operator's, and publishes nothing but one non-retained marker
under R/_herald/plugin/ that tells it the broker's replay is complete.

Devices timed out by the operator have no failure of their own on the
broker; those in the rollout's failure sample are listed as failed.`,
		Example: `  kubectl herald devices sensor-2.1.0
  kubectl herald devices sensor-2.1.0 --state failed,rejected -o wide
  kubectl herald devices sensor-2.1.0 --state inProgress -o json
  kubectl herald devices sensor-2.1.0 --broker-url tcp://localhost:1883 --username me --password "$PW"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runDevices(cmd.Context(), args[0], &f)
		},
	}
	fl := cmd.Flags()
	fl.StringSliceVar(&f.states, "state", nil, "show only devices in these states: "+strings.Join(stateFilters, ", "))
	fl.StringVarP(&f.output, "output", "o", "", "output format: wide or json")
	fl.DurationVar(&f.timeout, "timeout", 30*time.Second, "how long to wait for the broker: connecting and the retained replay")
	fl.StringSliceVar(&f.brokerURLs, "broker-url", nil, "broker URLs to use instead of the fleet's (e.g. tcp://localhost:1883 after kubectl port-forward)")
	fl.StringVar(&f.username, "username", "", "MQTT user name to use instead of the fleet's credentials Secret")
	fl.StringVar(&f.password, "password", "", "MQTT password to go with --username")
	fl.StringVar(&f.caFile, "broker-ca", "", "PEM CA bundle file to use instead of the fleet's CA Secret")
	fl.StringVar(&f.tlsServerName, "broker-tls-server-name", "", "name to check the broker's certificate against (with --broker-url)")
	return cmd
}

func (a *app) runDevices(ctx context.Context, name string, f *devicesFlags) error {
	want, err := parseStates(f.states)
	if err != nil {
		return err
	}
	if f.output != "" && f.output != "wide" && f.output != "json" {
		return fmt.Errorf("unknown output format %q: use wide or json", f.output)
	}
	k, err := a.connect()
	if err != nil {
		return err
	}
	ro, err := k.getRollout(ctx, name)
	if err != nil {
		return err
	}
	fleet, err := k.getFleet(ctx, ro.Spec.FleetRef.Name)
	if err != nil {
		return err
	}
	settings, err := a.brokerSettings(ctx, k, fleet, f)
	if err != nil {
		return err
	}
	topics, err := protocol.NewTopics(fleet.Spec.TopicRoot)
	if err != nil {
		return fmt.Errorf("devicefleet %s/%s: %w", fleet.Namespace, fleet.Name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	devices, err := readRetained(ctx, settings, topics)
	if err != nil {
		return err
	}
	all := deviceRows(ro, devices)
	rows := filterRows(all, want)
	if f.output == "json" {
		return writeJSON(a.out, ro, rows)
	}
	if len(rows) == 0 {
		fmt.Fprintf(a.errOut, "No devices of %s/%s match (%s reported on it; %s with an inventory on the broker).\n",
			ro.Namespace, ro.Name, view.Plural(int64(len(all)), "device"), view.Plural(int64(countInventories(devices)), "device"))
		return nil
	}
	writeTable(a.out, rows, f.output == "wide")
	return nil
}

func parseStates(in []string) (map[string]bool, error) {
	if len(in) == 0 {
		return nil, nil
	}
	want := map[string]bool{}
	for _, s := range in {
		i := slices.IndexFunc(stateFilters, func(f string) bool { return strings.EqualFold(f, strings.TrimSpace(s)) })
		if i < 0 {
			return nil, fmt.Errorf("unknown --state %q: use %s", s, strings.Join(stateFilters, ", "))
		}
		if stateFilters[i] == "inProgress" {
			want["accepted"], want["downloading"], want["installing"] = true, true, true
			continue
		}
		want[stateFilters[i]] = true
	}
	return want, nil
}

// brokerSettings resolves the fleet's connection settings with the user's
// rights, leaving out the Secrets that flags replace, and applies the
// flags.
func (a *app) brokerSettings(ctx context.Context, k *kubeClients, fleet *v1.DeviceFleet, f *devicesFlags) (brokerconn.Settings, error) {
	fl := fleet.DeepCopy()
	b := &fl.Spec.Broker
	if f.username != "" {
		b.CredentialsSecretRef = nil
	}
	if f.caFile != "" {
		if b.TLS == nil {
			b.TLS = &v1.BrokerTLS{}
		}
		b.TLS.CASecretRef = nil
	}
	read := func(name string) (*corev1.Secret, error) {
		return k.core.Secrets(fl.Namespace).Get(ctx, name, metav1.GetOptions{})
	}
	s, err := brokerconn.Resolve(fl, read)
	if err != nil {
		return s, secretError(fl, err)
	}
	if f.username != "" {
		s.Username, s.Password = f.username, []byte(f.password)
	}
	if f.caFile != "" {
		pem, err := os.ReadFile(f.caFile)
		if err != nil {
			return s, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return s, fmt.Errorf("--broker-ca %s holds no PEM certificate", f.caFile)
		}
		s.TLS.RootCAs = pool
	}
	if len(f.brokerURLs) > 0 {
		s.URLs = f.brokerURLs
	}
	if f.tlsServerName != "" {
		if s.TLS == nil {
			s.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		s.TLS.ServerName = f.tlsServerName
	}
	// Never the operator's client ID: the broker would disconnect the
	// operator's session to make room for ours. 23 bytes, the most every
	// MQTT 3.1.1 broker accepts.
	s.ClientID = "kubectl-herald-" + randomHex(4)
	return s, nil
}

// secretError explains a Secret the user could not read and what to do.
func secretError(fleet *v1.DeviceFleet, err error) error {
	var se *brokerconn.SecretError
	if !errors.As(err, &se) {
		return fmt.Errorf("devicefleet %s/%s: %w", fleet.Namespace, fleet.Name, err)
	}
	ref := fleet.Namespace + "/" + se.Name
	instead := map[brokerconn.SecretUse]string{
		brokerconn.UseCredentials: " or use --username/--password",
		brokerconn.UseCA:          " or use --broker-ca FILE",
	}[se.Use]
	switch {
	case apierrors.IsForbidden(err):
		return fmt.Errorf("cannot read Secret %s (the %s of fleet %s): forbidden; ask for get on secrets%s", ref, se.Use, fleet.Name, instead)
	case apierrors.IsNotFound(err):
		return fmt.Errorf("secret %s (the %s of fleet %s) does not exist", ref, se.Use, fleet.Name)
	}
	return fmt.Errorf("cannot read Secret %s (the %s of fleet %s): %w", ref, se.Use, fleet.Name, se.Err)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

// device is what the broker retains about one device.
type device struct {
	inventory *protocol.Inventory
	presence  *protocol.Presence
	status    *protocol.Status
}

// replay collects retained device messages until its marker comes back.
type replay struct {
	topics protocol.Topics
	marker string
	nonce  string
	done   chan struct{}

	mu sync.Mutex
	// devices collects until the marker comes; then final holds them
	// and devices is nil, so that live messages after the replay are
	// left out.
	devices, final map[string]*device
	malformed      int
}

// handle runs on the client's dispatcher, one message at a time, in the
// order the broker sent them.
func (r *replay) handle(m *mqtt.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if m.Topic == r.marker {
		if string(m.Payload) == r.nonce && r.devices != nil {
			r.final, r.devices = r.devices, nil
			close(r.done)
		}
		return
	}
	if r.devices == nil || protocol.IsWithdrawal(m.Payload) {
		return
	}
	id, kind, err := r.topics.ParseDeviceTopic(m.Topic)
	if err != nil {
		r.malformed++
		return
	}
	d := r.devices[id]
	if d == nil {
		d = &device{}
		r.devices[id] = d
	}
	switch kind {
	case protocol.TopicStatus:
		if s, err := protocol.ParseStatus(m.Payload); err == nil {
			d.status = &s
		} else {
			r.malformed++
		}
	case protocol.TopicInventory:
		if inv, err := protocol.ParseInventory(m.Payload); err == nil && inv.DeviceID == id {
			d.inventory = &inv
		} else {
			r.malformed++
		}
	case protocol.TopicPresence:
		if p, err := protocol.ParsePresence(m.Payload); err == nil {
			d.presence = &p
		} else {
			r.malformed++
		}
	}
}

// readRetained connects with a fresh clean session, subscribes to every
// device's status, inventory and presence and to a marker topic of its
// own in one SUBSCRIBE, then publishes a non-retained message on the
// marker topic. The broker sends the retained messages of a subscription
// before it handles anything published after it, so the marker's arrival
// means the replay is complete.
func readRetained(ctx context.Context, s brokerconn.Settings, topics protocol.Topics) (map[string]*device, error) {
	r := &replay{
		topics:  topics,
		marker:  topics.Root() + "/_herald/plugin/" + randomHex(8),
		nonce:   randomHex(16),
		done:    make(chan struct{}),
		devices: map[string]*device{},
	}
	opts := s.Options()
	opts.CleanStart = true
	opts.DisableAutoReconnect = true
	// A replay is about three messages per device; a wide window and
	// queue let the broker send it at full speed.
	opts.ReceiveMaximum = 4096
	opts.HandlerQueue = 4096 + 512
	opts.DiscardUserProperties = true
	if dl, ok := ctx.Deadline(); ok {
		opts.ConnectTimeout = time.Until(dl)
	}
	c := mqtt.New(opts)
	defer func() {
		// Also after a failed Connect, which leaves the client to close.
		dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.Disconnect(dctx)
	}()
	if err := c.Connect(ctx); err != nil {
		return nil, fmt.Errorf("connect to the fleet's broker %s: %w (from outside the cluster, kubectl port-forward and --broker-url may help)",
			strings.Join(s.URLs, ", "), err)
	}
	subs := []mqtt.Subscription{
		{Filter: topics.AllStatus(), QoS: mqtt.AtLeastOnce},
		{Filter: topics.AllInventory(), QoS: mqtt.AtLeastOnce},
		{Filter: topics.AllPresence(), QoS: mqtt.AtLeastOnce},
		{Filter: r.marker, QoS: mqtt.AtLeastOnce},
	}
	if _, err := c.SubscribeWith(ctx, mqtt.SubscribeRequest{Subscriptions: subs, Handler: r.handle}); err != nil {
		return nil, fmt.Errorf("subscribe to the fleet's device topics: %w (the broker's ACL must let this user read %s/devices/+/status, /inventory, /presence and write %s/_herald/plugin/#)",
			err, topics.Root(), topics.Root())
	}
	if err := c.Publish(ctx, &mqtt.Message{Topic: r.marker, Payload: []byte(r.nonce), QoS: mqtt.AtLeastOnce}); err != nil {
		return nil, fmt.Errorf("publish the end-of-replay marker on %s: %w", r.marker, err)
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		return nil, fmt.Errorf("the broker did not send back the end-of-replay marker: %w; it may have dropped part of the replay (mosquitto: raise max_queued_messages), or --timeout is too short for the fleet", ctx.Err())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.final, nil
}
