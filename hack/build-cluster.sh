#!/usr/bin/env bash
# Builds the rest of a node and of the control plane for the single-node
# cluster tier (kubelet, kube-proxy, kube-controller-manager, kube-scheduler)
# from the Go module proxy into $1 (default bin/k8s), beside the
# kube-apiserver, kubectl and etcd that hack/build-envtest.sh builds there.
#
# They come from hack/cluster/k8s, a module of their own: the kubelet and
# kube-proxy need modules the apiserver does not (cadvisor, cri-api, netlink),
# and hack/k8s stays as small as envtest needs. The two modules must pin the
# same k8s.io/kubernetes; this script refuses to build otherwise, and stamps
# the binaries as build-envtest.sh stamps the apiserver, so every component
# reports the same version.
#
# A binary is rebuilt only when it is missing or its stamp names another
# version, so a second run costs a few milliseconds. All four build with
# CGO_ENABLED=0 and no build tags, and are static.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/bin/k8s}"
mkdir -p "$out"

# shellcheck source=lib-build.sh
source "$root/hack/lib-build.sh"

k8s_version="$(pinned k8s.io/kubernetes "$root/hack/k8s/go.mod")"
cluster_version="$(pinned k8s.io/kubernetes "$root/hack/cluster/k8s/go.mod")"
[[ -n "$k8s_version" && -n "$cluster_version" ]] || { echo "cannot read pinned versions" >&2; exit 1; }
if [[ "$k8s_version" != "$cluster_version" ]]; then
	echo "hack/k8s pins k8s.io/kubernetes $k8s_version but hack/cluster/k8s pins $cluster_version:" >&2
	echo "copy hack/k8s/go.mod's require and replace blocks to hack/cluster/k8s and run go mod tidy there" >&2
	exit 1
fi

k8s_ldflags="$(k8s_ldflags "$k8s_version")"

dir="$root/hack/cluster/k8s"
build kube-controller-manager "$k8s_version" "$dir" k8s.io/kubernetes/cmd/kube-controller-manager "$k8s_ldflags"
build kube-scheduler "$k8s_version" "$dir" k8s.io/kubernetes/cmd/kube-scheduler "$k8s_ldflags"
build kubelet "$k8s_version" "$dir" k8s.io/kubernetes/cmd/kubelet "$k8s_ldflags"
build kube-proxy "$k8s_version" "$dir" k8s.io/kubernetes/cmd/kube-proxy "$k8s_ldflags"
