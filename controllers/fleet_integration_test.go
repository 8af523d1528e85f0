package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/internal/devicesim"
	"github.com/heraldiot/herald/mqtt"
)

func getFleet(t *testing.T, ns, name string) *v1.DeviceFleet {
	t.Helper()
	var f v1.DeviceFleet
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &f); err != nil {
		t.Fatal(err)
	}
	return &f
}

// TestFleetPresenceAndMalformed checks device counts, that a device whose
// socket dies shows offline through its Will, and that malformed device
// messages are counted.
func TestFleetPresenceAndMalformed(t *testing.T) {
	ns := newNamespace(t)
	root := "plant/" + ns
	_, reg := startManagerWithMetrics(t)
	fl := simFleet(t, root, 10, "sensor", "1.0.0", devicesim.Behavior{}, nil)
	createFleet(t, ns, "fleet", root)
	eventually(t, 30*time.Second, "fleet ready with 10 online devices", func() (bool, string) {
		f := getFleet(t, ns, "fleet")
		return apimeta.IsStatusConditionTrue(f.Status.Conditions, v1.ConditionReady) && f.Status.Devices.Online == 10,
			fmt.Sprintf("%+v %+v", f.Status.Devices, f.Status.Conditions)
	})
	f := getFleet(t, ns, "fleet")
	if len(f.Status.FirmwareVersions) != 1 || f.Status.FirmwareVersions[0] != (v1.ValueCount{Value: "1.0.0", Count: 10}) {
		t.Fatalf("version histogram %+v", f.Status.FirmwareVersions)
	}

	fl.Devices[0].Kill()
	eventually(t, 30*time.Second, "killed device offline", func() (bool, string) {
		f := getFleet(t, ns, "fleet")
		return f.Status.Devices.Online == 9 && f.Status.Devices.Offline == 1, fmt.Sprintf("%+v", f.Status.Devices)
	})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := mqtt.Dial(ctx, mqtt.Options{Servers: []string{broker.URL()}, ClientID: "vandal-" + ns})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(ctx)
	for _, m := range []mqtt.Message{
		{Topic: root + "/devices/x1/inventory", Payload: []byte("not json")},
		{Topic: root + "/devices/x2/status", Payload: []byte(`{"v":1,"state":"exploded"}`)},
		{Topic: root + "/devices/x3/presence", Payload: []byte(`{"v":99,"state":"online"}`)},
		{Topic: root + "/devices/bad id/inventory", Payload: []byte(`{}`)},
	} {
		m.QoS = 1
		if err := c.Publish(ctx, &m); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 30*time.Second, "malformed messages counted", func() (bool, string) {
		f := getFleet(t, ns, "fleet")
		return f.Status.MalformedMessages == 4, fmt.Sprintf("malformed %d", f.Status.MalformedMessages)
	})
	if f := getFleet(t, ns, "fleet"); f.Status.Devices.Known != 10 {
		t.Fatalf("malformed messages changed the device count: %+v", f.Status.Devices)
	}
	want := fmt.Sprintf(`
# HELP herald_malformed_messages_total Device messages that could not be used.
# TYPE herald_malformed_messages_total counter
herald_malformed_messages_total{fleet="fleet",namespace=%q} 4
`, ns)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "herald_malformed_messages_total"); err != nil {
		t.Fatal(err)
	}
	want = fmt.Sprintf(`
# HELP herald_broker_connected 1 while a fleet's broker connection is up.
# TYPE herald_broker_connected gauge
herald_broker_connected{fleet="fleet",namespace=%q} 1
`, ns)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "herald_broker_connected"); err != nil {
		t.Fatal(err)
	}
	// The fleet's MQTT client exports its own counters under the fleet's labels.
	want = fmt.Sprintf(`
# HELP mqtt_client_connected 1 while a connection is up.
# TYPE mqtt_client_connected gauge
mqtt_client_connected{fleet="fleet",namespace=%q} 1
`, ns)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "mqtt_client_connected"); err != nil {
		t.Fatal(err)
	}
}
