#!/usr/bin/env bash
# pause-image.sh REF OUT: builds hack/cluster/pause statically and packs it
# into a `docker save` tarball OUT whose one image is named REF, for
# `ctr images import`. The cluster's containerd names REF as its sandbox
# image, so no pod ever pulls one. The tarball is reproducible: fixed
# timestamps and owners.
set -euo pipefail

ref="$1" out="$2"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

mkdir -p "$work/rootfs"
(cd "$here/pause" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$work/rootfs/pause" .)

tar_flags=(--sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=posix --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime)
tar -C "$work/rootfs" "${tar_flags[@]}" -cf "$work/layer.tar" pause
diff_id="sha256:$(sha256sum "$work/layer.tar" | cut -d' ' -f1)"

arch="$(go env GOARCH)"
mkdir -p "$work/image"
cat >"$work/config.json" <<EOF
{"architecture":"$arch","os":"linux","created":"1970-01-01T00:00:00Z","config":{"Entrypoint":["/pause"],"User":"65535:65535"},"rootfs":{"type":"layers","diff_ids":["$diff_id"]}}
EOF
config="$(sha256sum "$work/config.json" | cut -d' ' -f1).json"
mv "$work/config.json" "$work/image/$config"
mkdir -p "$work/image/layer"
mv "$work/layer.tar" "$work/image/layer/layer.tar"
printf '[{"Config":"%s","RepoTags":["%s"],"Layers":["layer/layer.tar"]}]\n' "$config" "$ref" >"$work/image/manifest.json"
tar -C "$work/image" "${tar_flags[@]}" -cf "$out" manifest.json "$config" layer
