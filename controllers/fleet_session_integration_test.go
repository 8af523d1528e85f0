package controllers_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	eventsv1 "k8s.io/api/events/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/internal/devicesim"
)

// fleetEvents returns the reasons of the events recorded for a fleet.
func fleetEvents(t *testing.T, ns, name string) []string {
	t.Helper()
	var list eventsv1.EventList
	if err := k8s.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range list.Items {
		if e.Regarding.Kind == "DeviceFleet" && e.Regarding.Name == name {
			out = append(out, e.Reason)
		}
	}
	return out
}

// TestFleetDeviceLimit: a fleet with more devices than spec.maxDevices
// tracks the cap's worth, says so in a condition, an event and a metric,
// and recovers when the cap is raised.
func TestFleetDeviceLimit(t *testing.T) {
	ns := newNamespace(t)
	root := "plant/" + ns
	_, reg := startManagerWithMetrics(t)
	simFleet(t, root, 8, "sensor", "1.0.0", devicesim.Behavior{}, nil)
	f := createFleet(t, ns, "fleet", root)
	patchFleet(t, f, func(f *v1.DeviceFleet) { f.Spec.MaxDevices = ptr.To(int32(5)) })
	eventually(t, 30*time.Second, "DeviceLimitReached True", func() (bool, string) {
		f := getFleet(t, ns, "fleet")
		c := apimeta.FindStatusCondition(f.Status.Conditions, v1.ConditionDeviceLimitReached)
		return c != nil && c.Status == metav1.ConditionTrue && c.Reason == v1.ReasonDeviceLimitReached &&
				strings.Contains(c.Message, "spec.maxDevices (5)") && f.Status.Devices.Known <= 5 && f.Status.IgnoredDeviceMessages > 0,
			fmt.Sprintf("%+v devices %+v ignored %d", c, f.Status.Devices, f.Status.IgnoredDeviceMessages)
	})
	eventually(t, 10*time.Second, "a DeviceLimitReached event", func() (bool, string) {
		r := fleetEvents(t, ns, "fleet")
		return slices.Contains(r, v1.ReasonDeviceLimitReached), fmt.Sprint(r)
	})
	want := fmt.Sprintf(`
# HELP herald_fleet_device_limit_reached 1 while a fleet has more devices on its broker than spec.maxDevices lets Herald track.
# TYPE herald_fleet_device_limit_reached gauge
herald_fleet_device_limit_reached{fleet="fleet",namespace=%q} 1
`, ns)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "herald_fleet_device_limit_reached"); err != nil {
		t.Fatal(err)
	}

	patchFleet(t, f, func(f *v1.DeviceFleet) { f.Spec.MaxDevices = ptr.To(int32(100)) })
	eventually(t, 30*time.Second, "all 8 devices tracked after raising the cap", func() (bool, string) {
		f := getFleet(t, ns, "fleet")
		c := apimeta.FindStatusCondition(f.Status.Conditions, v1.ConditionDeviceLimitReached)
		return c != nil && c.Status == metav1.ConditionFalse && f.Status.Devices.Known == 8 && f.Status.IgnoredDeviceMessages == 0,
			fmt.Sprintf("%+v devices %+v", c, f.Status.Devices)
	})
}

// TestFleetClientIDConflict: two fleets that set the same client ID on the
// same broker would knock each other off; the newer one is refused with a
// clear condition and connects once the older one is gone.
func TestFleetClientIDConflict(t *testing.T) {
	ns := newNamespace(t)
	startManager(t)
	id := "shared-" + ns
	older := createFleet(t, ns, "older", "plant/"+ns+"/a")
	patchFleet(t, older, func(f *v1.DeviceFleet) { f.Spec.Broker.ClientID = id })
	eventually(t, 30*time.Second, "the older fleet ready", func() (bool, string) {
		c := apimeta.FindStatusCondition(getFleet(t, ns, "older").Status.Conditions, v1.ConditionReady)
		return c != nil && c.Status == metav1.ConditionTrue, fmt.Sprintf("%+v", c)
	})
	// Creation times have a one-second resolution: make the order certain.
	time.Sleep(1100 * time.Millisecond)
	newer := createFleet(t, ns, "newer", "plant/"+ns+"/b")
	patchFleet(t, newer, func(f *v1.DeviceFleet) { f.Spec.Broker.ClientID = id })
	eventually(t, 30*time.Second, "the newer fleet refused", func() (bool, string) {
		f := getFleet(t, ns, "newer")
		c := apimeta.FindStatusCondition(f.Status.Conditions, v1.ConditionReady)
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == v1.ReasonClientIDConflict &&
				strings.Contains(c.Message, ns+"/older") && apimeta.IsStatusConditionTrue(f.Status.Conditions, v1.ConditionStalled),
			fmt.Sprintf("%+v", f.Status.Conditions)
	})
	// The older one is not disturbed: it stays connected throughout.
	if c := apimeta.FindStatusCondition(getFleet(t, ns, "older").Status.Conditions, v1.ConditionReady); c.Status != metav1.ConditionTrue {
		t.Fatalf("the older fleet: %+v", c)
	}
	if err := k8s.Delete(context.Background(), older); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the newer fleet ready once the older is gone", func() (bool, string) {
		c := apimeta.FindStatusCondition(getFleet(t, ns, "newer").Status.Conditions, v1.ConditionReady)
		return c != nil && c.Status == metav1.ConditionTrue, fmt.Sprintf("%+v", c)
	})
}

// TestFleetRestartWithoutFalseWarning: a manager that starts while the
// fleet's status still says connected (from the manager before it) does
// not report a lost connection: the broker never went away.
func TestFleetRestartWithoutFalseWarning(t *testing.T) {
	ns := newNamespace(t)
	root := "plant/" + ns
	stop := startManager(t)
	simFleet(t, root, 3, "sensor", "1.0.0", devicesim.Behavior{}, nil)
	createFleet(t, ns, "fleet", root)
	ready := func(what string) {
		eventually(t, 30*time.Second, what, func() (bool, string) {
			f := getFleet(t, ns, "fleet")
			return apimeta.IsStatusConditionTrue(f.Status.Conditions, v1.ConditionReady) && f.Status.Devices.Known == 3, fmt.Sprintf("%+v", f.Status.Conditions)
		})
	}
	ready("fleet ready")
	stop()
	_, reg := startManagerWithMetrics(t)
	// The new manager's own metrics say when its session has synced.
	want := fmt.Sprintf(`
# HELP herald_fleet_synced 1 while a fleet's device state is rebuilt from a complete retained replay on the current connection.
# TYPE herald_fleet_synced gauge
herald_fleet_synced{fleet="fleet",namespace=%q} 1
`, ns)
	eventually(t, 30*time.Second, "a sync by the new manager", func() (bool, string) {
		err := testutil.GatherAndCompare(reg, strings.NewReader(want), "herald_fleet_synced")
		return err == nil, fmt.Sprint(err)
	})
	ready("fleet ready under the new manager")
	if r := fleetEvents(t, ns, "fleet"); slices.Contains(r, "BrokerDisconnected") {
		t.Fatalf("events %v: a restart is not a lost broker connection", r)
	}
}

func patchFleet(t *testing.T, f *v1.DeviceFleet, mutate func(*v1.DeviceFleet)) {
	t.Helper()
	update(t, func() *v1.DeviceFleet { return getFleet(t, f.Namespace, f.Name) }, mutate)
}
