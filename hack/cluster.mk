# The single-node cluster tier (issue 17), opt-in: nothing here runs in
# `make test`. The Makefile includes this file after setting LOCALBIN and
# ENVTEST_DIR; docs/development.md, "Single-node cluster tier", says what it
# needs and what it leaves on the machine (nothing, once cluster-down ran).
#
# kubelet, kube-proxy, kube-controller-manager and kube-scheduler are built
# from hack/cluster/k8s into bin/k8s beside the envtest binaries, at the same
# Kubernetes version; the cluster's state, certificates, kubeconfigs and
# logs live in bin/cluster.

CLUSTER_DIR := $(LOCALBIN)/cluster

##@ Cluster tier (root; opt-in)

.PHONY: cluster-bin
cluster-bin: envtest-bin ## Build kubelet, kube-proxy, kube-controller-manager and kube-scheduler from the module proxy into bin/k8s.
	@hack/build-cluster.sh "$(ENVTEST_DIR)"

.PHONY: cluster-up
cluster-up: cluster-bin ## Start containerd and a single-node cluster here, as root (apt-installs containerd, runc, CNI plugins); KUBECONFIG=bin/cluster/admin.kubeconfig.
	@K8S_BIN="$(ENVTEST_DIR)" CLUSTER_DIR="$(CLUSTER_DIR)" hack/cluster/cluster.sh up

.PHONY: cluster-down
cluster-down: ## Stop the cluster and remove everything it left on this machine, then check that nothing is left.
	@K8S_BIN="$(ENVTEST_DIR)" CLUSTER_DIR="$(CLUSTER_DIR)" hack/cluster/cluster.sh down

.PHONY: cluster-check
cluster-check: ## Fail when anything of the cluster (processes, mounts, netns, iptables chains, cgroups, state) is still on this machine.
	@K8S_BIN="$(ENVTEST_DIR)" CLUSTER_DIR="$(CLUSTER_DIR)" hack/cluster/cluster.sh check

# The tier's tests (test/cluster) on a cluster of their own: built, started,
# tested, torn down and checked, the teardown whatever happened before. The
# tests install the image with `make deploy` and the chart with helm, and
# run fleetsim on this machine against a mosquitto on its address.
CLUSTER_TEST_FLAGS ?= -v -timeout 30m

.PHONY: cluster-test
cluster-test: cluster-bin image-tar demo-bin broker $(HELM) ## Run the cluster tier (root, serial; 2.5 minutes once built): make deploy and the chart on a real node, probes, metrics RBAC, a rollout, leader fail-over; tear down and check.
	@MAKE="$(MAKE)" HERALD_CLUSTER_DIR="$(CLUSTER_DIR)" HERALD_CLUSTER_IMG="$(IMG)" \
		HERALD_CLUSTER_IMAGE_TAR="$(IMAGE_TAR)" HERALD_CLUSTER_KUBECTL="$(ENVTEST_DIR)/kubectl" \
		HERALD_CLUSTER_FLEETSIM="$(LOCALBIN)/fleetsim" HERALD_HELM="$(HELM)" \
		GO_TEST_FLAGS="$(CLUSTER_TEST_FLAGS)" hack/cluster/test.sh
