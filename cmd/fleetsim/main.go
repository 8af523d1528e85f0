// Command fleetsim simulates a fleet of firmware-updatable devices against
// an MQTT broker: every device is its own MQTT connection and speaks
// Herald's device protocol (docs/protocol.md), with a Will, presence and
// inventory, and follows update notices through accept, download, install
// and a reboot into the new version, or fails or rejects them with the
// probabilities it is given.
//
//	fleetsim --broker tcp://127.0.0.1:1883 --devices 500 \
//	    --models th-sensor=3,th-sensor-pro=1 --versions 1.8.2=2,1.9.1=1
//	fleetsim --profile hack/demo/fleet.yaml --fail-probability 0.1
//
// It prints a progress line while it runs and a summary when it stops (on
// SIGINT, SIGTERM or after --duration).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newCommand(os.Stdout, os.Stderr).ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "fleetsim: %v\n", err)
		os.Exit(1)
	}
}

// newCommand builds the fleetsim command writing its report to stdout.
func newCommand(stdout, stderr io.Writer) *cobra.Command {
	o := &options{}
	cmd := &cobra.Command{
		Use:   "fleetsim",
		Short: "Simulate a fleet of devices that speak Herald's device protocol over MQTT",
		Long: `fleetsim connects N simulated devices to an MQTT broker, each with its own
connection, Will, presence and inventory as docs/protocol.md describes, and
has them act on Herald's update notices: accept, download (simulated, or a
real HTTP GET checked against the notice's SHA-256 with --fetch), install,
reboot into the new version and report success; or fail or reject with the
probabilities given. Device IDs are stable: th-sensor-0001, th-sensor-0002...

The fleet comes from flags (--models, --versions, --labels) or from a YAML
profile (--profile); behaviour flags override the profile.`,
		Args:          cobra.NoArgs,
		SilenceErrors: true,
		SilenceUsage:  true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return run(cmd.Context(), cmd, o, stdout)
		},
	}
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	o.register(cmd.Flags())
	return cmd
}
