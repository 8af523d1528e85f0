package demo

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/fields"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/internal/view"
)

// The demo shows its objects the way `kubectl herald` does: it prints the
// plugin command a person would type and, below it, what the plugin prints
// for it, drawn by the plugin's own views (internal/view) from the same
// objects. It does not run the plugin's binary, which `make demo` does not
// build; introducePlugin says how to run the commands for real.

// introducePlugin tells how to follow the rollout with the plugin from
// another terminal, against this demo's apiserver.
func (s *Stack) introducePlugin(samples *Samples, keep bool) {
	s.say("==> kubectl herald, Herald's kubectl plugin, shows rollouts and fleets in depth; to follow along in another terminal:")
	if _, err := os.Stat(filepath.Join(s.cfg.BinDir, "kubectl-herald")); err != nil {
		s.say("    $ go build -o %s/ ./cmd/kubectl-herald", s.rel(s.cfg.BinDir))
	}
	s.say("    $ %s", s.pluginEnv())
	s.say("    $ %s", pluginCommand(samples.Rollout.Namespace, "get", "rollout", samples.Rollout.Name, "--watch"))
	lasts := "everything stops when the demo ends (DEMO_KEEP=1 keeps it running)"
	if keep {
		lasts = "everything keeps running after the rollout, until Ctrl-C"
	}
	s.say("    the demo prints what the plugin shows at the approval gate and at the end; %s", lasts)
}

// pluginEnv is the shell command that points kubectl at this demo and
// puts the plugin on PATH. kubectl runs `kubectl herald` as the
// kubectl-herald it finds on PATH; the kubectl built with the apiserver
// comes last, for machines without one of their own.
func (s *Stack) pluginEnv() string {
	return "export KUBECONFIG=" + s.shellPath(s.Kubeconfig) +
		" PATH=" + s.shellPath(s.cfg.BinDir) + ":$PATH:" + s.shellPath(filepath.Dir(s.Kubectl))
}

// shellPath is path for a shell in another terminal: below the working
// directory, relative to $PWD, so that it reads short and still works
// after a cd.
func (s *Stack) shellPath(path string) string {
	r := s.rel(path)
	if filepath.IsAbs(r) {
		return view.ShellQuote(r)
	}
	return "$PWD/" + view.ShellQuote(r)
}

// pluginCommand is the kubectl herald command line for args, with -n
// unless the namespace is the kubeconfig's.
func pluginCommand(namespace string, args ...string) string {
	words := []string{"kubectl", "herald"}
	for _, a := range inNamespace(namespace, args...) {
		words = append(words, view.ShellQuote(a))
	}
	return strings.Join(words, " ")
}

// showRollout prints `kubectl herald get rollout` for ro, with its events
// read as the plugin reads them. Events are an extra, as they are to the
// plugin: when they cannot be read, the view says why.
func (s *Stack) showRollout(ctx context.Context, ro *v1.FirmwareRollout) {
	v := view.RolloutView{Rollout: ro, Now: time.Now()}
	var events eventsv1.EventList
	err := s.Client.List(ctx, &events, client.InNamespace(ro.Namespace),
		client.MatchingFieldsSelector{Selector: fields.OneTermEqualSelector("regarding.uid", string(ro.UID))})
	if err != nil {
		v.EventsErr = "cannot list events: " + err.Error()
	}
	v.Events = events.Items
	s.say("    $ %s", pluginCommand(ro.Namespace, "get", "rollout", ro.Name))
	s.sayBlock(view.RenderRollout(v))
}

// showFleet prints `kubectl herald fleet` for f.
func (s *Stack) showFleet(f *v1.DeviceFleet) {
	s.say("    $ %s", pluginCommand(f.Namespace, "fleet", f.Name))
	s.sayBlock(view.RenderFleet(f, time.Now()))
}

// sayBlock prints text indented like the rest of the narration.
func (s *Stack) sayBlock(text string) {
	for _, line := range indented(text) {
		s.say("%s", line)
	}
}

// indented indents each line of text by four spaces, leaving blank lines
// blank: a log or a pipe gets no trailing spaces.
func indented(text string) []string {
	var lines []string
	for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		if line != "" {
			line = "    " + line
		}
		lines = append(lines, line)
	}
	return lines
}
