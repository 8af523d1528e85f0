// Package tlsutil holds TLS settings shared by Herald's command-line tools.
package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
)

// SkipHostnameCheck makes cfg verify the server's certificate chain
// against cfg.RootCAs (the system's when nil) but not its host name. This
// is what mosquitto's --insecure means, and it is much safer than
// InsecureSkipVerify on its own, which accepts any certificate.
func SkipHostnameCheck(cfg *tls.Config) {
	roots := cfg.RootCAs
	cfg.InsecureSkipVerify = true
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("the server sent no certificate")
		}
		opts := x509.VerifyOptions{Roots: roots, Intermediates: x509.NewCertPool()}
		for _, c := range cs.PeerCertificates[1:] {
			opts.Intermediates.AddCert(c)
		}
		_, err := cs.PeerCertificates[0].Verify(opts)
		return err
	}
}
