#!/usr/bin/env bash
# Compares Herald's MQTT client with the Eclipse Paho Go clients and with the
# raw socket limit, against one mosquitto on loopback, and prints the table
# that docs/benchmarks.md explains. The comparison lives in its own module
# (bench/), so Paho never enters Herald's dependency graph.
#
# Arguments go to the bench binary, e.g. `hack/bench.sh -rounds 5 -qos 1`;
# `hack/bench.sh -h` lists them.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${root}/bin/herald-bench"

"${root}/hack/ensure-mosquitto.sh"
(cd "${root}/bench" && go build -o "${bin}" .)

# 1,000 idle clients need as many descriptors in the client process and in
# mosquitto; the binary raises its soft limit to the hard one, and says so
# when even that is too low.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

exec "${bin}" "$@"
