# Shared by hack/build-envtest.sh and hack/build-cluster.sh, which source it
# after setting $out: the binaries they build from the Go module proxy are
# stamped and rebuilt the same way.

# pinned <module> <go.mod> prints the version go.mod requires of module.
pinned() {
	awk -v m="$1" '$1 == m && $2 ~ /^v/ { print $2; exit } $1 == "require" && $2 == m { print $3; exit }' "$2"
}

# build <name> <version> <module dir> <package> [ldflags] builds $out/<name>
# unless it exists with a stamp naming version, so a second run costs a few
# milliseconds.
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

# k8s_ldflags <version> prints the version stamp of a Kubernetes component.
# The components derive their emulation and compatibility versions from it
# (an unstamped v0.0.0 apiserver refuses to serve current APIs), and the
# kubelet reports it in the Node's status.
k8s_ldflags() {
	local version="$1" minor flags="" pkg
	minor="${version#v1.}"; minor="${minor%%.*}"
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		flags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
		flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
	done
	echo "$flags"
}
