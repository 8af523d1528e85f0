package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/internal/view"
	"github.com/heraldiot/herald/protocol"
)

// maxSkipDevices is the API's bound on spec.skipDevices.
const maxSkipDevices = 1000

// specPatch is one change to a rollout's spec, as a JSON merge patch: what
// `kubectl patch --type merge -p` sends.
type specPatch struct {
	// Spec holds the spec fields to set.
	Spec map[string]any
	// Summary says what the patch does, for people.
	Summary string
	// Noop, when set, says why there is nothing to change; Spec is nil.
	Noop string
	// Guarded asks that the patch apply only to the resourceVersion it
	// was computed from: a patch that replaces a list must not drop what
	// someone else added meanwhile.
	Guarded bool
}

// body is the merge patch sent to the apiserver; resourceVersion, when
// set, makes it fail with a conflict if the rollout changed since.
func (p *specPatch) body(resourceVersion string) []byte {
	doc := map[string]any{"spec": p.Spec}
	if resourceVersion != "" {
		doc["metadata"] = map[string]any{"resourceVersion": resourceVersion}
	}
	out, err := json.Marshal(doc)
	if err != nil {
		panic(err) // maps of strings, numbers and bools always marshal
	}
	return out
}

// kubectlCommand is the kubectl command line that makes the same change.
func kubectlCommand(namespace, name string, p *specPatch) string {
	return fmt.Sprintf("kubectl patch firmwarerollout %s -n %s --type merge -p %s",
		view.ShellQuote(name), view.ShellQuote(namespace), view.ShellQuote(string(p.body(""))))
}

// errFinished refuses an action that a finished rollout cannot take.
func errFinished(ro *v1.FirmwareRollout, action string) error {
	return fmt.Errorf("firmwarerollout %s/%s has finished (%s): there is nothing to %s", ro.Namespace, ro.Name, ro.Status.Phase, action)
}

// approvePatch raises spec.approvedWaves by one, to the next approval gate.
// It is not guarded: two people approving the same gate at once pass one
// gate, not two.
func approvePatch(ro *v1.FirmwareRollout) (specPatch, error) {
	if ro.Status.Phase.Terminal() {
		return specPatch{}, errFinished(ro, "approve")
	}
	gates := view.ApprovalGates(ro)
	approved := int(ro.Spec.ApprovedWaves)
	if len(gates) == 0 {
		return specPatch{}, fmt.Errorf("firmwarerollout %s/%s has no wave with requireApproval: nothing to approve", ro.Namespace, ro.Name)
	}
	if approved >= len(gates) {
		return specPatch{}, fmt.Errorf("firmwarerollout %s/%s: all %d approval gates are approved already (spec.approvedWaves is %d)",
			ro.Namespace, ro.Name, len(gates), approved)
	}
	wave := gates[approved] + 1
	summary := fmt.Sprintf("approved wave %d (gate %d of %d): spec.approvedWaves %d -> %d", wave, approved+1, len(gates), approved, approved+1)
	waiting := ro.Status.Phase == v1.PhaseWaitingForApproval && wave <= len(ro.Status.Waves) &&
		ro.Status.Waves[wave-1].State == v1.WaveWaitingForApproval
	if !waiting {
		summary += fmt.Sprintf("; the rollout does not wait at wave %d yet, so it will pass that gate without stopping", wave)
	}
	return specPatch{Spec: map[string]any{"approvedWaves": approved + 1}, Summary: summary}, nil
}

// pausePatch sets spec.paused.
func pausePatch(ro *v1.FirmwareRollout, paused bool) (specPatch, error) {
	verb := map[bool]string{true: "pause", false: "resume"}[paused]
	if ro.Status.Phase.Terminal() {
		return specPatch{}, errFinished(ro, verb)
	}
	if ro.Spec.Paused == paused {
		state := map[bool]string{true: "paused already", false: "not paused by spec.paused"}[paused]
		return specPatch{Noop: fmt.Sprintf("firmwarerollout %s/%s is %s", ro.Namespace, ro.Name, state)}, nil
	}
	summary := "paused: no new notices; devices already notified carry on"
	if !paused {
		summary = "resumed: spec.paused is false"
		if ro.Spec.DryRun {
			summary += "; spec.dryRun still holds the rollout"
		}
	}
	return specPatch{Spec: map[string]any{"paused": paused}, Summary: summary}, nil
}

// cancelPatch sets spec.canceled. A succeeded rollout can still be
// canceled: that withdraws its retained notices.
func cancelPatch(ro *v1.FirmwareRollout) (specPatch, error) {
	if ro.Spec.Canceled {
		return specPatch{Noop: fmt.Sprintf("firmwarerollout %s/%s is canceled already", ro.Namespace, ro.Name)}, nil
	}
	return specPatch{Spec: map[string]any{"canceled": true}, Summary: "canceled: every notice of the rollout is withdrawn"}, nil
}

// skipPatch adds devices to spec.skipDevices. A merge patch replaces the
// whole list, so the patch is guarded by the rollout's resourceVersion.
func skipPatch(ro *v1.FirmwareRollout, devices []string) (specPatch, error) {
	if ro.Status.Phase.Terminal() {
		return specPatch{}, errFinished(ro, "skip")
	}
	var bad []string
	for _, d := range devices {
		if err := protocol.ValidSegment(d); err != nil {
			bad = append(bad, err.Error())
		}
	}
	if len(bad) > 0 {
		return specPatch{}, errors.New("invalid device IDs: " + strings.Join(bad, "; "))
	}
	list := slices.Clone(ro.Spec.SkipDevices)
	var added []string
	for _, d := range devices {
		if !slices.Contains(list, d) {
			list = append(list, d)
			added = append(added, d)
		}
	}
	if len(added) == 0 {
		return specPatch{Noop: fmt.Sprintf("firmwarerollout %s/%s skips %s already", ro.Namespace, ro.Name, strings.Join(devices, ", "))}, nil
	}
	if len(list) > maxSkipDevices {
		return specPatch{}, fmt.Errorf("spec.skipDevices would hold %d devices; the API allows at most %d", len(list), maxSkipDevices)
	}
	return specPatch{
		Spec:    map[string]any{"skipDevices": list},
		Summary: fmt.Sprintf("skipping %s (spec.skipDevices now lists %d)", strings.Join(added, ", "), len(list)),
		Guarded: true,
	}, nil
}

// retryClasses are the failure classes of spec.retryPolicy that retry
// raises by default; rejections only when asked, since a refusal is
// usually the device owner's decision.
var retryClasses = []string{"download", "install", "timeout"}

// maxRetries is the API's bound on each class of spec.retryPolicy.
const maxRetries = 10

// retryPatch gives every failed device of the classes one more attempt by
// raising each class of spec.retryPolicy by one: devices that used their
// retries (or had none) are retrying again, and the retries go out at
// once, their backoff having long passed. It is guarded, so two people
// retrying at once raise the counts once.
func retryPatch(ro *v1.FirmwareRollout, rejections bool) (specPatch, error) {
	if ro.Status.Phase.Terminal() {
		return specPatch{}, fmt.Errorf("%w; create a new rollout for the devices still on the old version", errFinished(ro, "retry"))
	}
	p := ro.Spec.RetryPolicy
	if p == nil {
		p = &v1.RetryPolicy{}
	}
	current := map[string]int32{"download": p.Download, "install": p.Install, "timeout": p.Timeout, "rejection": p.Rejection}
	classes := retryClasses
	if rejections {
		classes = append(slices.Clone(classes), "rejection")
	}
	policy := map[string]any{}
	var changes []string
	for _, c := range classes {
		if n := current[c]; n < maxRetries {
			policy[c] = n + 1
			changes = append(changes, fmt.Sprintf("%s %d -> %d", c, n, n+1))
		}
	}
	if len(policy) == 0 {
		return specPatch{}, fmt.Errorf("firmwarerollout %s/%s: spec.retryPolicy allows the API's maximum of %d retries already", ro.Namespace, ro.Name, maxRetries)
	}
	failed := ro.Status.Totals.Failed
	if rejections {
		failed += ro.Status.Totals.Rejected
	}
	return specPatch{
		Spec: map[string]any{"retryPolicy": policy},
		Summary: fmt.Sprintf("spec.retryPolicy %s: each failed device of these classes gets one more attempt (%d failed now)",
			strings.Join(changes, ", "), failed),
		Guarded: true,
	}, nil
}
