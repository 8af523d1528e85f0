package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/internal/testenv"
	"github.com/heraldiot/herald/mqtt"
	"github.com/heraldiot/herald/protocol"
)

// retain publishes retained device messages as devices would, and returns
// once the broker has acknowledged each: it holds them from then on.
func retain(t *testing.T, broker *testenv.Broker, user, password string, msgs map[string]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := mqtt.Dial(ctx, mqtt.Options{Servers: []string{broker.URL()}, ClientID: "devices-" + randomHex(4), CleanStart: true, Username: user, Password: []byte(password)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(ctx)
	for topic, payload := range msgs {
		if err := c.Publish(ctx, &mqtt.Message{Topic: topic, Payload: []byte(payload), QoS: mqtt.AtLeastOnce, Retain: true}); err != nil {
			t.Fatalf("publish %s: %v", topic, err)
		}
	}
}

func inventoryJSON(id, version string) string {
	return fmt.Sprintf(`{"v":1,"deviceId":%q,"model":"sensor-a","hardwareRevision":"rev C","firmwareVersion":%q}`, id, version)
}

func statusJSON(uid, ns, state, extra string) string {
	return fmt.Sprintf(`{"v":1,"rolloutUID":%q,"rollout":"%s/sensor-2.1.0","targetVersion":"2.1.0","state":%q%s}`, uid, ns, state, extra)
}

// TestDevices reads a rollout's devices from a real broker with the
// fleet's own connection settings, its credentials from a Secret, and
// shows what a user without the right to read that Secret is told.
func TestDevices(t *testing.T) {
	broker := testenv.StartBroker(t, testenv.BrokerOptions{Users: map[string]string{"herald": "s3cret", "device": "d3v1ce"}})
	ns := newNamespace(t)
	ctx := context.Background()
	k := apiserver(t)
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "mqtt-creds"},
		Data:       map[string][]byte{"username": []byte("herald"), "password": []byte("s3cret")},
	}
	if err := k.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	ro := createRollout(t, ns, v1.BrokerSpec{
		URLs: []string{broker.URL()}, CredentialsSecretRef: &corev1.LocalObjectReference{Name: "mqtt-creds"},
	})
	uid := string(ro.UID)
	topics, err := protocol.NewTopics("factory-7/sensors")
	if err != nil {
		t.Fatal(err)
	}
	msgs := map[string]string{}
	device := func(id, status string) {
		msgs[topics.Inventory(id)] = inventoryJSON(id, "2.0.3")
		msgs[topics.Presence(id)] = `{"v":1,"state":"online"}`
		if status != "" {
			msgs[topics.Status(id)] = status
		}
	}
	device("sensor-0001", statusJSON(uid, ns, "downloading", `,"progress":40,"ts":"2026-03-02T09:30:25Z"`))
	device("sensor-0002", statusJSON(uid, ns, "failed", `,"reason":"checksum-mismatch","message":"SHA-256 differs"`))
	device("sensor-0003", statusJSON(uid, ns, "rejected", `,"reason":"low-battery"`))
	device("sensor-0004", statusJSON(uid, ns, "succeeded", ""))
	device("sensor-0005", statusJSON("another-rollout", ns, "failed", `,"reason":"install-failed"`))
	device("sensor-0006", "")
	device("sensor-0007", statusJSON(uid, ns, "accepted", ""))
	device("sensor-0008", statusJSON(uid, ns, "accepted", ""))
	msgs[topics.Presence("sensor-0008")] = `{"v":1,"state":"offline"}`
	msgs[topics.Status("sensor-0009")] = `{"v":1,"state":"not json`
	retain(t, broker, "device", "d3v1ce", msgs)
	// sensor-0007 is skipped; sensor-0008 timed out in the operator's
	// eyes, which its own status cannot say.
	if _, err := runPlugin(t, ns, "skip", ro.Name, "sensor-0007"); err != nil {
		t.Fatal(err)
	}
	setStatus(t, ns, ro.Name, func(st *v1.FirmwareRolloutStatus) {
		st.Phase = v1.PhaseProgressing
		st.FailureSample = []v1.DeviceFailure{
			{Device: "sensor-0008", State: "failed", Reason: "timeout", Time: metav1.Now()},
			{Device: "sensor-0002", State: "failed", Reason: "checksum-mismatch", Time: metav1.Now()},
		}
	})

	out, err := runPlugin(t, ns, "devices", ro.Name)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		"DEVICE       STATE               PROGRESS  REASON             MODEL     VERSION",
		"sensor-0001  downloading         40%       -                  sensor-a  2.0.3",
		"sensor-0002  failed              -         checksum-mismatch  sensor-a  2.0.3",
		"sensor-0003  rejected            -         low-battery        sensor-a  2.0.3",
		"sensor-0004  succeeded           -         -                  sensor-a  2.0.3",
		"sensor-0007  skipped (accepted)  -         -                  sensor-a  2.0.3",
		"sensor-0008  failed (accepted)   -         timeout            sensor-a  2.0.3",
		"",
	}, "\n")
	if out != want {
		t.Errorf("devices printed\n%s\nwant\n%s", out, want)
	}

	out, err = runPlugin(t, ns, "devices", ro.Name, "--state", "failed", "-o", "wide")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "sensor-0002") || !strings.HasPrefix(lines[2], "sensor-0008") ||
		!strings.Contains(lines[0], "PRESENCE") || !strings.Contains(lines[1], "SHA-256 differs") || !strings.Contains(lines[2], "offline") {
		t.Errorf("devices --state failed -o wide printed\n%s", out)
	}

	out, err = runPlugin(t, ns, "devices", ro.Name, "--state", "inProgress", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var list devicesList
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	if list.RolloutUID != uid || len(list.Devices) != 1 || list.Devices[0].Device != "sensor-0001" ||
		list.Devices[0].Progress == nil || *list.Devices[0].Progress != 40 || list.Devices[0].ReportedAt == nil {
		t.Errorf("devices --state inProgress -o json printed %s", out)
	}

	// A user who may read rollouts and fleets but not Secrets is told what
	// to ask for, and can bring credentials of their own.
	grantReader(t, ns, "viewer")
	_, err = runPlugin(t, ns, "devices", ro.Name, "--as", "viewer")
	wantErr := "cannot read Secret " + ns + "/mqtt-creds (the credentials of fleet sensors): forbidden; ask for get on secrets or use --username/--password"
	if err == nil || err.Error() != wantErr {
		t.Errorf("without access to the Secret: %v\nwant: %s", err, wantErr)
	}
	out, err = runPlugin(t, ns, "devices", ro.Name, "--as", "viewer", "--username", "herald", "--password", "s3cret", "--state", "rejected")
	if err != nil || !strings.Contains(out, "sensor-0003") || strings.Contains(out, "sensor-0002") {
		t.Errorf("with --username and --password: %v\n%s", err, out)
	}
	_, err = runPlugin(t, ns, "devices", ro.Name, "--username", "herald", "--password", "wrong")
	if err == nil || !strings.Contains(err.Error(), "connect to the fleet's broker "+broker.URL()) {
		t.Errorf("with a wrong password: %v", err)
	}
	if _, err := runPlugin(t, ns, "devices", ro.Name, "--state", "done"); err == nil || !strings.Contains(err.Error(), `unknown --state "done"`) {
		t.Errorf("an unknown state: %v", err)
	}
}

// grantReader lets user get firmwarerollouts and devicefleets in ns, and
// nothing else.
func grantReader(t *testing.T, ns, user string) {
	t.Helper()
	ctx := context.Background()
	k := apiserver(t)
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "herald-viewer"},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{v1.GroupVersion.Group}, Resources: []string{"firmwarerollouts", "devicefleets"},
			Verbs: []string{"get", "list", "watch"},
		}},
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "herald-viewer"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
	}
	if err := k.Create(ctx, role); err != nil {
		t.Fatal(err)
	}
	if err := k.Create(ctx, binding); err != nil {
		t.Fatal(err)
	}
	// The apiserver's authorizer learns of new bindings from its caches:
	// wait until it lets the user read both kinds, as it tells by access
	// reviews.
	deadline := time.Now().Add(waitLimit)
	for _, resource := range []string{"firmwarerollouts", "devicefleets"} {
		for {
			review := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
				User: user,
				ResourceAttributes: &authorizationv1.ResourceAttributes{
					Namespace: ns, Verb: "get", Group: v1.GroupVersion.Group, Resource: resource,
				},
			}}
			if err := k.Create(ctx, review); err != nil {
				t.Fatal(err)
			}
			if review.Status.Allowed {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s may still not get %s: %+v", user, resource, review.Status)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
