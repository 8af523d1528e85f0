#!/usr/bin/env bash
# Builds the envtest control plane (kube-apiserver, kubectl, etcd) from the Go
# module proxy into $1 (default bin/k8s). Release downloads are not reachable
# from our build machines, so the binaries come from source at the versions
# pinned in hack/k8s/go.mod and hack/etcd/go.mod.
#
# A binary is rebuilt only when it is missing or its stamp names another
# version, so a second run costs a few milliseconds.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/bin/k8s}"
mkdir -p "$out"

# shellcheck source=lib-build.sh
source "$root/hack/lib-build.sh"

k8s_version="$(pinned k8s.io/kubernetes "$root/hack/k8s/go.mod")"
etcd_version="$(pinned go.etcd.io/etcd/server/v3 "$root/hack/etcd/go.mod")"
[[ -n "$k8s_version" && -n "$etcd_version" ]] || { echo "cannot read pinned versions" >&2; exit 1; }

k8s_ldflags="$(k8s_ldflags "$k8s_version")"

build etcd "$etcd_version" "$root/hack/etcd" go.etcd.io/etcd/server/v3
build kube-apiserver "$k8s_version" "$root/hack/k8s" k8s.io/kubernetes/cmd/kube-apiserver "$k8s_ldflags"
build kubectl "$k8s_version" "$root/hack/k8s" k8s.io/kubernetes/cmd/kubectl "$k8s_ldflags"
