// Package controllers holds Herald's reconcilers: one per kind of the
// herald.dev API, each in its own file with its RBAC markers beside it.
package controllers

// The manager reads fleets and writes their status; finer rules live beside
// each reconciler.
// +kubebuilder:rbac:groups=herald.dev,resources=devicefleets,verbs=get;list;watch
// +kubebuilder:rbac:groups=herald.dev,resources=devicefleets/status,verbs=get;update;patch
