#!/usr/bin/env bash
# Makes sure the interop brokers that come from Debian are installed:
# nats-server and RabbitMQ (whose package includes the rabbitmq_mqtt plugin),
# and that Node.js 20 or later with npm is there for aedes. Tests start their
# own broker processes, on their own ports and in their own directories; no
# system service is used. mochi-mqtt and aedes themselves are built and
# installed into bin/ by the Makefile.
set -euo pipefail

rabbitmq_server=/usr/lib/rabbitmq/bin/rabbitmq-server

have_nats() { command -v nats-server >/dev/null || [[ -x /usr/sbin/nats-server ]]; }
have_rabbitmq() { [[ -x "$rabbitmq_server" ]] && compgen -G "/usr/lib/rabbitmq/lib/rabbitmq_server-*/plugins/rabbitmq_mqtt-*" >/dev/null; }
node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
have_node() { (($(node_major) >= 20)) && command -v npm >/dev/null; }

missing=()
have_nats || missing+=(nats-server)
have_rabbitmq || missing+=(rabbitmq-server)

if ((${#missing[@]} > 0)); then
	if command -v apt-get >/dev/null && [[ "$(id -u)" == 0 ]]; then
		echo ">> installing ${missing[*]} from apt"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	fi
fi

ok=1
have_nats || { echo "nats-server is required for the interop tests: apt-get install nats-server (Debian/Ubuntu), brew install nats-server (macOS)" >&2; ok=0; }
have_rabbitmq || { echo "RabbitMQ with its MQTT plugin is required for the interop tests at $rabbitmq_server: apt-get install rabbitmq-server (Debian/Ubuntu)" >&2; ok=0; }
have_node || { echo "Node.js 20 or later and npm are required for the aedes broker (found node major version $(node_major))" >&2; ok=0; }
((ok)) || exit 1
