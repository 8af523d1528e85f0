#!/usr/bin/env bash
# Fails when `make manifests generate` would change the generated files that are
# checked in. It compares before and after, so uncommitted edits elsewhere in a
# work tree do not count against it.
set -euo pipefail
make="${1:-make}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

snapshot() {
	find config/crd/bases config/rbac api -type f \( -name '*.yaml' -o -name 'zz_generated*.go' \) -print0 2>/dev/null |
		sort -z | xargs -0 -r sha256sum
}

before="$(snapshot)"
$make --no-print-directory manifests generate >/dev/null
after="$(snapshot)"
if [[ "$before" != "$after" ]]; then
	echo "generated files are out of date; run 'make manifests generate' and commit the result:" >&2
	diff <(echo "$before") <(echo "$after") >&2 || true
	exit 1
fi
