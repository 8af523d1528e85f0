// Command herald-image packs Herald's static manager binary into a container
// image tarball, without Docker and without a registry. The image is the one
// the repository's Dockerfile builds on gcr.io/distroless/static:nonroot, as
// far as the manager can tell: /manager as the entrypoint, run as
// 65532:65532 from /home/nonroot, a CA bundle at the path SSL_CERT_FILE
// names, a world-writable /tmp, and nothing else: no shell, no libc, no
// package manager.
//
// The tarball is in `docker save` format, which `ctr images import` and
// `docker load` both read. Every timestamp is fixed (SOURCE_DATE_EPOCH, or
// the Unix epoch as in distroless), so the same binary, CA bundle and flags
// give the same bytes and the same digests.
//
//	herald-image -binary bin/manager -out bin/herald-manager-image.tar -ref ghcr.io/heraldiot/herald:dev
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "herald-image:", err)
		os.Exit(1)
	}
}

// run parses the flags, builds the image and writes it.
func run(args []string) error {
	fs := flag.NewFlagSet("herald-image", flag.ContinueOnError)
	var (
		binary   = fs.String("binary", "", "the manager, built with CGO_ENABLED=0 (required)")
		out      = fs.String("out", "", "the image tarball to write (required)")
		ref      = fs.String("ref", "ghcr.io/heraldiot/herald:dev", "the image's name and tag, as `ctr images import` will list it")
		version  = fs.String("version", "", "the org.opencontainers.image.version label (default: the tag of -ref)")
		source   = fs.String("source", "https://github.com/heraldiot/herald", "the org.opencontainers.image.source label")
		caBundle = fs.String("ca-bundle", "/etc/ssl/certs/ca-certificates.crt", "the PEM bundle copied to "+caBundlePath+", as distroless has it (empty: none)")
		created  = fs.String("created", "", "the image's creation time and every file's mtime, RFC 3339 (default: $SOURCE_DATE_EPOCH, else 1970-01-01T00:00:00Z)")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *binary == "" || *out == "" {
		return fmt.Errorf("-binary and -out are required")
	}
	when, err := creationTime(*created, os.Getenv("SOURCE_DATE_EPOCH"))
	if err != nil {
		return err
	}
	spec := imageSpec{
		binary:   *binary,
		caBundle: *caBundle,
		ref:      *ref,
		version:  *version,
		source:   *source,
		created:  when,
	}
	ids, err := writeImage(spec, *out)
	if err != nil {
		return err
	}
	// The image ID is what crictl and `ctr images import` keep: a docker
	// save tarball carries no manifest, so the importer writes its own.
	fmt.Printf("%s: %s (%s), image ID %s\n", *out, ids.ref, ids.platform, ids.config)
	return nil
}

// creationTime is the -created flag's time, else SOURCE_DATE_EPOCH's (the
// reproducible-builds convention), else the Unix epoch.
func creationTime(flagValue, sourceDateEpoch string) (time.Time, error) {
	switch {
	case flagValue != "":
		t, err := time.Parse(time.RFC3339, flagValue)
		if err != nil {
			return time.Time{}, fmt.Errorf("-created: %w", err)
		}
		return t.UTC(), nil
	case sourceDateEpoch != "":
		secs, err := strconv.ParseInt(sourceDateEpoch, 10, 64)
		if err != nil || secs < 0 {
			return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q is not a count of seconds", sourceDateEpoch)
		}
		return time.Unix(secs, 0).UTC(), nil
	default:
		return time.Unix(0, 0).UTC(), nil
	}
}
