package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/client-go/util/retry"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/internal/view"
)

// action is one spec change of a rollout: how to compute it from the
// rollout as it is now, and whether it needs confirmation first.
type action struct {
	patch func(ro *v1.FirmwareRollout) (specPatch, error)
	// confirm, when set, is the question asked before acting.
	confirm func(ro *v1.FirmwareRollout) string
}

// actionFlags are the flags every action takes.
type actionFlags struct {
	dryRun bool
	yes    bool
}

func newActionCommand(a *app, use, short, long, example string, args cobra.PositionalArgs, build func(args []string) action) *cobra.Command {
	var f actionFlags
	cmd := &cobra.Command{
		Use: use, Short: short, Long: long, Example: example, Args: args,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runAction(cmd.Context(), args[0], build(args), f)
		},
	}
	cmd.Flags().BoolVar(&f.dryRun, "dry-run", false, "print the equivalent kubectl patch command and change nothing")
	return cmd
}

func newApproveCommand(a *app) *cobra.Command {
	return newActionCommand(a, "approve ROLLOUT", "Approve the next approval gate (raise spec.approvedWaves by one)",
		`Approve the next approval gate: raise spec.approvedWaves by one. A wave
with requireApproval starts once spec.approvedWaves reaches the number of
gated waves up to and including it. Approving a gate the rollout has not
reached yet lets it pass that gate without stopping.`,
		"  kubectl herald approve sensor-2.1.0\n  kubectl herald approve sensor-2.1.0 --dry-run",
		cobra.ExactArgs(1), func([]string) action { return action{patch: approvePatch} })
}

func newPauseCommand(a *app, paused bool) *cobra.Command {
	use, short, long := "pause ROLLOUT", "Pause a rollout (spec.paused: true)",
		"Pause a rollout: no new notices go out; devices already notified carry on."
	if !paused {
		use, short, long = "resume ROLLOUT", "Resume a paused rollout (spec.paused: false)",
			`Resume a rollout paused by spec.paused. A rollout paused by its failure
policy goes on only once the policy is satisfied again (raise its thresholds).`
	}
	return newActionCommand(a, use, short, long, "  kubectl herald "+strings.Fields(use)[0]+" sensor-2.1.0",
		cobra.ExactArgs(1), func([]string) action {
			return action{patch: func(ro *v1.FirmwareRollout) (specPatch, error) { return pausePatch(ro, paused) }}
		})
}

func newCancelCommand(a *app) *cobra.Command {
	var f actionFlags
	cmd := &cobra.Command{
		Use:   "cancel ROLLOUT",
		Short: "Cancel a rollout (spec.canceled: true), after confirmation",
		Long: `Cancel a rollout: every notice of it is withdrawn and devices that have not
started installing stop. It cannot be undone. Asks for confirmation on a
terminal; --yes confirms up front (needed when stdin is not a terminal).`,
		Example: "  kubectl herald cancel sensor-2.1.0\n  kubectl herald cancel sensor-2.1.0 --yes",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			act := action{patch: cancelPatch}
			if !f.yes {
				act.confirm = func(ro *v1.FirmwareRollout) string {
					return fmt.Sprintf("Cancel firmwarerollout %s/%s (%s, %d/%d succeeded)? Every notice is withdrawn; this cannot be undone.",
						ro.Namespace, ro.Name, view.OrDash(string(ro.Status.Phase)), ro.Status.Totals.Succeeded, ro.Status.Totals.Targeted)
				}
			}
			return a.runAction(cmd.Context(), args[0], act, f)
		},
	}
	cmd.Flags().BoolVar(&f.dryRun, "dry-run", false, "print the equivalent kubectl patch command and change nothing")
	cmd.Flags().BoolVarP(&f.yes, "yes", "y", false, "cancel without asking")
	return cmd
}

func newSkipCommand(a *app) *cobra.Command {
	return newActionCommand(a, "skip ROLLOUT DEVICE...", "Stop waiting for devices (add them to spec.skipDevices)",
		`Stop waiting for devices: add them to spec.skipDevices. An unfinished device
listed there counts as skipped and no longer holds its wave; devices that
finished keep their outcome.`,
		"  kubectl herald skip sensor-2.1.0 sensor-0042 sensor-0043",
		cobra.MinimumNArgs(2), func(args []string) action {
			return action{patch: func(ro *v1.FirmwareRollout) (specPatch, error) { return skipPatch(ro, args[1:]) }}
		})
}

func newRetryCommand(a *app) *cobra.Command {
	var rejections bool
	cmd := newActionCommand(a, "retry ROLLOUT", "Give failed devices one more attempt (raise spec.retryPolicy by one)",
		`Give every failed device one more attempt: raise the download, install and
timeout classes of spec.retryPolicy by one (and rejection with
--rejections). Devices that used all their retries, or had none, are
notified again with their next attempt right away. Failures of other
reasons (signature-invalid, version-mismatch) are never retried. A
rollout that has finished cannot be retried: create a new rollout for the
devices still on the old version.`,
		"  kubectl herald retry sensor-2.1.0\n  kubectl herald retry sensor-2.1.0 --rejections --dry-run",
		cobra.ExactArgs(1), func([]string) action {
			return action{patch: func(ro *v1.FirmwareRollout) (specPatch, error) { return retryPatch(ro, rejections) }}
		})
	cmd.Flags().BoolVar(&rejections, "rejections", false, "retry devices that rejected the update too")
	return cmd
}

// runAction reads the rollout, computes the patch and applies it, or
// prints the kubectl command that would (dry run). A guarded patch that
// meets a concurrent change is computed again on the new rollout.
func (a *app) runAction(ctx context.Context, name string, act action, f actionFlags) error {
	k, err := a.connect()
	if err != nil {
		return err
	}
	asked := false
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		ro, err := k.getRollout(ctx, name)
		if err != nil {
			return err
		}
		p, err := act.patch(ro)
		if err != nil {
			return err
		}
		if p.Noop != "" {
			fmt.Fprintln(a.out, p.Noop)
			return nil
		}
		if f.dryRun {
			fmt.Fprintln(a.out, kubectlCommand(ro.Namespace, ro.Name, &p))
			return nil
		}
		if act.confirm != nil && !asked {
			if err := a.confirm(act.confirm(ro)); err != nil {
				return err
			}
			asked = true
		}
		rv := ""
		if p.Guarded {
			rv = ro.ResourceVersion
		}
		if _, err := k.patchRollout(ctx, name, p.body(rv)); err != nil {
			return err
		}
		fmt.Fprintf(a.out, "firmwarerollout %s/%s %s\n", ro.Namespace, ro.Name, p.Summary)
		return nil
	})
}

// errNotConfirmed is a cancel the user declined.
var errNotConfirmed = errors.New("not confirmed: nothing changed")

// confirm asks question on the terminal and accepts y or yes. Without a
// terminal to ask on it refuses, so that a script cannot cancel by
// accident: --yes says it means to.
func (a *app) confirm(question string) error {
	if !a.stdinTerminal {
		return errors.New("stdin is not a terminal to confirm on: pass --yes to cancel")
	}
	fmt.Fprintf(a.out, "%s [y/N]: ", question)
	line, err := bufio.NewReader(a.in).ReadString('\n')
	if err != nil && line == "" {
		return errNotConfirmed
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return nil
	}
	return errNotConfirmed
}
