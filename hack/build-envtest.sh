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

pinned() { # module, go.mod
	awk -v m="$1" '$1 == m && $2 ~ /^v/ { print $2; exit } $1 == "require" && $2 == m { print $3; exit }' "$2"
}

k8s_version="$(pinned k8s.io/kubernetes "$root/hack/k8s/go.mod")"
etcd_version="$(pinned go.etcd.io/etcd/server/v3 "$root/hack/etcd/go.mod")"
[[ -n "$k8s_version" && -n "$etcd_version" ]] || { echo "cannot read pinned versions" >&2; exit 1; }

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

# The apiserver derives its emulation and compatibility versions from the
# binary version, so an unstamped v0.0.0 build refuses to serve current APIs.
minor="${k8s_version#v1.}"; minor="${minor%%.*}"
k8s_ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	k8s_ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
	k8s_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

build etcd "$etcd_version" "$root/hack/etcd" go.etcd.io/etcd/server/v3
build kube-apiserver "$k8s_version" "$root/hack/k8s" k8s.io/kubernetes/cmd/kube-apiserver "$k8s_ldflags"
build kubectl "$k8s_version" "$root/hack/k8s" k8s.io/kubernetes/cmd/kubectl "$k8s_ldflags"
