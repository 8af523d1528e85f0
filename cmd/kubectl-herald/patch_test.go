package main

import (
	"fmt"
	"strings"
	"testing"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
)

func TestPatches(t *testing.T) {
	waiting := func() *v1.FirmwareRollout {
		ro := rolloutFixture()
		ro.Spec.ApprovedWaves = 0
		ro.Status.Phase = v1.PhaseWaitingForApproval
		ro.Status.Waves[1].State = v1.WaveWaitingForApproval
		return ro
	}
	with := func(change func(ro *v1.FirmwareRollout)) func() *v1.FirmwareRollout {
		return func() *v1.FirmwareRollout {
			ro := rolloutFixture()
			change(ro)
			return ro
		}
	}
	tests := map[string]struct {
		rollout func() *v1.FirmwareRollout
		patch   func(ro *v1.FirmwareRollout) (specPatch, error)
		// body is the merge patch; summary or noop a part of what it says;
		// err a part of the error.
		body, summary, noop, err string
		guarded                  bool
	}{
		"approve the gate it waits at": {
			rollout: waiting, patch: approvePatch,
			body:    `{"spec":{"approvedWaves":1}}`,
			summary: "approved wave 2 (gate 1 of 2): spec.approvedWaves 0 -> 1",
		},
		"approve ahead": {
			rollout: rolloutFixture, patch: approvePatch,
			body:    `{"spec":{"approvedWaves":2}}`,
			summary: "approved wave 3 (gate 2 of 2): spec.approvedWaves 1 -> 2; the rollout does not wait at wave 3 yet",
		},
		"approve with every gate approved": {
			rollout: with(func(ro *v1.FirmwareRollout) { ro.Spec.ApprovedWaves = 2 }), patch: approvePatch,
			err: "all 2 approval gates are approved already (spec.approvedWaves is 2)",
		},
		"approve without gates": {
			rollout: with(func(ro *v1.FirmwareRollout) {
				for i := range ro.Spec.Strategy.Waves {
					ro.Spec.Strategy.Waves[i].RequireApproval = false
				}
			}),
			patch: approvePatch, err: "has no wave with requireApproval",
		},
		"approve a finished rollout": {
			rollout: with(func(ro *v1.FirmwareRollout) { ro.Status.Phase = v1.PhaseAborted }), patch: approvePatch,
			err: "has finished (Aborted): there is nothing to approve",
		},
		"pause": {
			rollout: rolloutFixture, patch: func(ro *v1.FirmwareRollout) (specPatch, error) { return pausePatch(ro, true) },
			body: `{"spec":{"paused":true}}`, summary: "paused",
		},
		"pause a paused rollout": {
			rollout: with(func(ro *v1.FirmwareRollout) { ro.Spec.Paused = true }),
			patch:   func(ro *v1.FirmwareRollout) (specPatch, error) { return pausePatch(ro, true) },
			noop:    "is paused already",
		},
		"resume": {
			rollout: with(func(ro *v1.FirmwareRollout) { ro.Spec.Paused = true; ro.Spec.DryRun = true }),
			patch:   func(ro *v1.FirmwareRollout) (specPatch, error) { return pausePatch(ro, false) },
			body:    `{"spec":{"paused":false}}`, summary: "resumed: spec.paused is false; spec.dryRun still holds the rollout",
		},
		"resume a rollout not paused by spec": {
			rollout: rolloutFixture,
			patch:   func(ro *v1.FirmwareRollout) (specPatch, error) { return pausePatch(ro, false) },
			noop:    "is not paused by spec.paused",
		},
		"pause a finished rollout": {
			rollout: with(func(ro *v1.FirmwareRollout) { ro.Status.Phase = v1.PhaseSucceeded }),
			patch:   func(ro *v1.FirmwareRollout) (specPatch, error) { return pausePatch(ro, true) },
			err:     "there is nothing to pause",
		},
		"cancel": {
			rollout: rolloutFixture, patch: cancelPatch,
			body: `{"spec":{"canceled":true}}`, summary: "canceled",
		},
		"cancel a succeeded rollout withdraws its notices": {
			rollout: with(func(ro *v1.FirmwareRollout) { ro.Status.Phase = v1.PhaseSucceeded }), patch: cancelPatch,
			body: `{"spec":{"canceled":true}}`,
		},
		"cancel twice": {
			rollout: with(func(ro *v1.FirmwareRollout) { ro.Spec.Canceled = true }), patch: cancelPatch,
			noop: "is canceled already",
		},
		"skip adds to the list": {
			rollout: rolloutFixture,
			patch: func(ro *v1.FirmwareRollout) (specPatch, error) {
				return skipPatch(ro, []string{"sensor-0042", "sensor-0099", "sensor-0042", "sensor-0043"})
			},
			body:    `{"spec":{"skipDevices":["sensor-0099","sensor-0042","sensor-0043"]}}`,
			summary: "skipping sensor-0042, sensor-0043 (spec.skipDevices now lists 3)",
			guarded: true,
		},
		"retry without a policy": {
			rollout: rolloutFixture,
			patch:   func(ro *v1.FirmwareRollout) (specPatch, error) { return retryPatch(ro, false) },
			body:    `{"spec":{"retryPolicy":{"download":1,"install":1,"timeout":1}}}`,
			summary: "spec.retryPolicy download 0 -> 1, install 0 -> 1, timeout 0 -> 1",
			guarded: true,
		},
		"retry raises a policy, rejections when asked": {
			rollout: with(func(ro *v1.FirmwareRollout) { ro.Spec.RetryPolicy = &v1.RetryPolicy{Download: 2, Install: 10} }),
			patch:   func(ro *v1.FirmwareRollout) (specPatch, error) { return retryPatch(ro, true) },
			body:    `{"spec":{"retryPolicy":{"download":3,"rejection":1,"timeout":1}}}`,
			summary: "download 2 -> 3, timeout 0 -> 1, rejection 0 -> 1",
			guarded: true,
		},
		"retry at the API's maximum": {
			rollout: with(func(ro *v1.FirmwareRollout) {
				ro.Spec.RetryPolicy = &v1.RetryPolicy{Download: 10, Install: 10, Timeout: 10}
			}),
			patch: func(ro *v1.FirmwareRollout) (specPatch, error) { return retryPatch(ro, false) },
			err:   "allows the API's maximum of 10 retries already",
		},
		"retry a finished rollout": {
			rollout: with(func(ro *v1.FirmwareRollout) { ro.Status.Phase = v1.PhaseSucceeded }),
			patch:   func(ro *v1.FirmwareRollout) (specPatch, error) { return retryPatch(ro, false) },
			err:     "create a new rollout for the devices still on the old version",
		},
		"skip listed devices": {
			rollout: rolloutFixture,
			patch:   func(ro *v1.FirmwareRollout) (specPatch, error) { return skipPatch(ro, []string{"sensor-0099"}) },
			noop:    "skips sensor-0099 already",
		},
		"skip invalid IDs": {
			rollout: rolloutFixture,
			patch:   func(ro *v1.FirmwareRollout) (specPatch, error) { return skipPatch(ro, []string{".hidden", "a/b"}) },
			err:     "invalid device IDs",
		},
		"skip beyond the API's bound": {
			rollout: with(func(ro *v1.FirmwareRollout) {
				ro.Spec.SkipDevices = make([]string, maxSkipDevices)
				for i := range ro.Spec.SkipDevices {
					ro.Spec.SkipDevices[i] = fmt.Sprintf("device-%04d", i)
				}
			}),
			patch: func(ro *v1.FirmwareRollout) (specPatch, error) { return skipPatch(ro, []string{"one-more"}) },
			err:   "would hold 1001 devices; the API allows at most 1000",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ro := tc.rollout()
			p, err := tc.patch(ro)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one saying %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.noop != "" {
				if p.Spec != nil || !strings.Contains(p.Noop, tc.noop) {
					t.Fatalf("patch %+v, want a no-op saying %q", p, tc.noop)
				}
				return
			}
			if got := string(p.body("")); got != tc.body {
				t.Errorf("body %s, want %s", got, tc.body)
			}
			if !strings.Contains(p.Summary, tc.summary) {
				t.Errorf("summary %q, want it to say %q", p.Summary, tc.summary)
			}
			if p.Guarded != tc.guarded {
				t.Errorf("guarded %t, want %t", p.Guarded, tc.guarded)
			}
		})
	}
}

func TestPatchBodyAndCommand(t *testing.T) {
	p := specPatch{Spec: map[string]any{"skipDevices": []string{"a", "b"}}}
	if got, want := string(p.body("42")), `{"metadata":{"resourceVersion":"42"},"spec":{"skipDevices":["a","b"]}}`; got != want {
		t.Errorf("guarded body %s, want %s", got, want)
	}
	got := kubectlCommand("factory-7", "sensor-2.1.0", &p)
	want := `kubectl patch firmwarerollout sensor-2.1.0 -n factory-7 --type merge -p '{"spec":{"skipDevices":["a","b"]}}'`
	if got != want {
		t.Errorf("command\n%s\nwant\n%s", got, want)
	}
}
