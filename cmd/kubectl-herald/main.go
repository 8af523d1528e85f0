// Command kubectl-herald is a kubectl plugin for Herald's firmware rollouts:
// it shows a rollout's progress (and follows it live), drives it through
// its spec (approve, pause, resume, cancel, skip), summarises a fleet, and
// drills down to single devices by reading the broker's retained status
// messages with the fleet's own connection settings.
//
//	go install ./cmd/kubectl-herald
//	kubectl herald get rollout sensor-2.1.0 --watch
//	kubectl herald approve sensor-2.1.0
//	kubectl herald devices sensor-2.1.0 --state failed -o wide
//
// Every request is the user's own, through their kubeconfig and RBAC;
// docs/kubectl-herald.md has the details.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	"k8s.io/cli-runtime/pkg/genericclioptions"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	a := &app{
		in: os.Stdin, out: os.Stdout, errOut: os.Stderr,
		stdinTerminal:  term.IsTerminal(int(os.Stdin.Fd())),
		stdoutTerminal: term.IsTerminal(int(os.Stdout.Fd())),
		now:            time.Now,
	}
	err := newRootCommand(a).ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

// app is what the commands run against: streams, the kubeconfig flags and
// the clients built from them, and the clock.
type app struct {
	in          io.Reader
	out, errOut io.Writer
	// stdinTerminal lets cancel ask for confirmation; stdoutTerminal makes
	// a watch redraw in place.
	stdinTerminal, stdoutTerminal bool
	now                           func() time.Time

	flags *genericclioptions.ConfigFlags
	kube  *kubeClients // built by connect
}

func newRootCommand(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "kubectl-herald",
		Short: "Watch and drive Herald firmware rollouts",
		Long: `kubectl herald shows Herald's firmware rollouts and fleets, drives rollouts
through their spec, and reads single devices' reports from the broker.

Every action is a patch of the rollout's spec that kubectl could make too;
--dry-run prints that kubectl command instead of acting.`,
		SilenceErrors: true,
		SilenceUsage:  true,
		// The plugin is started as "kubectl herald", which is what the
		// help should show.
		Annotations: map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl herald"},
	}
	a.flags = genericclioptions.NewConfigFlags(true)
	a.flags.AddFlags(root.PersistentFlags())
	root.SetIn(a.in)
	root.SetOut(a.out)
	root.SetErr(a.errOut)
	root.AddCommand(
		newGetCommand(a),
		newApproveCommand(a), newPauseCommand(a, true), newPauseCommand(a, false), newCancelCommand(a), newSkipCommand(a), newRetryCommand(a),
		newFleetCommand(a),
		newDevicesCommand(a),
	)
	return root
}
