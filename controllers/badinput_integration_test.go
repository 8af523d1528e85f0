package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/internal/devicesim"
)

// TestInvalidConstraintStalls: a currentVersion constraint outside the
// grammar devices implement cannot be caught by the schema; the rollout
// must say so in status and publish nothing.
func TestInvalidConstraintStalls(t *testing.T) {
	ns := newNamespace(t)
	root := "plant/" + ns
	startManager(t)
	fl := simFleet(t, root, 5, "sensor", "1.0.0", devicesim.Behavior{}, nil)
	createFleet(t, ns, "fleet", root)
	ro := rollout(ns, "r", "fleet", pct(100))
	ro.Spec.Selector = &v1.DeviceSelector{CurrentVersion: "~1.0"}
	if err := k8s.Create(context.Background(), ro); err != nil {
		t.Fatal(err)
	}
	got := waitPhase(t, ns, "r", v1.PhaseFailed, 60*time.Second)
	stalled := apimeta.FindStatusCondition(got.Status.Conditions, v1.ConditionStalled)
	if stalled == nil || stalled.Status != metav1.ConditionTrue || !strings.Contains(stalled.Message, "selector.currentVersion") {
		t.Fatalf("Stalled = %+v, want True with a message naming selector.currentVersion", stalled)
	}
	assertNoRetainedNotices(t, root)
	for _, d := range fl.Devices {
		if d.FirmwareVersion() != "1.0.0" {
			t.Fatalf("device %s updated by an invalid rollout", d.ID())
		}
	}
}

// TestMissingCredentialsSecret: a fleet whose Secret does not exist says
// which one in its Ready condition, and recovers once it is created.
func TestMissingCredentialsSecret(t *testing.T) {
	ns := newNamespace(t)
	startManager(t)
	f := &v1.DeviceFleet{
		ObjectMeta: metav1.ObjectMeta{Name: "fleet", Namespace: ns},
		Spec: v1.DeviceFleetSpec{
			Broker:    v1.BrokerSpec{URLs: []string{broker.URL()}, CredentialsSecretRef: &corev1.LocalObjectReference{Name: "mqtt-creds"}},
			TopicRoot: "plant/" + ns,
		},
	}
	if err := k8s.Create(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "Ready False naming the secret", func() (bool, string) {
		c := apimeta.FindStatusCondition(getFleet(t, ns, "fleet").Status.Conditions, v1.ConditionReady)
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == v1.ReasonInvalidCredentials &&
			strings.Contains(c.Message, `"mqtt-creds"`), fmt.Sprintf("%+v", c)
	})
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "mqtt-creds", Namespace: ns},
		Data:       map[string][]byte{"username": []byte("operator"), "password": []byte("s3cret")},
	}
	if err := k8s.Create(context.Background(), secret); err != nil {
		t.Fatal(err)
	}
	// The test broker allows any user, so the fleet connects once the
	// Secret watch brings the new credentials.
	eventually(t, 30*time.Second, "fleet ready after the secret appears", func() (bool, string) {
		c := apimeta.FindStatusCondition(getFleet(t, ns, "fleet").Status.Conditions, v1.ConditionReady)
		return c != nil && c.Status == metav1.ConditionTrue, fmt.Sprintf("%+v", c)
	})
}
