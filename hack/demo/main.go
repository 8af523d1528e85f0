// Command demo is `make demo`: Herald end to end on this machine, with a
// real kube-apiserver and etcd, mosquitto, the operator's binary and a
// simulated fleet (see internal/demo). The Makefile builds the binaries it
// runs first; run it from the repository root.
//
// It lives in hack/ rather than cmd/ because it is a development harness
// that needs a checkout (config/, bin/), not a tool to install.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/heraldiot/herald/internal/demo"
	"github.com/heraldiot/herald/internal/testenv"
)

func main() {
	var o demo.Options
	flag.IntVar(&o.Devices, "devices", 0, "simulated devices (default: the profile's)")
	flag.StringVar(&o.Profile, "profile", "", "fleetsim profile (default hack/demo/fleet.yaml)")
	flag.DurationVar(&o.ApprovePause, "approve-after", 5*time.Second, "how long to wait at an approval gate before approving it")
	flag.DurationVar(&o.Timeout, "timeout", 5*time.Minute, "how long the rollout may take")
	flag.BoolVar(&o.Keep, "keep", false, "keep everything running after the rollout, until Ctrl-C")
	flag.Parse()
	o.FleetsimArgs = flag.Args()

	// envtest logs through controller-runtime's logger; the demo narrates
	// instead.
	ctrl.SetLogger(logr.Discard())
	root, err := testenv.RepoRoot()
	if err != nil {
		fail(err)
	}
	o.Root = root
	o.Dir = filepath.Join(root, "bin", "demo")
	o.BinDir = filepath.Join(root, "bin")
	if o.Assets, err = testenv.AssetsDir(); err != nil {
		fail(err)
	}
	o.Out = os.Stdout

	// Signals end the demo, which then stops everything it started; more
	// signals meanwhile are ignored, so that a second Ctrl-C does not
	// leave etcd and kube-apiserver behind.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	_, err = demo.Run(ctx, o)
	switch {
	case ctx.Err() != nil && o.Keep && err == nil:
		// Ctrl-C is how a kept demo ends.
		return
	case ctx.Err() != nil && !o.Keep:
		fmt.Fprintln(os.Stderr, "demo: interrupted")
		os.Exit(130)
	case err != nil:
		fail(err)
	}
	fmt.Println("==> the demo succeeded")
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "demo failed: %v\n", err)
	os.Exit(1)
}
