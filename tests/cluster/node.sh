# shellcheck shell=bash
# shellcheck disable=SC2154 # state, bin, here, cache: set by up and down
# The local cluster's node, sourced by tests/cluster/up (node_up) and
# tests/cluster/down (node_down): containerd, runc and the CNI plugins from
# Debian's packages, the kubelet and kube-proxy from the kube multi-call
# binary, a bridge network, and CoreDNS as a Deployment. Every image (pause,
# CoreDNS) is built here (tests/cluster/build) and imported into containerd;
# nothing is pulled.
#
# Everything it makes is named so `down` finds exactly it: state under
# $state/node, the bridge $NODE_BRIDGE, the CNI network $NODE_NETWORK (its
# iptables rules carry that name), the cgroup $NODE_CGROUP, kube-proxy's
# KUBE-* chains (removed by `kube-proxy --cleanup`).
#
# One node per host (the bridge, cgroup and pod CIDR are fixed): `up --node`
# writes $NODE_OWNER with its state dir, refuses while another state dir's
# node holds it, and refuses when KUBE-* chains exist that it did not make
# (another kubelet or kube-proxy). `down` runs the host-wide cleanups
# (kube-proxy --cleanup, the kubelet's chains, the bridge, the cgroup) only
# when the marker is its own.
#
# Needs root: the kubelet makes cgroups, containerd mounts, CNI makes
# interfaces and iptables rules. Expects from the caller: $state, $bin, say,
# and (for node_up) sign, kubeconfig, free_port, api_get.

NODE_NAME="fleetcast-node"
NODE_BRIDGE="fcbr0"
NODE_NETWORK="fleetcast-node"
NODE_CGROUP="fleetcast-node"
NODE_POD_CIDR="10.244.0.0/24"
NODE_CLUSTER_CIDR="10.244.0.0/16"
NODE_DNS_IP="10.96.0.10"
NODE_CNI_BIN="/usr/lib/cni"
# shellcheck source=versions.sh
. "$(dirname "${BASH_SOURCE[0]}")/versions.sh"
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
PAUSE_IMAGE="localhost/fleetcast/pause:$PAUSE_VERSION"
COREDNS_IMAGE="localhost/fleetcast/coredns:${COREDNS_VERSION#v}"
NODE_COMPONENTS=(containerd kubelet kube-proxy)
NODE_OWNER="${FLEETCAST_NODE_OWNER:-/run/fleetcast-node.owner}"

node_dir() { echo "$state/node"; }
node_sock() { echo "$state/node/containerd.sock"; }
node_ctr() { ctr --address "$(node_sock)" --namespace k8s.io "$@"; }

# The address pods reach the host (and the API server) at: the source address
# of the default route. Empty when the host has none.
node_host_ip() {
    ip -4 route get 1.1.1.1 2>/dev/null | awk '{ for (i = 1; i < NF; i++) if ($i == "src") { print $(i + 1); exit } }'
}

node_is_up() {
    [ -f "$state/node/ready" ] || return 1
    local c
    for c in "${NODE_COMPONENTS[@]}"; do pid_alive "$c" || return 1; done
}

# The state dir of the node running on this host, if any (the marker names
# it and that dir still has a node).
node_owner() {
    local owner
    owner="$(cat "$NODE_OWNER" 2>/dev/null || true)"
    [ -n "$owner" ] && [ -d "$owner/node" ] && echo "$owner"
    return 0
}

# True when this node's state dir holds the host's node marker; a node dir
# from before the marker existed (no owner-marked) counts as holding it when
# no other claims it.
node_is_ours() {
    local owner
    owner="$(cat "$NODE_OWNER" 2>/dev/null || true)"
    [ "$owner" = "$state" ] || { [ -z "$owner" ] && [ -d "$state/node" ] && [ ! -f "$state/node/owner-marked" ]; }
}

node_host_has_kube_chains() {
    local tool
    for tool in iptables-save ip6tables-save; do
        command -v "$tool" >/dev/null || continue
        "$tool" 2>/dev/null | grep -q '^:KUBE-' && return 0
    done
    return 1
}

# Deletes the rules of a table whose iptables-save line contains needle
# (optionally only in one chain), by rule number, highest first, so nothing
# from the rules' text is ever run; prints each deleted rule's -j target.
node_delete_rules() { # tool table needle [chain]
    local tool="$1" table="$2" chain num target
    while read -r chain num target; do
        "$tool" -t "$table" -D "$chain" "$num" 2>/dev/null && echo "$target"
    done < <("$tool-save" -t "$table" 2>/dev/null |
        NEEDLE="$3" ONLY="${4:-}" awk '$1 == "-A" {
            n[$2]++
            if ((ENVIRON["ONLY"] == "" || $2 == ENVIRON["ONLY"]) && index($0 " ", ENVIRON["NEEDLE"])) {
                t = "-"
                for (i = 3; i < NF; i++) if ($i == "-j") t = $(i + 1)
                print $2, n[$2], t
            }
        }' | sort -k1,1 -k2,2rn)
}

node_exports() {
    echo "export FLEETCAST_NODE_IP=$(cat "$state/node/ip")"
    echo "export FLEETCAST_PAUSE_IMAGE=$PAUSE_IMAGE"
    echo "export FLEETCAST_CONTAINERD_ADDRESS=$(node_sock)"
    echo "export FLEETCAST_CLUSTER_DNS=$NODE_DNS_IP"
}

node_fail() { # message [component]
    say "FAILED: node: $1"
    if [ -n "${2:-}" ] && [ -f "$state/logs/$2.log" ]; then
        say "last lines of $state/logs/$2.log:"
        tail -n 40 "$state/logs/$2.log" >&2
    fi
    say "stopping the node (logs stay in $state/logs until the next up or down)"
    node_down >&2 || true
    exit 1
}

node_fail_component() { node_fail "$1 $2" "$1"; } # name message

# --- what the host needs -------------------------------------------------------

node_sysctl_set() { # key value: sets it, remembering the old value for down
    local key="$1" value="$2" file old
    file="/proc/sys/${key//.//}"
    [ -w "$file" ] || node_fail "cannot write $file: $key must be $value for pod networking"
    old="$(cat "$file")"
    [ "$old" = "$value" ] && return 0
    echo "$key $old" >>"$state/node/sysctl.saved"
    echo "$value" >"$file" || node_fail "setting $key=$value was refused"
    say "set $key=$value (was $old; down restores it)"
}

node_prepare_host() {
    [ "$(id -u)" -eq 0 ] || node_fail "the node needs root (the kubelet makes cgroups, containerd mounts, CNI makes interfaces and iptables rules)"
    local cmd
    for cmd in containerd containerd-shim-runc-v2 runc ctr iptables iptables-save conntrack ip; do
        command -v "$cmd" >/dev/null || node_fail "$cmd is not installed (tests/setup installs containerd, runc, iptables, conntrack, iproute2)"
    done
    for cmd in bridge host-local loopback portmap; do
        [ -x "$NODE_CNI_BIN/$cmd" ] || node_fail "the CNI plugin $NODE_CNI_BIN/$cmd is missing (tests/setup installs containernetworking-plugins)"
    done
    # overlay (containerd's snapshotter) and br_netfilter (bridged pod traffic
    # through kube-proxy's rules) are modules on most kernels, built in on some.
    if ! grep -qw overlay /proc/filesystems; then
        modprobe overlay 2>/dev/null || node_fail "the kernel has no overlay filesystem and 'modprobe overlay' failed: containerd's overlayfs snapshotter needs it"
    fi
    if [ ! -d /proc/sys/net/bridge ]; then
        modprobe br_netfilter 2>/dev/null || node_fail "no /proc/sys/net/bridge and 'modprobe br_netfilter' failed: Services cannot route between pods on the bridge without it"
    fi
    node_sysctl_set net.ipv4.ip_forward 1
    node_sysctl_set net.bridge.bridge-nf-call-iptables 1
    # iptables: Debian's default is the nf_tables backend; use it when the
    # kernel takes it, else the legacy one, else say why neither works.
    if iptables -t nat -S >/dev/null 2>&1; then
        say "iptables: $(iptables --version)"
    elif command -v iptables-legacy >/dev/null && iptables-legacy -t nat -S >/dev/null 2>&1; then
        mkdir -p "$state/node/path"
        for cmd in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
            ln -sfn "$(command -v "${cmd/tables/tables-legacy}")" "$state/node/path/$cmd"
        done
        export PATH="$state/node/path:$PATH"
        say "iptables: the nf_tables backend fails here; using iptables-legacy"
    else
        node_fail "neither iptables backend works here ('iptables -t nat -S': $(iptables -t nat -S 2>&1 | head -n 1)); kube-proxy and the CNI bridge need one"
    fi
}

# The cgroup hierarchies' roots: the one v2 tree on a pure v2 host, else
# every mounted v1 hierarchy plus the v2 one of a hybrid host.
node_cgroup_roots() {
    if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
        echo /sys/fs/cgroup
    else
        awk '$3 == "cgroup" || $3 == "cgroup2" { print $2 }' /proc/self/mounts | sort -u
    fi
}

# kubelet's cgroupfs driver needs its cgroup root to exist in every
# hierarchy; a v1 cpuset needs cpus/mems filled in.
node_make_cgroups() {
    local root
    while read -r root; do
        mkdir -p "$root/$NODE_CGROUP" || node_fail "cannot create the cgroup $root/$NODE_CGROUP"
        if [ -f "$root/cpuset.cpus" ] && [ -f "$root/$NODE_CGROUP/cpuset.cpus" ]; then
            if ! { cat "$root/cpuset.cpus" >"$root/$NODE_CGROUP/cpuset.cpus" &&
                cat "$root/cpuset.mems" >"$root/$NODE_CGROUP/cpuset.mems"; }; then
                node_fail "cannot fill in cpuset.cpus/mems of $root/$NODE_CGROUP"
            fi
        fi
    done < <(node_cgroup_roots)
}

# --- images --------------------------------------------------------------------

# Wraps one static binary into an image with tools/image/build (cached by its
# inputs) and imports it.
node_import() { # name:tag binary [tools/image/build options...]
    local name="$1" binary="$2"; shift 2
    local archive listed
    archive="$(cd "$here/../.." && tools/image/build "$@" -o "$cache/images/${name##*/}.tar" "$binary" "$name" 2>"$state/logs/image.log" | tail -n 1)" ||
        node_fail "building the image $name failed: $(tail -n 5 "$state/logs/image.log")"
    node_ctr images import "$archive" >/dev/null 2>"$state/logs/import.log" ||
        node_fail "ctr images import $archive failed: $(cat "$state/logs/import.log")"
    listed="$(node_ctr images ls -q)"
    grep -qx "$name" <<<"$listed" || node_fail "containerd does not list $name after importing $archive"
}

# --- node up -------------------------------------------------------------------

node_up() {
    local dir node_ip sock
    dir="$(node_dir)"
    sock="$(node_sock)"
    local owner
    owner="$(node_owner)"
    if [ -n "$owner" ] && [ "$owner" != "$state" ]; then
        node_fail "a Fleetcast node of $owner is running on this host (one node per host); stop it with FLEETCAST_CLUSTER_DIR=$owner tests/cluster/down first"
    fi
    [ -f "$state/advertise-address" ] ||
        node_fail "the control plane in $state was started by an older tests/cluster/up (it records no advertise address); stop it with tests/cluster/down first"
    node_ip="$(cat "$state/advertise-address")"
    case "$node_ip" in
    127.*) node_fail "the API server advertises no routable address (no default route on this host), so pods could not reach it" ;;
    esac
    mkdir -p "$dir/containerd/root" "$dir/containerd/state" "$dir/cni/net.d" "$dir/cni/ipam" "$dir/kubelet"
    echo "$node_ip" >"$dir/ip"
    echo "$bin" >"$dir/bin"
    node_prepare_host
    if [ "$(cat "$NODE_OWNER" 2>/dev/null || true)" != "$state" ] && node_host_has_kube_chains; then
        node_fail "this host has KUBE-* iptables chains this node did not make (another kubelet or kube-proxy runs, or ran, here); stop it, or remove them, first"
    fi
    echo "$state" >"$NODE_OWNER" || node_fail "cannot write the node marker $NODE_OWNER"
    touch "$dir/owner-marked"
    node_make_cgroups

    { [ -x "$bin/pause" ] && [ -x "$bin/coredns" ]; } || node_fail "$bin has no pause or coredns (tests/cluster/build makes them)"

    # Certificates: the kubelet as system:node:NAME (the Node authorizer's
    # subject), its serving certificate, kube-proxy as system:kube-proxy
    # (bound to system:node-proxier by the default policy).
    sign kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" clientAuth
    sign kubelet-server "/CN=$NODE_NAME" serverAuth "IP:$node_ip,IP:127.0.0.1,DNS:$NODE_NAME"
    sign kube-proxy "/CN=system:kube-proxy" clientAuth
    kubeconfig "$state/kubelet.kubeconfig" kubelet
    kubeconfig "$state/kube-proxy.kubeconfig" kube-proxy

    # containerd with its own root, state and socket, so it neither sees nor
    # touches another containerd on the host.
    cat >"$dir/containerd.toml" <<EOF
version = 2
root = "$dir/containerd/root"
state = "$dir/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.internal.v1.opt", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "$sock"
[ttrpc]
  address = "$sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  enable_selinux = false
  # Pods may not get an oom_score_adj below containerd's own: lowering it
  # needs CAP_SYS_RESOURCE, which root lacks on some hosts (containers, some VMs).
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$dir/containerd/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$NODE_CNI_BIN"
    conf_dir = "$dir/cni/net.d"
    max_conf_num = 1
EOF
    # The pods' network: one bridge, host-local addresses, masquerade out,
    # hairpin so a pod reaches itself through its Service.
    cat >"$dir/cni/net.d/10-$NODE_NETWORK.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "$NODE_NETWORK",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$NODE_BRIDGE",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$NODE_POD_CIDR"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$dir/cni/ipam"
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
    [ -d /run/containerd ] || touch "$dir/made-run-containerd"
    start_component containerd containerd --config "$dir/containerd.toml"
    wait_component node_fail_component containerd 60 node_ctr version

    say "importing the pause and CoreDNS images"
    node_import "$PAUSE_IMAGE" "$bin/pause" --user 65535:65535 --entrypoint /pause
    node_import "$COREDNS_IMAGE" "$bin/coredns" --user 0:0 --entrypoint /coredns --port 53/udp --port 53/tcp

    # Pods resolve outside names through the host's resolvers, except loopback
    # ones (a stub resolver on the host is unreachable from a pod).
    grep -E '^nameserver' /etc/resolv.conf 2>/dev/null | grep -vE '^nameserver\s+(127\.|::1)' >"$dir/resolv.conf" || true
    local forward=""
    if [ -s "$dir/resolv.conf" ]; then forward="forward . /etc/resolv.conf"; fi

    local kubelet_port healthz_port
    free_port kubelet_port
    free_port healthz_port
    echo "$healthz_port" >"$state/ports/kubelet-healthz"
    cat >"$dir/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# Hybrid cgroup v1/v2 hosts (v1 controllers beside an empty v2 tree) work too.
failCgroupV1: false
failSwapOn: false
cgroupDriver: cgroupfs
cgroupRoot: /$NODE_CGROUP
containerRuntimeEndpoint: unix://$sock
address: $node_ip
port: $kubelet_port
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $healthz_port
tlsCertFile: $state/pki/kubelet-server.crt
tlsPrivateKeyFile: $state/pki/kubelet-server.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $state/pki/ca.crt}
authorization:
  mode: Webhook
clusterDomain: cluster.local
clusterDNS: [$NODE_DNS_IP]
resolvConf: $dir/resolv.conf
podCIDR: $NODE_POD_CIDR
# A shared test machine: evict only when really out of room, never collect
# the locally built images (there is nowhere to pull them back from). The
# disk thresholds are absolute: a percentage of a large shared disk (2% of
# 250 GB is 5 GB) is crossed by a cold build of the project, and disk
# pressure taints the node (pods stay Pending) and makes the kubelet delete
# every unused image, ours included. A pressure that has passed lifts after
# 10 s, not the default 5 minutes.
evictionHard: {memory.available: 100Mi, nodefs.available: 256Mi, imagefs.available: 256Mi, nodefs.inodesFree: 1%}
evictionPressureTransitionPeriod: 10s
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
EOF
    start_component kubelet "$bin/kubelet" --config "$dir/kubelet.yaml" \
        --kubeconfig "$state/kubelet.kubeconfig" --root-dir "$dir/kubelet" \
        --hostname-override "$NODE_NAME" --node-ip "$node_ip" --v 1
    wait_component node_fail_component kubelet 120 curl -sf --max-time 2 "http://127.0.0.1:$healthz_port/healthz"
    wait_component node_fail_component kubelet 120 node_ready
    # A Node object left by an earlier run may still be cordoned.
    "$bin/kubectl" --kubeconfig "$state/admin.kubeconfig" uncordon "$NODE_NAME" >/dev/null

    local proxy_healthz proxy_metrics
    free_port proxy_healthz
    free_port proxy_metrics
    cat >"$dir/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: $state/kube-proxy.kubeconfig
mode: iptables
hostnameOverride: $NODE_NAME
clusterCIDR: $NODE_CLUSTER_CIDR
healthzBindAddress: 127.0.0.1:$proxy_healthz
metricsBindAddress: 127.0.0.1:$proxy_metrics
# Leave the host's conntrack table sizes and timeouts alone.
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
iptables:
  localhostNodePorts: false
EOF
    start_component kube-proxy "$bin/kube-proxy" --config "$dir/kube-proxy.yaml"
    wait_component node_fail_component kube-proxy 60 curl -sf --max-time 2 "http://127.0.0.1:$proxy_healthz/healthz"

    say "starting CoreDNS (Deployment kube-system/coredns, Service $NODE_DNS_IP)"
    sed -e "s|@IMAGE@|$COREDNS_IMAGE|g" -e "s|@DNS_IP@|$NODE_DNS_IP|g" -e "s|@FORWARD@|$forward|g" \
        "$here/manifests/coredns.yaml" >"$dir/coredns.yaml"
    "$bin/kubectl" --kubeconfig "$state/admin.kubeconfig" apply -f "$dir/coredns.yaml" >"$state/logs/coredns-apply.log" 2>&1 ||
        node_fail "kubectl apply of CoreDNS failed: $(tail -n 5 "$state/logs/coredns-apply.log")"
    if ! "$bin/kubectl" --kubeconfig "$state/admin.kubeconfig" -n kube-system rollout status deploy/coredns --timeout=180s >/dev/null 2>&1; then
        "$bin/kubectl" --kubeconfig "$state/admin.kubeconfig" -n kube-system describe pods -l k8s-app=kube-dns 2>&1 | tail -n 30 >&2
        node_fail "CoreDNS did not become ready in 180 s" kubelet
    fi
    touch "$dir/ready"
    say "node $NODE_NAME ready at $node_ip (pods $NODE_POD_CIDR, DNS $NODE_DNS_IP)"
}

node_ready() {
    [ "$("$bin/kubectl" --kubeconfig "$state/admin.kubeconfig" get node "$NODE_NAME" \
        -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}

# --- node down -----------------------------------------------------------------

node_tasks() { node_ctr tasks ls -q 2>/dev/null || true; }

# Runs the network's CNI plugins with DEL for one sandbox, as containerd would
# have; only for sandboxes the kubelet could not stop.
node_cni_del() { # container-id netns-path
    local id="$1" netns="$2" conf="$state/node/cni/net.d/10-$NODE_NETWORK.conflist" n i plugin
    [ -f "$conf" ] || return 0
    n="$(jq '.plugins | length' "$conf")"
    for ((i = n - 1; i >= 0; i--)); do
        plugin="$(jq -c --argjson i "$i" '.plugins[$i] + {name: .name, cniVersion: .cniVersion}' "$conf")"
        echo "$plugin" | CNI_COMMAND=DEL CNI_CONTAINERID="$id" CNI_NETNS="$netns" CNI_IFNAME=eth0 \
            CNI_PATH="$NODE_CNI_BIN" "$NODE_CNI_BIN/$(echo "$plugin" | jq -r .type)" >/dev/null 2>&1 || true
    done
}

# The kubelet's own chains (it makes them, nothing removes them): the jumps
# to them, then the chains, in every table and both families.
NODE_KUBELET_CHAINS=(KUBE-FIREWALL KUBE-KUBELET-CANARY KUBE-IPTABLES-HINT)
node_kubelet_chains_cleanup() {
    local tool table chain
    for tool in iptables ip6tables; do
        command -v "$tool" >/dev/null || continue
        for table in filter nat mangle; do
            for chain in "${NODE_KUBELET_CHAINS[@]}"; do
                node_delete_rules "$tool" "$table" "-j $chain " >/dev/null
                if "$tool" -t "$table" -n -L "$chain" >/dev/null 2>&1; then
                    "$tool" -t "$table" -F "$chain" 2>/dev/null
                    "$tool" -t "$table" -X "$chain" 2>/dev/null
                fi
            done
        done
    done
}

node_down() {
    local dir status=0 kubectl_admin=() own=true
    dir="$(node_dir)"
    [ -d "$dir" ] || return 0
    say "stopping the node"
    if ! node_is_ours; then
        own=false
        say "the host's node marker $NODE_OWNER names $(cat "$NODE_OWNER" 2>/dev/null || echo nothing), not $state: stopping only this node's processes, leaving the host-wide chains, bridge and cgroup alone"
    fi
    rm -f "$dir/ready"
    [ -d "$dir/path" ] && export PATH="$dir/path:$PATH"

    # 1. Let the kubelet stop the pods (containers, sandboxes, their network)
    # while it still runs: cordon so nothing new lands, delete what is there.
    if [ -f "$state/admin.kubeconfig" ] && pid_alive kubelet && pid_alive kube-apiserver; then
        kubectl_admin=("$bin/kubectl" --kubeconfig "$state/admin.kubeconfig" --request-timeout 10s)
        "${kubectl_admin[@]}" cordon "$NODE_NAME" >/dev/null 2>&1 || true
        "${kubectl_admin[@]}" delete pods --all-namespaces --field-selector "spec.nodeName=$NODE_NAME" \
            --grace-period=0 --force --wait=false >/dev/null 2>&1 || true
        for _ in $(seq 1 60); do [ -z "$(node_tasks)" ] && break; sleep 0.5; done
    fi
    stop_component kube-proxy || status=1
    # kube-proxy removes its KUBE-* chains and rules (every one on the host,
    # hence only when the host's node is ours).
    if $own && [ -x "$bin/kube-proxy" ] && [ -f "$dir/kube-proxy.yaml" ]; then
        "$bin/kube-proxy" --cleanup --config "$dir/kube-proxy.yaml" >"$state/logs/kube-proxy-cleanup.log" 2>&1 ||
            say "kube-proxy --cleanup failed (see $state/logs/kube-proxy-cleanup.log)"
    fi
    stop_component kubelet || status=1
    if $own; then node_kubelet_chains_cleanup; fi
    if [ "${#kubectl_admin[@]}" -gt 0 ]; then
        "${kubectl_admin[@]}" delete node "$NODE_NAME" --ignore-not-found >/dev/null 2>&1 || true
    fi

    # 2. Whatever the kubelet left: kill the tasks, undo their network, delete.
    if pid_alive containerd; then
        local id netns
        for id in $(node_tasks); do
            node_ctr tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
        done
        for _ in $(seq 1 20); do grep -q RUNNING <<<"$(node_ctr tasks ls 2>/dev/null)" || break; sleep 0.25; done
        for id in $(node_ctr containers ls -q 2>/dev/null); do
            netns="$(node_ctr containers info "$id" 2>/dev/null |
                jq -r '.Spec.linux.namespaces[]? | select(.type == "network") | .path // empty' 2>/dev/null || true)"
            if [ -n "$netns" ]; then
                node_cni_del "$id" "$netns"
                case "$netns" in /var/run/netns/cni-* | /run/netns/cni-*)
                    umount "$netns" 2>/dev/null || true
                    rm -f "$netns" ;;
                esac
            fi
            node_ctr tasks delete "$id" >/dev/null 2>&1 || true
            node_ctr containers delete "$id" >/dev/null 2>&1 || true
        done
    fi
    stop_component containerd || status=1
    # containerd 1.6's shims keep fifos and sockets under /run/containerd
    # whatever the config says; remove those dirs when we made them and they
    # are empty.
    if [ -f "$dir/made-run-containerd" ]; then
        rmdir /run/containerd/fifo /run/containerd/s /run/containerd 2>/dev/null || true
    fi

    # 3. Mounts under our dirs (overlay rootfs, shm, the kubelet's volumes),
    # deepest first.
    local mnt
    while read -r mnt; do
        umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || { say "cannot unmount $mnt"; status=1; }
    done < <(awk -v d="$dir/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r)

    # 4. Network: the bridge, and any masquerade rules CNI left for our network
    # (their comment names it).
    if $own && ip link show "$NODE_BRIDGE" >/dev/null 2>&1; then
        ip link delete "$NODE_BRIDGE" && say "deleted the bridge $NODE_BRIDGE"
    fi
    if $own && command -v iptables-save >/dev/null; then
        local chain
        while read -r chain; do
            case "$chain" in CNI-*) iptables -t nat -F "$chain" 2>/dev/null; iptables -t nat -X "$chain" 2>/dev/null ;; esac
        done < <(node_delete_rules iptables nat "name: \\\"$NODE_NETWORK\\\"" POSTROUTING)
    fi

    # 5. Cgroups (empty once the pods are gone), deepest first.
    local root
    while $own && read -r root; do
        [ -d "$root/$NODE_CGROUP" ] || continue
        find "$root/$NODE_CGROUP" -depth -type d -exec rmdir {} + 2>/dev/null || true
        [ -d "$root/$NODE_CGROUP" ] && { say "cgroup $root/$NODE_CGROUP is not empty; left in place"; status=1; }
    done < <(node_cgroup_roots)

    # 6. Sysctls back to what they were.
    if [ -f "$dir/sysctl.saved" ]; then
        local key old
        while read -r key old; do
            echo "$old" >"/proc/sys/${key//.//}" 2>/dev/null && say "restored $key=$old"
        done < <(tac "$dir/sysctl.saved")
        rm -f "$dir/sysctl.saved"
    fi
    if [ "$status" -eq 0 ]; then
        if $own; then rm -f "$NODE_OWNER"; fi
        rm -rf "$dir"
    else
        say "the node was not fully cleaned; $dir is kept (nothing under it was deleted)"
    fi
    return "$status"
}
