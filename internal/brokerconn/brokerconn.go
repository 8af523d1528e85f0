// Package brokerconn turns a DeviceFleet's broker spec, with the Secrets it
// names, into MQTT connection settings. The operator and kubectl-herald
// both reach a fleet's broker through it, so a fleet that works for one is
// reached the same way by the other.
//
// Reading the Secrets is the caller's business (the operator reads them
// uncached with its own rights, the plugin with the user's), so Resolve
// takes a function that reads one Secret and otherwise only computes.
package brokerconn

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/mqtt"
)

// DefaultKeepAlive is the keepalive of a fleet that sets none (the CRD's
// default, for objects written before the default existed).
const DefaultKeepAlive = 30 * time.Second

// Settings are what an MQTT client needs to reach a fleet's broker.
// Password and the TLS keys are secrets: never log Settings whole.
type Settings struct {
	URLs      []string
	Version   mqtt.Version
	ClientID  string
	KeepAlive time.Duration
	Username  string
	Password  []byte
	// TLS is nil when the fleet configures no TLS; tls:// URLs then use
	// the system roots.
	TLS *tls.Config
	// TLSFingerprint identifies the TLS material, which a *tls.Config
	// cannot be compared by; empty without TLS.
	TLSFingerprint string
}

// Options returns client options for the settings: servers, protocol
// version, client ID, keepalive, credentials and TLS. The caller adds
// everything about how it uses the session.
func (s *Settings) Options() mqtt.Options {
	return mqtt.Options{
		Servers:   s.URLs,
		Version:   s.Version,
		ClientID:  s.ClientID,
		KeepAlive: s.KeepAlive,
		Username:  s.Username,
		Password:  s.Password,
		TLSConfig: s.TLS,
	}
}

// SecretUse says what a fleet reads a Secret for.
type SecretUse string

// The Secrets a broker spec can name.
const (
	UseCredentials SecretUse = "credentials"        // spec.broker.credentialsSecretRef
	UseCA          SecretUse = "CA bundle"          // spec.broker.tls.caSecretRef
	UseClientCert  SecretUse = "client certificate" // spec.broker.tls.clientCertSecretRef
)

// SecretError is a Secret that could not be read. Err is the reader's
// error, so apierrors.IsNotFound and IsForbidden see through it.
type SecretError struct {
	Name string
	Use  SecretUse
	Err  error
}

func (e *SecretError) Error() string { return fmt.Sprintf("secret %q: %v", e.Name, e.Err) }

// Unwrap returns the reader's error.
func (e *SecretError) Unwrap() error { return e.Err }

// SecretReader returns the Secret called name in the fleet's namespace.
type SecretReader func(name string) (*corev1.Secret, error)

// UsesSecrets reports whether the broker spec names any Secret.
func UsesSecrets(b *v1.BrokerSpec) bool {
	return b.CredentialsSecretRef != nil || (b.TLS != nil && (b.TLS.CASecretRef != nil || b.TLS.ClientCertSecretRef != nil))
}

// DefaultClientID names a fleet's MQTT session after it, readable in
// broker logs, with a hash of namespace and name that keeps fleets apart
// whose joined names would be equal ("a-b"/"c" and "a"/"b-c") or cut.
// Dots become dashes: the ID names the session's sync-marker topics, and
// NATS reads a dot in a topic as its own separator and closes the
// connection.
func DefaultClientID(namespace, name string) string {
	sum := sha256.Sum256([]byte(namespace + "/" + name))
	base := "herald-" + namespace + "-" + strings.ReplaceAll(name, ".", "-")
	if len(base) > 48 {
		base = base[:48]
	}
	return base + "-" + hex.EncodeToString(sum[:5])
}

// Resolve computes the settings of f's broker, reading the Secrets its
// spec names with read. Its errors name the Secret and key at fault and
// never hold Secret contents; a Secret that could not be read is a
// *SecretError.
func Resolve(f *v1.DeviceFleet, read SecretReader) (Settings, error) {
	b := &f.Spec.Broker
	s := Settings{
		URLs:      b.URLs,
		Version:   mqtt.V5,
		ClientID:  b.ClientID,
		KeepAlive: DefaultKeepAlive,
	}
	if b.ProtocolVersion == v1.ProtocolV311 {
		s.Version = mqtt.V311
	}
	if s.ClientID == "" {
		s.ClientID = DefaultClientID(f.Namespace, f.Name)
	}
	if b.KeepAlive != nil {
		s.KeepAlive = b.KeepAlive.Duration
	}
	secret := func(name string, use SecretUse) (*corev1.Secret, error) {
		sec, err := read(name)
		if err != nil {
			return nil, &SecretError{Name: name, Use: use, Err: err}
		}
		return sec, nil
	}
	if ref := b.CredentialsSecretRef; ref != nil {
		sec, err := secret(ref.Name, UseCredentials)
		if err != nil {
			return s, err
		}
		user, ok := sec.Data["username"]
		if !ok {
			return s, fmt.Errorf("secret %q has no key \"username\"", ref.Name)
		}
		s.Username, s.Password = string(user), sec.Data["password"]
	}
	if t := b.TLS; t != nil {
		tc := &tls.Config{ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify, MinVersion: tls.VersionTLS12}
		h := sha256.New()
		if ref := t.CASecretRef; ref != nil {
			sec, err := secret(ref.Name, UseCA)
			if err != nil {
				return s, err
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(sec.Data["ca.crt"]) {
				return s, fmt.Errorf("secret %q: key \"ca.crt\" holds no PEM certificate", ref.Name)
			}
			tc.RootCAs = pool
			h.Write(sec.Data["ca.crt"])
		}
		if ref := t.ClientCertSecretRef; ref != nil {
			sec, err := secret(ref.Name, UseClientCert)
			if err != nil {
				return s, err
			}
			cert, err := tls.X509KeyPair(sec.Data["tls.crt"], sec.Data["tls.key"])
			if err != nil {
				// Where crypto/tls wraps a parse error, the inner one is
				// the cause without tls' prefix; most of its errors wrap
				// nothing and are kept whole.
				if inner := errors.Unwrap(err); inner != nil {
					err = inner
				}
				return s, fmt.Errorf("secret %q: tls.crt/tls.key: %w", ref.Name, err)
			}
			tc.Certificates = []tls.Certificate{cert}
			h.Write(sec.Data["tls.crt"])
			h.Write(sec.Data["tls.key"])
		}
		fmt.Fprintf(h, "|%s|%t", t.ServerName, t.InsecureSkipVerify)
		s.TLS = tc
		s.TLSFingerprint = hex.EncodeToString(h.Sum(nil))
	}
	return s, nil
}
