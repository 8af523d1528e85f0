// Package v1alpha1 holds the herald.dev/v1alpha1 API: DeviceFleet, which names a
// broker and the topic root under which a fleet of devices reports, and
// FirmwareRollout, which sends a firmware update to that fleet wave by wave.
//
// +kubebuilder:object:generate=true
// +groupName=herald.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the API group and version of every kind in this package.
	GroupVersion = schema.GroupVersion{Group: "herald.dev", Version: "v1alpha1"}

	// SchemeBuilder registers this package's kinds with a runtime.Scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds this package's kinds to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&DeviceFleet{}, &DeviceFleetList{},
		&FirmwareRollout{}, &FirmwareRolloutList{},
	)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
