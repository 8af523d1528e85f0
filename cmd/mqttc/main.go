// Command mqttc publishes and subscribes to MQTT topics with Herald's own
// client. Its two subcommands take the flags of mosquitto_pub and
// mosquitto_sub (2.0) with the same meanings, print the same output and exit
// with the same codes, so a script can switch from one to the other.
//
//	mqttc pub -h broker -t sensors/temp -m 21.5 -q 1
//	mqttc sub -h broker -t 'sensors/#' -v -C 10
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	// SIGINT and SIGTERM end a subscriber cleanly (DISCONNECT, exit 0), as
	// they end mosquitto_sub.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := runContext(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one mqttc command line and returns its exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return runContext(context.Background(), args, stdin, stdout, stderr)
}

// runContext is run that stops a subscriber when ctx ends.
func runContext(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	// Debug lines come from the connection's goroutines while messages are
	// printed by the dispatcher, so every write to stdout takes one lock.
	e := &env{stdin: stdin, stdout: &lockedWriter{w: stdout}, stderr: &lockedWriter{w: stderr}}
	root := newRootCommand(e)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	err := root.ExecuteContext(ctx)
	return e.exitCode(err)
}

// env is what a command runs against.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	// tool is the running subcommand ("pub" or "sub"), for usage hints.
	tool string
	// quiet suppresses runtime error messages (--quiet), not usage errors.
	quiet bool
}

func newRootCommand(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:           "mqttc",
		Short:         "Publish and subscribe to MQTT topics, with mosquitto_pub/mosquitto_sub's flags",
		SilenceErrors: true,
		SilenceUsage:  true,
		// Completion cannot see flags the subcommands parse themselves.
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	// Flag errors become usage errors, reported as mosquitto reports them.
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageErrorf("%v", err) })
	root.AddCommand(newPubCommand(e), newSubCommand(e))
	return root
}

// newSubcommand builds pub or sub. Cobra's flag parsing is off: the -D
// groups need the raw arguments, so parseFlags parses them, and then run
// does the work.
func newSubcommand(e *env, name, use, short string, conn *connFlags, run func(*cobra.Command) error) *cobra.Command {
	cmd := &cobra.Command{
		Use:                use,
		Short:              short,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			e.tool = name
			if err := parseFlags(cmd.Flags(), args, conn); err != nil {
				if errors.Is(err, errHelp) {
					return cmd.Help()
				}
				return err
			}
			e.quiet = conn.quiet
			return run(cmd)
		},
	}
	conn.register(cmd.Flags())
	return cmd
}

// exitCode reports err on stderr and turns it into the exit code.
func (e *env) exitCode(err error) int {
	if err == nil {
		return 0
	}
	var usage *usageError
	if errors.As(err, &usage) {
		fmt.Fprintf(e.stderr, "Error: %s\n", usage.msg)
		if e.tool != "" {
			fmt.Fprintf(e.stderr, "\nUse 'mqttc %s --help' to see usage.\n", e.tool)
		}
		return exitFailure
	}
	var exit *exitError
	if errors.As(err, &exit) {
		if !e.quiet {
			for _, line := range exit.lines {
				fmt.Fprintln(e.stderr, line)
			}
		}
		return exit.code
	}
	if !e.quiet {
		fmt.Fprintf(e.stderr, "Error: %v\n", err)
	}
	return exitFailure
}
