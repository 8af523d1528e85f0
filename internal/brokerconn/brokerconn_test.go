package brokerconn

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/mqtt"
)

// selfSigned returns a PEM certificate and key.
func selfSigned(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func fleetWith(b v1.BrokerSpec) *v1.DeviceFleet {
	return &v1.DeviceFleet{
		ObjectMeta: metav1.ObjectMeta{Namespace: "iot", Name: "sensors"},
		Spec:       v1.DeviceFleetSpec{Broker: b, TopicRoot: "factory-7/sensors"},
	}
}

func secretsReader(secrets map[string]map[string][]byte) SecretReader {
	return func(name string) (*corev1.Secret, error) {
		data, ok := secrets[name]
		if !ok {
			return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "secrets"}, name)
		}
		return &corev1.Secret{Data: data}, nil
	}
}

func TestResolve(t *testing.T) {
	cert, key := selfSigned(t)
	secrets := map[string]map[string][]byte{
		"creds":     {"username": []byte("herald"), "password": []byte("s3cret")},
		"nouser":    {"password": []byte("x")},
		"ca":        {"ca.crt": cert},
		"badca":     {"ca.crt": []byte("not pem")},
		"client":    {"tls.crt": cert, "tls.key": key},
		"badclient": {"tls.crt": []byte("x"), "tls.key": []byte("y")},
	}
	ref := func(name string) *corev1.LocalObjectReference { return &corev1.LocalObjectReference{Name: name} }
	tests := map[string]struct {
		broker  v1.BrokerSpec
		check   func(t *testing.T, s Settings)
		wantErr string
	}{
		"defaults": {
			broker: v1.BrokerSpec{URLs: []string{"tcp://b:1883"}},
			check: func(t *testing.T, s Settings) {
				if s.Version != mqtt.V5 || s.KeepAlive != DefaultKeepAlive || s.TLS != nil || s.Username != "" {
					t.Errorf("got %+v", s)
				}
				if s.ClientID != DefaultClientID("iot", "sensors") {
					t.Errorf("client ID %q", s.ClientID)
				}
			},
		},
		"explicit": {
			broker: v1.BrokerSpec{
				URLs: []string{"tcp://b:1883"}, ProtocolVersion: v1.ProtocolV311, ClientID: "mine",
				KeepAlive: &metav1.Duration{Duration: time.Minute}, CredentialsSecretRef: ref("creds"),
			},
			check: func(t *testing.T, s Settings) {
				if s.Version != mqtt.V311 || s.ClientID != "mine" || s.KeepAlive != time.Minute {
					t.Errorf("got %+v", s)
				}
				if s.Username != "herald" || string(s.Password) != "s3cret" {
					t.Errorf("credentials %q/%q", s.Username, s.Password)
				}
				o := s.Options()
				if o.Username != "herald" || o.ClientID != "mine" || o.Servers[0] != "tcp://b:1883" {
					t.Errorf("options %+v", o)
				}
			},
		},
		"tls": {
			broker: v1.BrokerSpec{URLs: []string{"tls://b:8883"}, TLS: &v1.BrokerTLS{
				CASecretRef: ref("ca"), ClientCertSecretRef: ref("client"), ServerName: "broker.example",
			}},
			check: func(t *testing.T, s Settings) {
				if s.TLS == nil || s.TLS.RootCAs == nil || len(s.TLS.Certificates) != 1 || s.TLS.ServerName != "broker.example" {
					t.Fatalf("TLS %+v", s.TLS)
				}
				if s.TLSFingerprint == "" {
					t.Error("no fingerprint")
				}
			},
		},
		"missing secret": {
			broker:  v1.BrokerSpec{URLs: []string{"tcp://b:1883"}, CredentialsSecretRef: ref("gone")},
			wantErr: `secret "gone": secrets "gone" not found`,
		},
		"no username": {
			broker:  v1.BrokerSpec{URLs: []string{"tcp://b:1883"}, CredentialsSecretRef: ref("nouser")},
			wantErr: `secret "nouser" has no key "username"`,
		},
		"bad CA": {
			broker:  v1.BrokerSpec{URLs: []string{"tls://b:8883"}, TLS: &v1.BrokerTLS{CASecretRef: ref("badca")}},
			wantErr: `secret "badca": key "ca.crt" holds no PEM certificate`,
		},
		"bad client cert": {
			broker:  v1.BrokerSpec{URLs: []string{"tls://b:8883"}, TLS: &v1.BrokerTLS{ClientCertSecretRef: ref("badclient")}},
			wantErr: `secret "badclient": tls.crt/tls.key: tls: failed to find any PEM data in certificate input`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s, err := Resolve(fleetWith(tc.broker), secretsReader(secrets))
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("error %v, want %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, s)
		})
	}
}

func TestSecretErrorUnwraps(t *testing.T) {
	forbidden := apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, "creds", errors.New("no"))
	f := fleetWith(v1.BrokerSpec{URLs: []string{"tcp://b:1883"}, CredentialsSecretRef: &corev1.LocalObjectReference{Name: "creds"}})
	_, err := Resolve(f, func(string) (*corev1.Secret, error) { return nil, forbidden })
	var se *SecretError
	if !errors.As(err, &se) || se.Name != "creds" || se.Use != UseCredentials {
		t.Fatalf("error %#v", err)
	}
	if !apierrors.IsForbidden(err) {
		t.Errorf("IsForbidden(%v) = false", err)
	}
}

func TestUsesSecretsAndClientID(t *testing.T) {
	if UsesSecrets(&v1.BrokerSpec{}) || !UsesSecrets(&v1.BrokerSpec{TLS: &v1.BrokerTLS{CASecretRef: &corev1.LocalObjectReference{Name: "x"}}}) {
		t.Error("UsesSecrets")
	}
	a, b := DefaultClientID("a-b", "c"), DefaultClientID("a", "b-c")
	if a == b || !strings.HasPrefix(a, "herald-a-b-c-") {
		t.Errorf("client IDs %q %q", a, b)
	}
	if long := DefaultClientID(strings.Repeat("n", 60), "x"); len(long) != 48+1+10 {
		t.Errorf("long ID %q has %d bytes", long, len(long))
	}
}

// A fleet named with dots gets a client ID without them: the ID names the
// sync-marker topics, and NATS takes a dot in a topic for its separator.
func TestDefaultClientIDHasNoDots(t *testing.T) {
	id := DefaultClientID("factory-7", "th.sensors.v2")
	if strings.Contains(id, ".") {
		t.Fatalf("client ID %q has a dot", id)
	}
	if id == DefaultClientID("factory-7", "th-sensors-v2") {
		t.Fatalf("%q: fleets whose names differ only in dots and dashes share an ID", id)
	}
}
