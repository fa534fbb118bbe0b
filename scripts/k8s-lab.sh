#!/usr/bin/env bash
# A real two-node Kubernetes lab on this machine, for the Kubernetes sandbox backend and its
# tests. See docs/k8s-lab.md.
#
#   scripts/k8s-lab.sh up        install what is missing, build (or reuse) the binaries, start
#                                the cluster, wait until both nodes are Ready; idempotent
#   scripts/k8s-lab.sh down      stop and remove everything the lab made
#   scripts/k8s-lab.sh status    what runs, and the memory it takes
#   scripts/k8s-lab.sh push-image DIR REPOSITORY:TAG [COMMAND...]
#                                push folder DIR as a one-layer image to the lab's registry
#                                (pods name it <registry>/REPOSITORY:TAG); prints its digest
#   scripts/k8s-lab.sh busybox-rootfs DIR
#                                fill DIR with a static busybox root filesystem
#   scripts/k8s-lab.sh env       the lab's addresses and files, as shell assignments
#
# K8S_LAB names the lab folder (default: var/k8s-lab in the repository). One lab per machine:
# its network namespaces, host links and cgroups have fixed names (k8slab-*). Needs root.
set -eEuo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
LAB=$(realpath -m "${K8S_LAB:-$ROOT/var/k8s-lab}")
HERE=$ROOT/scripts/k8s-lab
# shellcheck source=scripts/k8s-lab/lib.sh
source "$HERE/lib.sh"
# shellcheck source=scripts/k8s-lab/deps.sh
source "$HERE/deps.sh"
# shellcheck source=scripts/k8s-lab/pki.sh
source "$HERE/pki.sh"
# shellcheck source=scripts/k8s-lab/net.sh
source "$HERE/net.sh"
# shellcheck source=scripts/k8s-lab/image.sh
source "$HERE/image.sh"
# shellcheck source=scripts/k8s-lab/registry.sh
source "$HERE/registry.sh"
# shellcheck source=scripts/k8s-lab/control-plane.sh
source "$HERE/control-plane.sh"
# shellcheck source=scripts/k8s-lab/node.sh
source "$HERE/node.sh"
# shellcheck source=scripts/k8s-lab/platform.sh
source "$HERE/platform.sh"
# shellcheck source=scripts/k8s-lab/down.sh
source "$HERE/down.sh"
trap 'on_error $? "$BASH_COMMAND" $LINENO' ERR
# kubectl keeps a discovery cache, in ~/.kube unless told otherwise; the lab's goes with the lab.
export KUBECACHEDIR=$LAB/kubectl-cache

[ "$(id -u)" -eq 0 ] || {
    say "needs root (network namespaces, mounts, cgroups)"
    exit 1
}
# One lab per machine, and one up or down at a time on it (a lock on this script: nothing to
# clean up). Daemons are started without this descriptor, so they do not hold the lock.
lock() {
    exec 9<"$0"
    flock 9
}

build_binaries() {
    [ -x "${BIN:-/nonexistent}/pause" ] || say "building the pinned binaries (about 10 minutes the first time)"
    BIN=$("$ROOT/scripts/k8s-build.sh" | tail -n 1)
}

lab_up() {
    mkdir -p "$LAB" "$RUN" "$LOGS"
    touch "$LAB/.k8s-lab"
    : >"$LOGS/up.log"
    local started n
    started=$(date +%s%N)
    stage packages deps_install
    stage binaries build_binaries
    stage certificates pki_make
    stage network net_up
    for n in $NODES; do stage "node$n namespaces" node_up "$n"; done
    stage etcd etcd_up
    apiserver_start
    # While the API server starts: the registry, its images and each node's containerd.
    stage registry registry_up
    stage images registry_images
    for n in $NODES; do stage "node$n containerd" containerd_up "$n"; done
    stage kube-apiserver apiserver_ready
    stage rbac rbac_bootstrap
    stage controller-manager controller_manager_up
    stage scheduler scheduler_up
    for n in $NODES; do
        stage "node$n kubelet" kubelet_up "$n"
        stage "node$n kube-proxy" kube_proxy_up "$n"
    done
    stage "nodes Ready" nodes_ready
    stage "platform access" platform_access
    say "up in $(printf '%.1f' "$((($(date +%s%N) - started) / 100000000))e-1") s"
    say "admin kubeconfig (the lab's own setup only): $ADMIN_KUBECONFIG"
    say "platform kubeconfig (namespace $SANDBOX_NAMESPACE): $PLATFORM_KUBECONFIG"
    say "registry: $REGISTRY (pods pull $REGISTRY/<repository>:<tag>)"
}

lab_env() {
    cat <<EOF
K8S_LAB=$LAB
K8S_LAB_BIN=${BIN:-}
K8S_LAB_KUBECTL=${BIN:+$BIN/kubectl}
K8S_LAB_KUBECACHEDIR=$KUBECACHEDIR
K8S_LAB_ADMIN_KUBECONFIG=$ADMIN_KUBECONFIG
K8S_LAB_PLATFORM_KUBECONFIG=$PLATFORM_KUBECONFIG
K8S_LAB_SANDBOX_NAMESPACE=$SANDBOX_NAMESPACE
K8S_LAB_PLATFORM_NAMESPACE=$PLATFORM_NAMESPACE
K8S_LAB_PLATFORM_ACCOUNT=$PLATFORM_ACCOUNT
K8S_LAB_API_SERVER=$API_SERVER
K8S_LAB_REGISTRY=$REGISTRY
K8S_LAB_CA=$PKI/ca.crt
K8S_LAB_NODES="$(for n in $NODES; do printf '%s=%s ' "$(node_name "$n")" "$(node_ip "$n")"; done | sed 's/ $//')"
K8S_LAB_NETNS="$(for n in $NODES; do printf '%s ' "$(node_netns "$n")"; done | sed 's/ $//')"
K8S_LAB_HOST_LINKS="$(for n in $NODES; do printf '%s ' "$(host_link "$n")"; done | sed 's/ $//')"
K8S_LAB_CGROUPS="$(for n in $NODES; do printf '%s ' "$(node_cgroup "$n")"; done | sed 's/ $//')"
EOF
}

# The cached binaries, when a build has made them (status and push-image need no build).
BIN=$(ls -d "${BROKER_ACADEMY_CACHE:-/root/.cache/broker-academy}/k8s-v$K8S_VERSION/bin" 2>/dev/null || true)

case "${1:-}" in
up)
    lock
    lab_up
    ;;
down)
    lock
    lab_down
    ;;
status) lab_status || exit $? ;;
push-image)
    [ $# -ge 3 ] || fail "usage: push-image DIR REPOSITORY:TAG [COMMAND...]"
    mkdir -p "$LAB"
    image_push "$2" "$3" "${@:4}"
    ;;
busybox-rootfs)
    [ $# -eq 2 ] || fail "usage: busybox-rootfs DIR"
    image_busybox_rootfs "$2"
    ;;
env) lab_env ;;
*)
    sed -n '2,/^set -eEuo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
