#!/usr/bin/env bash
# Makes sure a mosquitto 2.x broker (MQTT 5) and its command-line clients are
# available. Tests start their own broker processes; no system service is used.
set -euo pipefail

find_mosquitto() {
	command -v mosquitto 2>/dev/null || { [[ -x /usr/sbin/mosquitto ]] && echo /usr/sbin/mosquitto; } || true
}

usable() {
	local bin="$1"
	[[ -n "$bin" ]] || return 1
	# mosquitto -h prints "mosquitto version X.Y.Z" and exits non-zero.
	local version
	version="$("$bin" -h 2>&1 | awk '/mosquitto version/ { print $3; exit }')"
	[[ "$version" == 2.* ]] && command -v mosquitto_pub >/dev/null && command -v mosquitto_sub >/dev/null
}

bin="$(find_mosquitto)"
if usable "$bin"; then
	exit 0
fi

if command -v apt-get >/dev/null && [[ "$(id -u)" == 0 ]]; then
	echo ">> installing mosquitto and mosquitto-clients from apt"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends mosquitto mosquitto-clients >/dev/null
	bin="$(find_mosquitto)"
	usable "$bin" && exit 0
fi

cat >&2 <<'MSG'
mosquitto 2.x with mosquitto_pub and mosquitto_sub is required for the tests.
Install it, e.g. `apt-get install mosquitto mosquitto-clients` (Debian/Ubuntu),
`brew install mosquitto` (macOS) or `dnf install mosquitto` (Fedora), and run
make again.
MSG
exit 1
