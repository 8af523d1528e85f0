// Package v1alpha1 holds the herald.dev/v1alpha1 API: DeviceFleet, which names a
// broker and the topic root under which a fleet of devices reports, and
// FirmwareRollout, which sends a firmware update to that fleet wave by wave.
//
// +kubebuilder:object:generate=true
// +groupName=herald.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the API group and version of every kind in this package.
	GroupVersion = schema.GroupVersion{Group: "herald.dev", Version: "v1alpha1"}

	// SchemeBuilder registers this package's kinds with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds this package's kinds to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
