package testenv_test

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	heraldv1alpha1 "github.com/heraldiot/herald/api/v1alpha1"
	"github.com/heraldiot/herald/internal/testenv"
)

func TestControlPlaneServesHeraldCRDs(t *testing.T) {
	cp, err := testenv.StartControlPlane()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cp.Stop(); err != nil {
			t.Errorf("stop control plane: %v", err)
		}
	})

	scheme := runtime.NewScheme()
	if err := heraldv1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cp.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	fleet := &heraldv1alpha1.DeviceFleet{
		ObjectMeta: metav1.ObjectMeta{Name: "sensors", Namespace: "default"},
		Spec: heraldv1alpha1.DeviceFleetSpec{
			Broker:    heraldv1alpha1.BrokerSpec{URLs: []string{"tcp://broker.example:1883"}},
			TopicRoot: "factory-7/sensors",
		},
	}
	if err := c.Create(ctx, fleet); err != nil {
		t.Fatalf("create DeviceFleet: %v", err)
	}
	var got heraldv1alpha1.DeviceFleet
	if err := c.Get(ctx, client.ObjectKeyFromObject(fleet), &got); err != nil {
		t.Fatalf("get DeviceFleet: %v", err)
	}
	// Defaults come from the CRD schema, so seeing them proves the generated
	// CRD, not just any CRD, is installed.
	if got.Spec.Broker.ProtocolVersion != heraldv1alpha1.ProtocolV5 {
		t.Errorf("defaulted protocolVersion = %q, want %q", got.Spec.Broker.ProtocolVersion, heraldv1alpha1.ProtocolV5)
	}
	if got.Spec.Broker.KeepAlive == nil || got.Spec.Broker.KeepAlive.Duration != 30*time.Second {
		t.Errorf("defaulted keepAlive = %v, want 30s", got.Spec.Broker.KeepAlive)
	}

	bad := fleet.DeepCopy()
	bad.ObjectMeta = metav1.ObjectMeta{Name: "bad", Namespace: "default"}
	bad.Spec.TopicRoot = "factory-7/+/sensors"
	err = c.Create(ctx, bad)
	if err == nil || !strings.Contains(err.Error(), "topicRoot must not contain the MQTT wildcards") {
		t.Errorf("create with a wildcard topic root: err = %v, want the CEL rule's message", err)
	}
}
