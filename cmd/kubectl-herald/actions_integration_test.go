package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/internal/testenv"
)

// TestActions drives a rollout through its spec against a real apiserver:
// every action, its dry run, and what each refuses.
func TestActions(t *testing.T) {
	ns := newNamespace(t)
	ro := createRollout(t, ns, v1.BrokerSpec{URLs: []string{"tcp://127.0.0.1:1"}})
	name := ro.Name
	spec := func() v1.FirmwareRolloutSpec { return getRollout(t, ns, name).Spec }
	mustRun := func(args ...string) string {
		t.Helper()
		out, err := runPlugin(t, ns, args...)
		if err != nil {
			t.Fatalf("kubectl herald %s: %v", strings.Join(args, " "), err)
		}
		return out
	}

	// A dry run prints the kubectl command and changes nothing.
	out := mustRun("approve", name, "--dry-run")
	want := "kubectl patch firmwarerollout sensor-2.1.0 -n " + ns + ` --type merge -p '{"spec":{"approvedWaves":1}}'` + "\n"
	if out != want {
		t.Errorf("approve --dry-run printed %q, want %q", out, want)
	}
	if s := spec(); s.ApprovedWaves != 0 {
		t.Fatalf("a dry run approved: spec.approvedWaves is %d", s.ApprovedWaves)
	}

	// Approve passes one gate at a time, and no more than there are.
	out = mustRun("approve", name)
	if !strings.Contains(out, "approved wave 2 (gate 1 of 2): spec.approvedWaves 0 -> 1") {
		t.Errorf("approve printed %q", out)
	}
	if s := spec(); s.ApprovedWaves != 1 {
		t.Fatalf("spec.approvedWaves is %d after one approve", s.ApprovedWaves)
	}
	mustRun("approve", name)
	if s := spec(); s.ApprovedWaves != 2 {
		t.Fatalf("spec.approvedWaves is %d after two approves", s.ApprovedWaves)
	}
	if _, err := runPlugin(t, ns, "approve", name); err == nil || !strings.Contains(err.Error(), "all 2 approval gates are approved already") {
		t.Errorf("a third approve: %v", err)
	}

	mustRun("pause", name)
	if !spec().Paused {
		t.Error("pause did not set spec.paused")
	}
	if out := mustRun("pause", name); !strings.Contains(out, "is paused already") {
		t.Errorf("pausing twice printed %q", out)
	}
	mustRun("resume", name)
	if spec().Paused {
		t.Error("resume did not clear spec.paused")
	}

	// Skip adds to the list; a dry run's command, run by kubectl, makes
	// the same change.
	mustRun("skip", name, "sensor-0001", "sensor-0002")
	cmd := mustRun("skip", name, "sensor-0002", "sensor-0003", "--dry-run")
	if got := spec().SkipDevices; !slices.Equal(got, []string{"sensor-0001", "sensor-0002"}) {
		t.Fatalf("spec.skipDevices is %q", got)
	}
	runKubectl(t, cmd)
	if got := spec().SkipDevices; !slices.Equal(got, []string{"sensor-0001", "sensor-0002", "sensor-0003"}) {
		t.Errorf("after the dry run's kubectl command, spec.skipDevices is %q", got)
	}

	// Cancel asks first, and refuses to ask a script.
	if _, err := runPlugin(t, ns, "cancel", name); err == nil || !strings.Contains(err.Error(), "pass --yes") {
		t.Errorf("cancel without a terminal or --yes: %v", err)
	}
	p := newPlugin(t)
	p.app.stdinTerminal, p.app.in = true, strings.NewReader("n\n")
	if _, err := p.run(context.Background(), ns, "cancel", name); !errors.Is(err, errNotConfirmed) {
		t.Errorf("cancel answered n: %v", err)
	}
	if spec().Canceled {
		t.Fatal("cancel answered n canceled")
	}
	p = newPlugin(t)
	p.app.stdinTerminal, p.app.in = true, strings.NewReader("y\n")
	out, err := p.run(context.Background(), ns, "cancel", name)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "Cancel firmwarerollout "+ns+"/sensor-2.1.0") || !strings.Contains(out, "[y/N]: ") {
		t.Errorf("cancel asked %q", out)
	}
	if !spec().Canceled {
		t.Error("cancel answered y did not set spec.canceled")
	}
	if out := mustRun("cancel", name, "--yes"); !strings.Contains(out, "is canceled already") {
		t.Errorf("canceling twice printed %q", out)
	}

	if _, err := runPlugin(t, ns, "approve", "no-such-rollout"); err == nil || !strings.Contains(err.Error(), "firmwarerollout "+ns+"/no-such-rollout not found") {
		t.Errorf("approving a missing rollout: %v", err)
	}
}

// runKubectl runs a command line the plugin printed with the kubectl that
// `make envtest-bin` builds, against the test apiserver.
func runKubectl(t *testing.T, line string) {
	t.Helper()
	assets, err := testenv.AssetsDir()
	if err != nil {
		t.Fatal(err)
	}
	kubectl := filepath.Join(assets, "kubectl")
	if _, err := os.Stat(kubectl); err != nil {
		t.Fatalf("no kubectl to run the dry run's command with (make envtest-bin builds it): %v", err)
	}
	c := exec.Command("sh", "-c", strings.TrimSpace(line))
	c.Env = append(os.Environ(), "KUBECONFIG="+stack.kubeconfig, "PATH="+assets+string(os.PathListSeparator)+os.Getenv("PATH"))
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", line, err, out)
	}
}
