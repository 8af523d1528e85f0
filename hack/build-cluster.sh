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

pinned() { # module, go.mod
	awk -v m="$1" '$1 == m && $2 ~ /^v/ { print $2; exit } $1 == "require" && $2 == m { print $3; exit }' "$2"
}

k8s_version="$(pinned k8s.io/kubernetes "$root/hack/k8s/go.mod")"
cluster_version="$(pinned k8s.io/kubernetes "$root/hack/cluster/k8s/go.mod")"
[[ -n "$k8s_version" && -n "$cluster_version" ]] || { echo "cannot read pinned versions" >&2; exit 1; }
if [[ "$k8s_version" != "$cluster_version" ]]; then
	echo "hack/k8s pins k8s.io/kubernetes $k8s_version but hack/cluster/k8s pins $cluster_version:" >&2
	echo "copy hack/k8s/go.mod's require and replace blocks to hack/cluster/k8s and run go mod tidy there" >&2
	exit 1
fi

# build <name> <version> <module dir> <package> [ldflags]
build() {
	local name="$1" version="$2" dir="$3" pkg="$4" ldflags="${5:-}"
	local stamp="$out/.$name.version"
	if [[ -x "$out/$name" && -f "$stamp" && "$(cat "$stamp")" == "$version" ]]; then
		return
	fi
	echo ">> building $name $version from the module proxy (first time: several minutes)"
	local start=$SECONDS
	(cd "$dir" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $ldflags" -o "$out/$name.tmp" "$pkg")
	mv "$out/$name.tmp" "$out/$name"
	echo "$version" >"$stamp"
	echo ">> built $name in $((SECONDS - start))s"
}

# The same version stamp as build-envtest.sh's: the kubelet reports it in the
# Node's status, and the components derive their emulation versions from it.
minor="${k8s_version#v1.}"; minor="${minor%%.*}"
k8s_ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	k8s_ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
	k8s_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

dir="$root/hack/cluster/k8s"
build kube-controller-manager "$k8s_version" "$dir" k8s.io/kubernetes/cmd/kube-controller-manager "$k8s_ldflags"
build kube-scheduler "$k8s_version" "$dir" k8s.io/kubernetes/cmd/kube-scheduler "$k8s_ldflags"
build kubelet "$k8s_version" "$dir" k8s.io/kubernetes/cmd/kubelet "$k8s_ldflags"
build kube-proxy "$k8s_version" "$dir" k8s.io/kubernetes/cmd/kube-proxy "$k8s_ldflags"
