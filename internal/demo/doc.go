// Package demo runs Herald end to end on one machine, with nothing faked:
// etcd and kube-apiserver (envtest), Herald's CRDs and RBAC from
// config/default, mosquitto, a firmware download server, the operator
// started from its real binary as the ServiceAccount it runs as in a
// cluster, and fleetsim's simulated devices on real MQTT connections. It
// applies config/samples, narrates the rollout, approves its gates and
// reports the outcome, showing the rollout and the fleet as `kubectl
// herald` shows them (internal/view) and printing the plugin commands that
// follow along from another terminal.
//
// `make demo` runs it (hack/demo), and so do the end-to-end tests
// (test/e2e), on a smaller fleet.
package demo
