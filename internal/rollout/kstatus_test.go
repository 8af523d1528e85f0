package rollout

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/protocol"
)

// TestKstatusReadsEveryPhase computes kstatus, the library Flux and the
// cli-utils based tools use to judge health, over a rollout in each phase
// as Plan writes it: a GitOps wait must end on every terminal phase, with
// Failed only where the rollout did fail, and must not end while devices
// are still being updated.
func TestKstatusReadsEveryPhase(t *testing.T) {
	cases := map[v1.RolloutPhase]struct {
		c    planCase
		want kstatus.Status
	}{
		v1.PhaseProgressing: {planCase{ro: testRollout(percent(100)), devices: devices(1)}, kstatus.InProgressStatus},
		v1.PhasePaused: {func() planCase {
			ro := testRollout(percent(100))
			ro.Spec.Paused = true
			return planCase{ro: ro, devices: devices(1)}
		}(), kstatus.InProgressStatus},
		v1.PhaseWaitingForApproval: {func() planCase {
			ro := testRollout(v1.Wave{Percent: ptr.To[int32](100), RequireApproval: true})
			return planCase{ro: ro, devices: devices(1)}
		}(), kstatus.InProgressStatus},
		v1.PhaseDryRun: {func() planCase {
			ro := testRollout(percent(100))
			ro.Spec.DryRun = true
			return planCase{ro: ro, devices: devices(1)}
		}(), kstatus.CurrentStatus},
		v1.PhaseSucceeded: {func() planCase {
			d := devices(1)
			d[0].reported(uid, protocol.StateSucceeded, t0)
			return planCase{ro: testRollout(percent(100)), devices: d}
		}(), kstatus.CurrentStatus},
		v1.PhaseCanceled: {func() planCase {
			ro := testRollout(percent(100))
			ro.Spec.Canceled = true
			return planCase{ro: ro, devices: devices(1)}
		}(), kstatus.CurrentStatus},
		v1.PhaseAborted: {func() planCase {
			ro := testRollout(percent(100))
			ro.Spec.FailurePolicy = &v1.FailurePolicy{MaxFailed: ptr.To[int32](0), Action: v1.FailureAbort}
			d := devices(1)
			d[0].reported(uid, protocol.StateFailed, t0)
			return planCase{ro: ro, devices: d}
		}(), kstatus.FailedStatus},
		v1.PhaseFailed: {func() planCase {
			ro := testRollout(percent(100))
			ro.Spec.Selector = &v1.DeviceSelector{CurrentVersion: "~banana"}
			return planCase{ro: ro, devices: devices(1)}
		}(), kstatus.FailedStatus},
	}
	for phase, tt := range cases {
		t.Run(string(phase), func(t *testing.T) {
			out := tt.c.run(t)
			if out.Status.Phase != phase {
				t.Fatalf("phase %s (%s), want %s", out.Status.Phase, out.Status.Message, phase)
			}
			ro := tt.c.ro.DeepCopy()
			ro.Status = out.Status
			ro.APIVersion, ro.Kind = v1.GroupVersion.String(), "FirmwareRollout"
			obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(ro)
			if err != nil {
				t.Fatal(err)
			}
			res, err := kstatus.Compute(&unstructured.Unstructured{Object: obj})
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != tt.want {
				t.Fatalf("kstatus %s (%s), want %s", res.Status, res.Message, tt.want)
			}
			finished := condition(&out.Status, v1.ConditionFinished)
			if finished == nil || (finished.Status == "True") != phase.Terminal() {
				t.Fatalf("Finished = %+v in phase %s", finished, phase)
			}
		})
	}
}
