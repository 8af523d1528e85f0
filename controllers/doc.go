// Package controllers holds Herald's reconcilers: one per kind of the
// herald.dev API, each in its own file with its RBAC markers beside it.
package controllers
