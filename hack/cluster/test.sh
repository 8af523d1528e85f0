#!/usr/bin/env bash
# test.sh: the cluster tier's run, for `make cluster-test`, as root. Brings
# the cluster up, runs test/cluster against it, then always tears it down
# and checks that nothing is left: after a failed test, a failed start, or
# Ctrl-C. It fails when the tests fail, or when anything of the cluster is
# left on the machine.
#
# The Makefile builds what it needs first (cluster-bin, image-tar,
# demo-bin, helm) and passes the tests their paths in HERALD_* variables;
# MAKE names the make to call back for cluster-up, cluster-down and
# cluster-check, and GO_TEST_FLAGS go to go test.
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
dir="${HERALD_CLUSTER_DIR:-$root/bin/cluster}"
make="${MAKE:-make}"

log() { echo ">> $*"; }

[[ $EUID -eq 0 ]] || { echo "cluster-test must run as root (containerd, kubelet, mounts)" >&2; exit 1; }
# A cluster that is up belongs to someone: leave it alone rather than tear
# it down at the end.
if [[ -e "$dir/run" ]]; then
	echo "cluster-test: a cluster is up ($dir): make cluster-down first" >&2
	exit 1
fi

t0=$SECONDS
status=0
phase() { log "$1 in $(($SECONDS - $2))s"; }

# Ctrl-C reaches go test too, which stops; the teardown below must still
# run, so the script only notes it.
interrupted=0
trap 'interrupted=1' INT TERM

t=$SECONDS
if $make --no-print-directory cluster-up; then
	phase "cluster up" "$t"
	t=$SECONDS
	# One package, its tests one at a time: they share the node.
	HERALD_CLUSTER_DIR="$dir" go test -count=1 ${GO_TEST_FLAGS:-} ./test/cluster/ || status=1
	phase "tests" "$t"
else
	status=1
fi
((interrupted)) && status=1

t=$SECONDS
log "tearing the cluster down"
$make --no-print-directory cluster-down || status=1
$make --no-print-directory cluster-check || status=1
phase "teardown and check" "$t"

if ((status)); then
	log "cluster-test FAILED after $((SECONDS - t0))s"
else
	log "cluster-test passed in $((SECONDS - t0))s; nothing of the cluster is left on this machine"
fi
exit "$status"
