package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/heraldiot/herald/internal/tlsutil"
)

// tlsConfig builds the TLS settings from the flags, or returns nil for
// plain TCP. As with mosquitto, TLS is on when a CA source is named
// (--cafile, --capath, --tls-use-os-certs), for an mqtts:// URL, and for an
// explicit port 8883; without a CA file or directory the operating system's
// CAs are trusted.
func (f *connFlags) tlsConfig(host string, force bool) (*tls.Config, error) {
	if (f.cert == "") != (f.key == "") {
		return nil, usageErrorf("Both certfile and keyfile must be provided if one of them is set.")
	}
	if f.cafile == "" && f.capath == "" && !f.useOSCerts && !force {
		// Like mosquitto, --cert, --insecure and --tls-version alone do not
		// turn TLS on, and are ignored.
		return nil, nil
	}
	cfg := &tls.Config{ServerName: host}
	var err error
	if cfg.MinVersion, err = tlsVersion(f.tlsVersion); err != nil {
		return nil, err
	}
	cfg.MaxVersion = cfg.MinVersion
	if f.cafile != "" || f.capath != "" {
		if cfg.RootCAs, err = f.rootCAs(); err != nil {
			return nil, tlsOptionsError(err)
		}
	}
	if f.cert != "" {
		pair, err := tls.LoadX509KeyPair(f.cert, f.key)
		if err != nil {
			return nil, tlsOptionsError(err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	if f.insecure {
		// --insecure skips only the host name check, as with mosquitto.
		tlsutil.SkipHostnameCheck(cfg)
	}
	return cfg, nil
}

// tlsOptionsError reports an unreadable CA, certificate or key file in
// mosquitto's words.
func tlsOptionsError(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return exitErrorf(exitFailure, "Error: Problem setting TLS options: File not found.")
	}
	return exitErrorf(exitFailure, "Error: Problem setting TLS options: %v.", err)
}

// rootCAs loads --cafile and the *.crt and *.pem files of --capath, adding
// the system's CAs with --tls-use-os-certs.
func (f *connFlags) rootCAs() (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if f.useOSCerts {
		sys, err := x509.SystemCertPool()
		if err != nil {
			return nil, err
		}
		pool = sys
	}
	files := []string{}
	if f.cafile != "" {
		files = append(files, f.cafile)
	}
	if f.capath != "" {
		entries, err := os.ReadDir(f.capath)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if name := e.Name(); !e.IsDir() && (strings.HasSuffix(name, ".crt") || strings.HasSuffix(name, ".pem")) {
				files = append(files, filepath.Join(f.capath, name))
			}
		}
	}
	for _, name := range files {
		pem, err := os.ReadFile(name)
		if err != nil {
			return nil, err
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("no PEM certificate in %s", name)
		}
	}
	return pool, nil
}

// tlsVersion maps --tls-version to a fixed version; empty leaves Go's
// default range (1.2 and up), which is mosquitto's too.
func tlsVersion(name string) (uint16, error) {
	switch name {
	case "":
		return 0, nil
	case "tlsv1.3":
		return tls.VersionTLS13, nil
	case "tlsv1.2":
		return tls.VersionTLS12, nil
	case "tlsv1.1":
		return tls.VersionTLS11, nil
	}
	return 0, usageErrorf("Invalid TLS version %q; use tlsv1.3, tlsv1.2 or tlsv1.1.", name)
}
