package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
)

// waitLimit bounds a wait for something the test causes; it only ends a
// failing test, so it is generous for slow machines.
const waitLimit = 60 * time.Second

func progressing(msg string, succeeded int32) func(st *v1.FirmwareRolloutStatus) {
	return func(st *v1.FirmwareRolloutStatus) {
		st.Phase = v1.PhaseProgressing
		st.Message = msg
		st.CurrentWave = 1
		st.StartTime = &metav1.Time{Time: time.Now().Add(-time.Hour).Truncate(time.Second)}
		st.Waves = []v1.WaveStatus{
			{State: v1.WaveProgressing, Targeted: 10, Notified: 10, Succeeded: succeeded},
			{State: v1.WavePending, Targeted: 40},
			{State: v1.WavePending, Targeted: 50},
		}
		st.Totals = v1.DeviceTotals{Targeted: 100, Waiting: 90, InProgress: 10 - succeeded, Succeeded: succeeded}
	}
}

// recordEvent creates an events.k8s.io/v1 event regarding the rollout, as
// the operator's recorder does.
func recordEvent(t *testing.T, ro *v1.FirmwareRollout, reason, note string) {
	t.Helper()
	e := &eventsv1.Event{
		ObjectMeta:          metav1.ObjectMeta{Namespace: ro.Namespace, Name: ro.Name + "." + randomHex(6)},
		EventTime:           metav1.NowMicro(),
		ReportingController: "herald", ReportingInstance: "herald-test",
		Action: "Reconcile", Reason: reason, Note: note, Type: "Normal",
		Regarding: corev1.ObjectReference{
			APIVersion: v1.GroupVersion.String(), Kind: "FirmwareRollout", Namespace: ro.Namespace, Name: ro.Name, UID: ro.UID,
		},
	}
	if err := apiserver(t).Create(context.Background(), e); err != nil {
		t.Fatal(err)
	}
}

// TestWatchPiped follows a rollout into a pipe: one block per change of
// the rollout or of its events, and an end when the rollout finishes.
func TestWatchPiped(t *testing.T) {
	ns := newNamespace(t)
	ro := createRollout(t, ns, v1.BrokerSpec{URLs: []string{"tcp://127.0.0.1:1"}})
	ro = setStatus(t, ns, ro.Name, progressing("first view", 2))

	p := newPlugin(t)
	done := make(chan error, 1)
	go func() {
		_, err := p.run(context.Background(), ns, "get", "rollout", ro.Name, "--watch")
		done <- err
	}()
	p.stdout.waitFor(t, "Message:     first view", waitLimit)

	setStatus(t, ns, ro.Name, progressing("second view", 6))
	p.stdout.waitFor(t, "Message:     second view", waitLimit)
	recordEvent(t, ro, "WaveStarted", "wave 1 of 3 started: 10 devices")
	p.stdout.waitFor(t, "wave 1 of 3 started: 10 devices", waitLimit)

	setStatus(t, ns, ro.Name, func(st *v1.FirmwareRolloutStatus) {
		st.Phase = v1.PhaseSucceeded
		st.Message = "all done"
		st.CompletionTime = &metav1.Time{Time: time.Now().Truncate(time.Second)}
		apimeta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: v1.ConditionFinished, Status: metav1.ConditionTrue, Reason: v1.ReasonRolloutSucceeded, Message: "all done"})
	})
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the watch ended with %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatalf("the watch did not end when the rollout finished; it printed:\n%s", p.stdout.String())
	}
	out := p.stdout.String()
	blocks := strings.Split(out, "\nName:")
	if len(blocks) < 4 {
		t.Fatalf("want at least 4 blocks (first, second, event, finished), got %d:\n%s", len(blocks), out)
	}
	if strings.Contains(out, "\x1b[") {
		t.Error("a watch into a pipe wrote terminal escapes")
	}
	last := blocks[len(blocks)-1]
	if !strings.Contains(last, "Phase:       Succeeded") || !strings.Contains(last, "Finished  True") {
		t.Errorf("the last block is not the finished rollout:\n%s", last)
	}
}

// TestWatchTerminal runs the built plugin in a tmux terminal and checks
// that a change redraws the view in place: the screen and its scrollback
// hold one view, the latest.
func TestWatchTerminal(t *testing.T) {
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		// The Makefile installs tmux and sets HERALD_TMUX_REQUIRED, so
		// that its runs never pass by skipping this test.
		if os.Getenv("HERALD_TMUX_REQUIRED") != "" {
			t.Fatal("tmux is not installed and HERALD_TMUX_REQUIRED is set")
		}
		t.Skip("tmux is not installed (apt-get install tmux): skipping the terminal redraw test")
	}
	ns := newNamespace(t)
	ro := createRollout(t, ns, v1.BrokerSpec{URLs: []string{"tcp://127.0.0.1:1"}})
	setStatus(t, ns, ro.Name, progressing("first view", 2))

	dir := t.TempDir()
	bin := filepath.Join(dir, "kubectl-herald")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// A server of our own (-S), so the test neither sees nor disturbs
	// the user's tmux sessions.
	socket := filepath.Join(dir, "tmux.sock")
	run := func(args ...string) string {
		t.Helper()
		c := exec.Command(tmux, append([]string{"-S", socket, "-f", os.DevNull}, args...)...)
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("new-session", "-d", "-s", "watch", "-x", "200", "-y", "80",
		bin, "--kubeconfig", stack.kubeconfig, "-n", ns, "get", "rollout", ro.Name, "--watch")
	// Keep the pane after the plugin exits, to show why in a failure.
	run("set-option", "-t", "watch", "remain-on-exit", "on")
	t.Cleanup(func() { _ = exec.Command(tmux, "-S", socket, "kill-server").Run() })

	// The pane is read until it shows what the test waits for: tmux has
	// no way to announce a change of its screen.
	screen := func() string { return run("capture-pane", "-p", "-t", "watch", "-S", "-", "-E", "-") }
	waitScreen := func(want string) string {
		t.Helper()
		deadline := time.Now().Add(waitLimit)
		for {
			s := screen()
			if strings.Contains(s, want) {
				return s
			}
			if time.Now().After(deadline) {
				t.Fatalf("the terminal never showed %q; it shows:\n%s", want, s)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitScreen("Message:     first view")
	setStatus(t, ns, ro.Name, progressing("second view", 6))
	// The bar comes after the message in the view, so once the terminal
	// shows the new bar it has drawn the new message too.
	s := waitScreen("[##################>>>>>>>>>>>>]")
	if n := strings.Count(s, "Name:"); n != 1 {
		t.Errorf("screen and scrollback hold %d views, want 1 redrawn in place:\n%s", n, s)
	}
	if strings.Contains(s, "first view") || !strings.Contains(s, "Message:     second view") {
		t.Errorf("the view was not redrawn whole:\n%s", s)
	}
}
