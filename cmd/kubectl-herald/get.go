package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/internal/view"
)

func newGetCommand(a *app) *cobra.Command {
	get := &cobra.Command{
		Use:   "get",
		Short: "Show a rollout's progress",
	}
	var follow bool
	rollout := &cobra.Command{
		Use:     "rollout NAME",
		Aliases: []string{"rollouts", "firmwarerollout", "firmwarerollouts", "fwr"},
		Short:   "Show a rollout: phase, waves with progress bars, rates, ETA, conditions, failures, events",
		Long: `Show a rollout: phase, waves with progress bars, rates, ETA, conditions,
recent failures and events.

With --watch the view is drawn again on every change of the rollout or of
its events (a watch, not polling): in place on a terminal, as one block
per change otherwise. The watch ends when the rollout has finished, when
it is deleted, or on Ctrl-C.`,
		Example: `  kubectl herald get rollout sensor-2.1.0
  kubectl herald get rollout sensor-2.1.0 -n factory-7 --watch`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := a.connect()
			if err != nil {
				return err
			}
			if follow {
				return a.watchRollout(cmd.Context(), k, args[0])
			}
			ro, err := k.getRollout(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			v := view.RolloutView{Rollout: ro, Now: a.now()}
			if v.Events, _, err = k.listEvents(cmd.Context(), ro); err != nil {
				v.EventsErr = eventsError(err)
			}
			_, err = io.WriteString(a.out, view.RenderRollout(v))
			return err
		},
	}
	rollout.Flags().BoolVarP(&follow, "watch", "w", false, "draw the rollout again on every change until it finishes")
	get.AddCommand(rollout)
	return get
}

// screen draws successive views: in place on a terminal, otherwise one
// block after another, each separated by a blank line. A view equal to
// the last one is not drawn again.
type screen struct {
	w        io.Writer
	terminal bool
	last     string
	drawn    int
}

// Terminal control: cursor home, erase to the end of the line, erase
// below the cursor. Erasing line by line instead of clearing the whole
// screen first keeps the view from flickering, and keeps terminals that
// save cleared screens to their scrollback from filling it.
const (
	ansiHome      = "\x1b[H"
	ansiEraseLine = "\x1b[K"
	ansiEraseDown = "\x1b[J"
)

func (s *screen) draw(view string) error {
	if view == s.last {
		return nil
	}
	s.last = view
	var b strings.Builder
	switch {
	case s.terminal:
		b.WriteString(ansiHome)
		if s.drawn == 0 {
			b.WriteString(ansiEraseDown)
		}
		for line := range strings.Lines(view) {
			b.WriteString(strings.TrimSuffix(line, "\n"))
			b.WriteString(ansiEraseLine + "\n")
		}
		b.WriteString(ansiEraseDown)
	case s.drawn > 0:
		b.WriteString("\n")
		b.WriteString(view)
	default:
		b.WriteString(view)
	}
	s.drawn++
	_, err := io.WriteString(s.w, b.String())
	return err
}

// finished reports whether a rollout has reached its end.
func finished(ro *v1.FirmwareRollout) bool {
	return ro.Status.Phase.Terminal() || apimeta.IsStatusConditionTrue(ro.Status.Conditions, v1.ConditionFinished)
}

// rolloutWatch follows one rollout and its events, starting the watches
// again from the last resourceVersion seen when the apiserver closes them,
// and from a fresh read when that version has expired.
type rolloutWatch struct {
	k    *kubeClients
	name string

	ro       *v1.FirmwareRollout
	events   map[types.UID]eventsv1.Event
	eventErr string

	objects, eventStream watch.Interface
	eventsRV             string
}

func (a *app) watchRollout(ctx context.Context, k *kubeClients, name string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rw := &rolloutWatch{k: k, name: name}
	if err := rw.readRollout(ctx); err != nil {
		return err
	}
	rw.readEvents(ctx)
	defer rw.stop()
	baseline := view.SampleOf(rw.ro, a.now())
	sc := &screen{w: a.out, terminal: a.stdoutTerminal}
	changed := true
	for {
		if changed {
			v := view.RolloutView{Rollout: rw.ro, EventsErr: rw.eventErr, Now: a.now(), Baseline: &baseline}
			for _, e := range rw.events {
				v.Events = append(v.Events, e)
			}
			if err := sc.draw(view.RenderRollout(v)); err != nil {
				return err
			}
			if finished(rw.ro) {
				return nil
			}
		}
		var deleted bool
		var err error
		changed, deleted, err = rw.next(ctx)
		switch {
		case ctx.Err() != nil:
			return nil // interrupted: the view on screen is the answer
		case err != nil:
			return err
		case deleted:
			fmt.Fprintf(a.errOut, "firmwarerollout %s/%s was deleted\n", k.namespace, name)
			return nil
		}
	}
}

// readRollout reads the rollout and watches it from there.
func (rw *rolloutWatch) readRollout(ctx context.Context) error {
	ro, err := rw.k.getRollout(ctx, rw.name)
	if err != nil {
		return err
	}
	if rw.ro != nil && ro.UID != rw.ro.UID {
		return fmt.Errorf("firmwarerollout %s/%s was deleted and created again", rw.k.namespace, rw.name)
	}
	rw.ro = ro
	return rw.watchObjects(ctx, ro.ResourceVersion)
}

func (rw *rolloutWatch) watchObjects(ctx context.Context, rv string) error {
	if rw.objects != nil {
		rw.objects.Stop()
	}
	w, err := rw.k.watchRollout(ctx, rw.name, rv)
	if err != nil {
		return apiError(err, "watch", "firmwarerollout", rw.k.namespace, rw.name)
	}
	rw.objects = w
	return nil
}

// readEvents lists the rollout's events and watches them. Events are an
// extra: when they cannot be read the view says why and goes on without.
func (rw *rolloutWatch) readEvents(ctx context.Context) {
	if rw.eventStream != nil {
		rw.eventStream.Stop()
		rw.eventStream = nil
	}
	items, rv, err := rw.k.listEvents(ctx, rw.ro)
	if err != nil {
		rw.eventErr = eventsError(err)
		return
	}
	rw.events = make(map[types.UID]eventsv1.Event, len(items))
	for _, e := range items {
		rw.events[e.UID] = e
	}
	rw.eventsRV = rv
	rw.watchEvents(ctx)
}

func (rw *rolloutWatch) watchEvents(ctx context.Context) {
	w, err := rw.k.watchEvents(ctx, rw.ro, rw.eventsRV)
	if err != nil {
		// Without a stream, next waits for the rollout alone.
		rw.eventStream = nil
		rw.eventErr = eventsError(err)
		return
	}
	rw.eventErr = ""
	rw.eventStream = w
}

func (rw *rolloutWatch) stop() {
	if rw.objects != nil {
		rw.objects.Stop()
	}
	if rw.eventStream != nil {
		rw.eventStream.Stop()
	}
}

// next waits for the next change of the rollout or its events and applies
// it. changed reports that the view may differ: bookmarks and watches
// started again change nothing, and the view is not drawn for them, so
// that a pipe gets one block per change and not one per minute of ages.
// deleted reports that the rollout is gone.
func (rw *rolloutWatch) next(ctx context.Context) (changed, deleted bool, err error) {
	var events <-chan watch.Event // nil, never ready, while events are unavailable
	if rw.eventStream != nil {
		events = rw.eventStream.ResultChan()
	}
	select {
	case <-ctx.Done():
		return false, false, nil
	case ev, ok := <-rw.objects.ResultChan():
		if !ok {
			return false, false, rw.watchObjects(ctx, rw.ro.ResourceVersion)
		}
		return rw.applyObject(ctx, ev)
	case ev, ok := <-events:
		if !ok {
			rw.watchEvents(ctx)
			return rw.eventStream == nil, false, nil // a failure shows in the view
		}
		return rw.applyEvent(ctx, ev), false, nil
	}
}

func (rw *rolloutWatch) applyObject(ctx context.Context, ev watch.Event) (changed, deleted bool, err error) {
	switch ev.Type {
	case watch.Added, watch.Modified:
		u, ok := ev.Object.(*unstructured.Unstructured)
		if !ok {
			return false, false, fmt.Errorf("watch sent a %T", ev.Object)
		}
		ro, err := fromUnstructured[v1.FirmwareRollout](u)
		if err != nil {
			return false, false, err
		}
		if ro.UID != rw.ro.UID {
			return false, false, fmt.Errorf("firmwarerollout %s/%s was deleted and created again", rw.k.namespace, rw.name)
		}
		rw.ro = ro
		return true, false, nil
	case watch.Deleted:
		return false, true, nil
	case watch.Bookmark:
		if u, ok := ev.Object.(*unstructured.Unstructured); ok {
			rw.ro.ResourceVersion = u.GetResourceVersion()
		}
	case watch.Error:
		if expired(ev.Object) {
			return true, false, rw.readRollout(ctx)
		}
		return false, false, fmt.Errorf("watch firmwarerollout %s/%s: %w", rw.k.namespace, rw.name, apierrors.FromObject(ev.Object))
	}
	return false, false, nil
}

// applyEvent applies a change of the rollout's events and reports whether
// the view may differ.
func (rw *rolloutWatch) applyEvent(ctx context.Context, ev watch.Event) bool {
	switch ev.Type {
	case watch.Added, watch.Modified, watch.Deleted:
		e, ok := ev.Object.(*eventsv1.Event)
		if !ok {
			return false
		}
		rw.eventsRV = e.ResourceVersion
		if ev.Type == watch.Deleted {
			delete(rw.events, e.UID) // events expire (an hour by default)
		} else {
			rw.events[e.UID] = *e
		}
		return true
	case watch.Bookmark:
		if e, ok := ev.Object.(*eventsv1.Event); ok {
			rw.eventsRV = e.ResourceVersion
		}
	case watch.Error:
		if expired(ev.Object) {
			rw.readEvents(ctx)
			return true
		}
		rw.eventStream.Stop()
		rw.eventStream = nil
		rw.eventErr = eventsError(apierrors.FromObject(ev.Object))
		return true
	}
	return false
}

// expired reports whether a watch error says the resourceVersion watched
// from is too old (410 Gone), which a fresh read mends.
func expired(obj runtime.Object) bool {
	err := apierrors.FromObject(obj)
	return apierrors.IsResourceExpired(err) || apierrors.IsGone(err)
}
