#!/usr/bin/env bash
# cluster.sh up|down|check: a real single-node Kubernetes cluster on this
# machine, for the cluster tier (issue 17). Run as root.
#
#   up     installs containerd, runc and the CNI plugins from apt when missing,
#          starts containerd, etcd, kube-apiserver, kube-controller-manager,
#          kube-scheduler, the kubelet and kube-proxy from bin/k8s, and waits
#          for the Node to be Ready. The kubeconfig is
#          bin/cluster/admin.kubeconfig.
#   down   stops everything up started and removes what it left on the host:
#          pods, processes, mounts, network namespaces, the CNI bridge,
#          iptables chains, cgroups, fixed-path directories, kernel settings
#          and bin/cluster; then checks, as check does.
#   check  fails, naming each leftover, when any of that is still there.
#
# Everything lives under bin/cluster (CLUSTER_DIR) except what the kernel and
# the components keep in fixed places (fixed_dirs, iptables, cgroups, netns,
# sysctls); down removes those by name. The machine must run no other
# kubelet or containerd CRI: down takes every cni-* netns, KUBE-*/CNI-* chain
# and kubepods cgroup as this cluster's.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
k8s="${K8S_BIN:-$root/bin/k8s}"
dir="${CLUSTER_DIR:-$root/bin/cluster}"
node="${CLUSTER_NODE:-herald-node}"
apiserver_port="${CLUSTER_APISERVER_PORT:-6443}"
etcd_port="${CLUSTER_ETCD_PORT:-23790}"
service_cidr="10.96.0.0/16"
service_ip="10.96.0.1"
pod_cidr="10.88.0.0/16"
bridge="herald-cni0"
cni_network="herald-cluster"
# The name containerd starts sandboxes from: the release's pause version
# (kubeadm's PauseVersion), built locally by pause-image.sh.
sandbox_image="registry.k8s.io/pause:3.10.2"
sock="$dir/containerd/containerd.sock"
# Directories created at fixed paths whatever the configuration says:
# containerd's shim sockets (/run/containerd/s), network namespaces, the CNI
# plugins' IPAM and result cache, the kubelet's device-plugin socket and its
# /var/log/containers symlinks, and libmount's utab (the kubelet runs mount).
# up records those that did not exist; down removes them.
fixed_dirs=(/run/containerd /run/netns /var/lib/cni /var/lib/kubelet /var/log/containers /run/mount)
# Kernel settings the cluster changes: the kubelet sets the first six (its
# protectKernelDefaults is off, so it "modifies" instead of failing), the CNI
# bridge plugin turns on IPv4 forwarding. up saves them, down restores them.
tunables=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
	kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.ipv4.ip_forward)

log() { echo ">> $*"; }
die() { echo "cluster: $*" >&2; exit 1; }

node_ip() {
	ip -4 route get 1.1.1.1 2>/dev/null | awk '{ for (i = 1; i < NF; i++) if ($i == "src") { print $(i + 1); exit } }'
}

kubectl() { "$k8s/kubectl" --kubeconfig "$dir/admin.kubeconfig" "$@"; }

# wait_for <what> <seconds> <command...>: polls the command once a second.
wait_for() {
	local what="$1" limit="$2"; shift 2
	local t0=$SECONDS
	until "$@" >/dev/null 2>&1; do
		if ((SECONDS - t0 >= limit)); then
			echo "cluster: timed out after ${limit}s waiting for $what; logs in $dir/logs" >&2
			return 1
		fi
		sleep 1
	done
	log "$what after $((SECONDS - t0))s"
}

# start <name> <command...>: a daemon in its own session, logging to
# bin/cluster/logs/<name>.log, its pid in bin/cluster/run/<name>.pid.
start() {
	local name="$1"; shift
	setsid "$@" >"$dir/logs/$name.log" 2>&1 </dev/null &
	echo $! >"$dir/run/$name.pid"
}

ensure_packages() {
	local missing=()
	command -v containerd >/dev/null || missing+=(containerd)
	command -v runc >/dev/null || missing+=(runc)
	[[ -x /usr/lib/cni/bridge ]] || missing+=(containernetworking-plugins)
	command -v iptables >/dev/null || missing+=(iptables)
	command -v openssl >/dev/null || missing+=(openssl)
	command -v curl >/dev/null || missing+=(curl)
	((${#missing[@]} == 0)) && return
	log "installing ${missing[*]} from apt"
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# cert <name> <subject> [subjectAltName]: a key and a certificate signed by
# the cluster's CA, for a client unless a subjectAltName makes it a server's.
cert() {
	local name="$1" subject="$2" san="${3:-}" pki="$dir/pki"
	openssl genrsa -out "$pki/$name.key" 2048 2>/dev/null
	openssl req -new -key "$pki/$name.key" -subj "$subject" -out "$pki/$name.csr" 2>/dev/null
	{
		echo "basicConstraints=CA:FALSE"
		echo "keyUsage=critical,digitalSignature,keyEncipherment"
		if [[ -n "$san" ]]; then
			echo "extendedKeyUsage=serverAuth"
			echo "subjectAltName=$san"
		else
			echo "extendedKeyUsage=clientAuth"
		fi
	} >"$pki/$name.ext"
	openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
		-days 7 -extfile "$pki/$name.ext" -out "$pki/$name.crt" 2>/dev/null
	rm "$pki/$name.csr" "$pki/$name.ext"
}

kubeconfig() { # name, user's certificate name
	cat >"$dir/$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: herald
  cluster:
    server: https://$ip:$apiserver_port
    certificate-authority: $dir/pki/ca.crt
users:
- name: $2
  user:
    client-certificate: $dir/pki/$2.crt
    client-key: $dir/pki/$2.key
contexts:
- name: herald
  context: {cluster: herald, user: $2}
current-context: herald
EOF
}

pki() {
	local pki="$dir/pki"
	mkdir -p "$pki"
	openssl req -x509 -newkey rsa:2048 -nodes -keyout "$pki/ca.key" -out "$pki/ca.crt" \
		-days 7 -subj "/CN=herald-cluster-ca" 2>/dev/null
	cert apiserver "/CN=kube-apiserver" \
		"IP:$ip,IP:127.0.0.1,IP:$service_ip,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
	cert kubelet-serving "/CN=$node" "IP:$ip,DNS:$node"
	cert admin "/O=system:masters/CN=herald-cluster-admin"
	cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
	cert controller-manager "/CN=system:kube-controller-manager"
	cert scheduler "/CN=system:kube-scheduler"
	cert kubelet "/O=system:nodes/CN=system:node:$node"
	cert kube-proxy "/CN=system:kube-proxy"
	openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
	openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
	kubeconfig admin admin
	kubeconfig controller-manager controller-manager
	kubeconfig scheduler scheduler
	kubeconfig kubelet kubelet
	kubeconfig kube-proxy kube-proxy
}

containerd_config() {
	mkdir -p "$dir/cni/net.d"
	# ipMasq is off: pods reach the host (the apiserver listens on the node
	# IP) through the bridge's gateway and need nothing beyond it.
	cat >"$dir/cni/net.d/10-herald.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "$cni_network",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$bridge",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {"type": "host-local", "ranges": [[{"subnet": "$pod_cidr"}]], "routes": [{"dst": "0.0.0.0/0"}]}
    },
    {"type": "loopback"}
  ]
}
EOF
	# restrict_oom_score_adj: root here lacks CAP_SYS_RESOURCE, and runc
	# fails to lower a container's oom_score_adj ("can't get final child's
	# PID from pipe"). The opt plugin, runc's root and the CRI's state all
	# default to paths outside bin/cluster.
	cat >"$dir/containerd/config.toml" <<EOF
version = 2
root = "$dir/containerd/root"
state = "$dir/containerd/state"

[grpc]
  address = "$sock"

[ttrpc]
  address = "$sock.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$sandbox_image"
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$dir/containerd/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$dir/cni/net.d"
EOF
}

kubelet_config() {
	mkdir -p "$dir/kubelet" "$dir/pod-logs"
	cat >"$dir/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This machine is cgroup v1 without systemd as init.
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$sock
address: $ip
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: $dir/pki/kubelet-serving.crt
tlsPrivateKeyFile: $dir/pki/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $dir/pki/ca.crt}
authorization:
  mode: Webhook
clusterDomain: cluster.local
podLogsDir: $dir/pod-logs
failSwapOn: false
# The disk is shared with everything else on the machine: do not evict pods
# or collect images because it is fuller than a dedicated node's would be.
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "1%"
  imagefs.available: "1%"
imageGCHighThresholdPercent: 100
registerNode: true
EOF
}

# kube-proxy in iptables mode gives pods the kubernetes Service (the manager's
# in-cluster config) and Services in general. Its conntrack settings are
# zero, which leaves the kernel's conntrack sysctls as they are, and
# localhost NodePorts are off, which leaves route_localnet alone.
kube_proxy_config() {
	mkdir -p "$dir/kube-proxy"
	cat >"$dir/kube-proxy/config.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: $dir/kube-proxy.kubeconfig
mode: iptables
hostnameOverride: $node
clusterCIDR: $pod_cidr
bindAddress: $ip
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
iptables:
  localhostNodePorts: false
EOF
}

up() {
	[[ $EUID -eq 0 ]] || die "up must run as root (containerd, kubelet, mounts)"
	for b in etcd kube-apiserver kubectl kube-controller-manager kube-scheduler kubelet kube-proxy; do
		[[ -x "$k8s/$b" ]] || die "$k8s/$b is missing: make cluster-bin"
	done
	[[ ! -e "$dir/run" ]] || die "$dir exists: a cluster is up, or a previous one was not torn down (make cluster-down)"
	ensure_packages
	trap 'echo "cluster: up failed; logs in $dir/logs; make cluster-down removes what it started" >&2' ERR
	ip="$(node_ip)"
	[[ -n "$ip" ]] || die "cannot find this machine's IPv4 address"
	local t0=$SECONDS
	mkdir -p "$dir/logs" "$dir/run" "$dir/containerd" "$dir/etcd"
	echo "$ip" >"$dir/run/node-ip"
	# Directories the components create at fixed paths, whatever their
	# configuration says: down removes the ones that did not exist before.
	local d
	for d in "${fixed_dirs[@]}"; do
		[[ -e "$d" ]] || echo "$d" >>"$dir/run/created"
	done
	sysctl "${tunables[@]}" | sed 's/ = /=/' >"$dir/run/sysctl"
	pki
	containerd_config
	kubelet_config
	kube_proxy_config

	log "starting containerd, etcd and kube-apiserver (node $node, $ip)"
	start containerd containerd --config "$dir/containerd/config.toml"
	start etcd "$k8s/etcd" --data-dir "$dir/etcd" --name herald \
		--listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
		--listen-peer-urls "http://127.0.0.1:$((etcd_port + 1))" \
		--initial-advertise-peer-urls "http://127.0.0.1:$((etcd_port + 1))" \
		--initial-cluster "herald=http://127.0.0.1:$((etcd_port + 1))" \
		--unsafe-no-fsync
	local p="$dir/pki"
	start kube-apiserver "$k8s/kube-apiserver" \
		--etcd-servers "http://127.0.0.1:$etcd_port" \
		--advertise-address "$ip" --bind-address 0.0.0.0 --secure-port "$apiserver_port" \
		--tls-cert-file "$p/apiserver.crt" --tls-private-key-file "$p/apiserver.key" \
		--client-ca-file "$p/ca.crt" \
		--kubelet-client-certificate "$p/apiserver-kubelet-client.crt" \
		--kubelet-client-key "$p/apiserver-kubelet-client.key" \
		--kubelet-certificate-authority "$p/ca.crt" \
		--kubelet-preferred-address-types InternalIP \
		--service-account-issuer "https://kubernetes.default.svc.cluster.local" \
		--service-account-key-file "$p/sa.pub" --service-account-signing-key-file "$p/sa.key" \
		--service-cluster-ip-range "$service_cidr" \
		--authorization-mode Node,RBAC \
		--enable-admission-plugins NodeRestriction \
		--allow-privileged \
		--cert-dir "$dir/apiserver"

	wait_for "containerd serving" 60 ctr --address "$sock" version
	log "importing the sandbox image $sandbox_image (built here, never pulled)"
	"$root/hack/cluster/pause-image.sh" "$sandbox_image" "$dir/pause-image.tar"
	ctr --address "$sock" -n k8s.io images import "$dir/pause-image.tar" >/dev/null
	wait_for "kube-apiserver ready" 120 kubectl get --raw /readyz

	log "starting kube-controller-manager, kube-scheduler, kubelet and kube-proxy"
	start kube-controller-manager "$k8s/kube-controller-manager" \
		--kubeconfig "$dir/controller-manager.kubeconfig" \
		--authentication-kubeconfig "$dir/controller-manager.kubeconfig" \
		--authorization-kubeconfig "$dir/controller-manager.kubeconfig" \
		--bind-address 127.0.0.1 --leader-elect=false \
		--root-ca-file "$p/ca.crt" --service-account-private-key-file "$p/sa.key" \
		--use-service-account-credentials \
		--service-cluster-ip-range "$service_cidr" \
		--cluster-signing-cert-file "$p/ca.crt" --cluster-signing-key-file "$p/ca.key" \
		--cert-dir "$dir/controller-manager"
	start kube-scheduler "$k8s/kube-scheduler" \
		--kubeconfig "$dir/scheduler.kubeconfig" \
		--authentication-kubeconfig "$dir/scheduler.kubeconfig" \
		--authorization-kubeconfig "$dir/scheduler.kubeconfig" \
		--bind-address 127.0.0.1 --leader-elect=false
	start kubelet "$k8s/kubelet" \
		--config "$dir/kubelet/config.yaml" \
		--kubeconfig "$dir/kubelet.kubeconfig" \
		--root-dir "$dir/kubelet" --cert-dir "$dir/kubelet/pki" \
		--hostname-override "$node" --node-ip "$ip"
	start kube-proxy "$k8s/kube-proxy" --config "$dir/kube-proxy/config.yaml"
	wait_for "node $node Ready" 180 kubectl wait --for=condition=Ready --timeout=1s "node/$node"
	wait_for "kube-proxy healthy" 60 curl -fsS http://127.0.0.1:10256/healthz
	log "cluster up in $((SECONDS - t0))s: export KUBECONFIG=$dir/admin.kubeconfig"
}

# running <pid>: the process exists and has not exited. The daemons were
# reparented to PID 1 when up exited, and this machine's init reaps exited
# children only every couple of seconds: a zombie counts as stopped.
running() {
	local stat
	stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
	stat="${stat##*) }"
	[[ "${stat%% *}" != Z ]]
}

# stop <name>: TERM, then KILL after 15s, by the pid start recorded.
stop() {
	local name="$1" pidfile="$dir/run/$1.pid"
	[[ -f "$pidfile" ]] || return 0
	local pid; pid="$(cat "$pidfile")"
	if running "$pid"; then
		kill -TERM "$pid" 2>/dev/null || true
		local t0=$SECONDS
		for _ in $(seq 75); do running "$pid" || break; sleep 0.2; done
		if running "$pid"; then
			kill -KILL "$pid" 2>/dev/null || true
			log "$name killed: still running $((SECONDS - t0))s after SIGTERM"
		else
			log "$name stopped in $((SECONDS - t0))s"
		fi
	fi
	rm -f "$pidfile"
}

# Processes whose command line names this cluster's directory: the daemons,
# containerd's shims (started with our socket's address) and nothing else.
own_pids() {
	local p
	for p in /proc/[0-9]*; do
		[[ "${p#/proc/}" == "$$" ]] && continue
		{ tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -qF -- "$dir/" && echo "${p#/proc/}"
	done
	return 0
}

# The containers' processes: everything in a cgroup under kubepods.
pod_pids() {
	local c
	for c in /sys/fs/cgroup/*/kubepods; do
		[[ -d "$c" ]] && find "$c" -name cgroup.procs -exec cat {} + 2>/dev/null
	done
	return 0
}

our_netns() {
	local n
	for n in /run/netns/cni-*; do
		[[ -e "$n" ]] || continue
		# containerd's CRI names a sandbox's netns cni-<uuid>: with no other
		# CRI runtime on the machine (a requirement of the tier), they are ours.
		echo "$n"
	done
}

down() {
	[[ $EUID -eq 0 ]] || die "down must run as root"
	if [[ -d "$dir/run" ]]; then
		# Let the kubelet stop the pods, so the CNI plugins release their
		# addresses and delete their namespaces themselves.
		if [[ -f "$dir/run/kubelet.pid" ]] && kubectl get --raw /readyz >/dev/null 2>&1; then
			# Workloads first, or their controllers replace the pods.
			log "deleting every workload and pod"
			kubectl delete deployments,replicasets,daemonsets,statefulsets,jobs --all-namespaces --all --wait=false >/dev/null 2>&1 || true
			kubectl delete pods --all-namespaces --all --grace-period=0 --force --wait=false >/dev/null 2>&1 || true
			wait_for "pods gone" 60 sh -c "! ctr --address '$sock' -n k8s.io tasks ls -q | grep -q ." || true
		fi
		log "stopping the daemons"
		for name in kube-proxy kubelet kube-scheduler kube-controller-manager kube-apiserver etcd containerd; do
			stop "$name"
		done
	fi
	# What a crash or a killed kubelet leaves: containers, then shims.
	local pids
	pids="$({ pod_pids; own_pids; } | sort -un)"
	if [[ -n "$pids" ]]; then
		log "killing leftover processes: $(echo $pids)"
		kill -KILL $pids 2>/dev/null || true
		sleep 1
	fi
	# Mounts under bin/cluster (overlay rootfs, shm, volumes), deepest first.
	local m
	for m in $(awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r); do
		umount -l "$m" || true
	done
	local n
	for n in $(our_netns); do ip netns delete "$(basename "$n")" 2>/dev/null || { umount -l "$n" 2>/dev/null; rm -f "$n"; }; done
	if ip link show "$bridge" >/dev/null 2>&1; then ip link delete "$bridge"; fi
	# iptables: the kubelet's and kube-proxy's KUBE-* chains and the CNI
	# plugins' CNI-* ones:
	# first the rules that jump to them, then their rules, then the chains.
	local t cmd rule chain
	for cmd in iptables ip6tables; do
		command -v $cmd >/dev/null || continue
		for t in filter nat mangle; do
			while read -r rule; do
				eval "$cmd -t $t -D ${rule#-A }" || true
			done < <($cmd -t $t -S 2>/dev/null | grep -E '^-A .*-j (KUBE|CNI)-' || true)
			for chain in $($cmd -t $t -S 2>/dev/null | awk '/^-N (KUBE|CNI)-/ { print $2 }'); do
				$cmd -t $t -F "$chain" || true
			done
			for chain in $($cmd -t $t -S 2>/dev/null | awk '/^-N (KUBE|CNI)-/ { print $2 }'); do
				$cmd -t $t -X "$chain" || true
			done
		done
	done
	# cgroups: the kubelet's kubepods hierarchy in every controller, leaves first.
	local c
	for c in /sys/fs/cgroup/*/kubepods; do
		[[ -d "$c" ]] && find "$c" -depth -type d -exec rmdir {} + 2>/dev/null || true
	done
	rm -rf "/var/lib/cni/networks/$cni_network" /var/lib/cni/results/"$cni_network"-* \
		/var/lib/kubelet/device-plugins/kubelet.sock
	find /var/log/containers -maxdepth 1 -lname "$dir/*" -delete 2>/dev/null || true
	if [[ -f "$dir/run/created" ]]; then
		while read -r d; do rm -rf "$d"; done <"$dir/run/created"
	fi
	if [[ -f "$dir/run/sysctl" ]]; then
		sysctl -q -w $(cat "$dir/run/sysctl")
		[[ "$(sysctl "${tunables[@]}" | sed 's/ = /=/')" == "$(cat "$dir/run/sysctl")" ]] ||
			die "kernel settings not restored: want $(echo $(cat "$dir/run/sysctl"))"
		log "kernel settings restored: $(echo $(cat "$dir/run/sysctl"))"
	fi
	check_host
	rm -rf "$dir"
	[[ ! -e "$dir" ]] || die "cannot remove $dir"
	log "removed $dir"
}

# check_host: what the cluster leaves outside bin/cluster; check adds
# bin/cluster itself.
check() {
	check_host || return 1
	[[ ! -e "$dir" ]] || { echo "cluster: left behind: $dir" >&2; return 1; }
	log "bin/cluster is gone"
}

check_host() {
	local left=()
	[[ -z "$(own_pids)" ]] || left+=("processes: $(echo $(own_pids))")
	[[ -z "$(pod_pids | tr -d '[:space:]')" ]] || left+=("container processes in kubepods cgroups")
	awk -v d="$dir/" 'index($2, d) == 1 { found = 1 } END { exit !found }' /proc/self/mounts && left+=("mounts under $dir")
	[[ -z "$(our_netns)" ]] || left+=("network namespaces: $(echo $(our_netns))")
	ip link show "$bridge" >/dev/null 2>&1 && left+=("link $bridge")
	ip -o link show type veth 2>/dev/null | grep -q . && left+=("veth links")
	local t cmd
	for cmd in iptables ip6tables; do
		command -v $cmd >/dev/null || continue
		for t in filter nat mangle; do
			$cmd -t $t -S 2>/dev/null | grep -qE '(KUBE|CNI)-' && left+=("$cmd $t table: KUBE-/CNI- chains")
		done
	done
	local c
	for c in /sys/fs/cgroup/*/kubepods; do [[ -d "$c" ]] && left+=("cgroup $c"); done
	[[ -e "/var/lib/cni/networks/$cni_network" ]] && left+=("/var/lib/cni/networks/$cni_network")
	compgen -G "/var/lib/cni/results/$cni_network-*" >/dev/null && left+=("/var/lib/cni/results/$cni_network-*")
	[[ -e /var/lib/kubelet/device-plugins/kubelet.sock ]] && left+=(/var/lib/kubelet/device-plugins/kubelet.sock)
	[[ -n "$(find /var/log/containers -maxdepth 1 -lname "$dir/*" 2>/dev/null)" ]] && left+=("/var/log/containers links into $dir")
	if [[ -f "$dir/run/created" ]]; then
		while read -r d; do [[ -e "$d" ]] && left+=("$d"); done <"$dir/run/created"
	fi
	if ((${#left[@]})); then
		printf 'cluster: left behind: %s\n' "${left[@]}" >&2
		return 1
	fi
	log "nothing of the cluster is left on this machine"
}

case "${1:-}" in
up) up ;;
down) down ;;
check) check ;;
*) echo "usage: $0 up|down|check" >&2; exit 2 ;;
esac
