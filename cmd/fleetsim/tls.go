package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/heraldiot/herald/internal/tlsutil"
)

// tlsConfig builds the TLS settings for a TLS broker URL from --cafile,
// --cert, --key and --insecure, which mean what they mean to mqttc and
// mosquitto_sub: without --cafile the system's CAs are trusted, and
// --insecure skips only the host name check, not the chain.
func (o *options) tlsConfig() (*tls.Config, error) {
	if (o.cert == "") != (o.key == "") {
		return nil, errors.New("--cert and --key go together")
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.cafile != "" {
		pem, err := os.ReadFile(o.cafile)
		if err != nil {
			return nil, fmt.Errorf("--cafile: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--cafile %s: no PEM certificate", o.cafile)
		}
	}
	if o.cert != "" {
		pair, err := tls.LoadX509KeyPair(o.cert, o.key)
		if err != nil {
			return nil, fmt.Errorf("--cert/--key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	if o.insecure {
		// --insecure skips only the host name check, as with mosquitto.
		tlsutil.SkipHostnameCheck(cfg)
	}
	return cfg, nil
}
