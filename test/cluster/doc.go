// Package cluster tests Herald the way users run it, on a real single-node
// Kubernetes cluster on this machine (hack/cluster/cluster.sh): the image
// `make image-tar` builds, imported into the node's containerd, installed
// with `make deploy` and with the Helm chart; the manager's pods with their
// probes, leader election between two replicas, RBAC from inside a pod and
// the metrics endpoint behind Kubernetes authentication; a fleet simulated
// by fleetsim on the host, on a mosquitto the pods reach through their
// bridge, and rollouts whose every count is known in advance.
//
// The tests need a running cluster and root, so they run only under
// `make cluster-test`, which builds everything, starts the cluster, runs
// them and tears the cluster down, checking that nothing is left. Elsewhere,
// as in `make test`, they skip unless HERALD_CLUSTER_DIR names a running
// cluster's directory (bin/cluster after `make cluster-up`).
//
// The tests share the cluster and one broker, so they run one at a time,
// each installing what it needs: deploy_test.go the kustomize install,
// fleet_test.go a rollout and a leader fail-over on it, helm_test.go the
// chart after removing the kustomize install.
package cluster
