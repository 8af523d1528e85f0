// Package e2e tests Herald end to end, as `make demo` runs it: the real
// manager and fleetsim binaries as processes, kube-apiserver and etcd,
// mosquitto, config/default's CRDs and RBAC, and config/samples, through
// internal/demo. The tests are in e2e_test.go; faults_test.go kills the
// broker and the operator again and again during a rollout, with its
// devices simulated in the test process (`make test-faults` runs them at
// full size).
package e2e
