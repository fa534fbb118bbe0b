# The lab's machines and wires; sourced by scripts/k8s-lab.sh.
#
# A node is a network namespace (k8slab-nN) with a mount and UTS namespace of its own, kept
# by a holder process. Wires are veth pairs:
#   host k8slab-hN 10.251.N.1/30  <->  uplink 10.251.N.2/30 in node N  (the host reaches the lab)
#   node1 eth0 10.251.0.1/24      <->  eth0 10.251.0.2/24 in node2     (the node network)
# Routes do what a cloud's route table does for a bridge CNI: each node's pod subnet is
# reached through that node. Nodes route everything else to the host, which does not forward
# (ip_forward stays as it is), so nothing in the lab reaches beyond this machine.
#
# Inside a node, /var/lib, /var/log and /run are the node's own folders: the kubelet and
# containerd write their usual paths and two of them do not collide, nor touch the host's.
# The kubelet wants vm.overcommit_memory=1, kernel.panic=10 and kernel.panic_on_oops=1 and
# sets them machine-wide (these are not per namespace); each node sees files with those values
# in place of the real ones, and the kubelet runs with protectKernelDefaults, so it only reads.

net_up() {
    local n ns link
    for n in $NODES; do
        ns=$(node_netns "$n")
        link=$(host_link "$n")
        [ -e "/run/netns/$ns" ] || ip netns add "$ns"
        ip -n "$ns" link set lo up
        if ! ip link show "$link" >/dev/null 2>&1; then
            ip link add "$link" type veth peer name uplink netns "$ns"
            ip addr add "$(uplink_host_ip "$n")/30" dev "$link"
            ip -n "$ns" addr add "$(uplink_node_ip "$n")/30" dev uplink
        fi
        ip link set "$link" up
        ip -n "$ns" link set uplink up
        nsenter --net="/run/netns/$ns" sysctl -qw net.ipv4.ip_forward=1
    done
    # The node network: a veth pair straight between the two nodes.
    if ! ip -n "$(node_netns 1)" link show eth0 >/dev/null 2>&1; then
        ip link add "$PREFIX-x1" netns "$(node_netns 1)" type veth peer name "$PREFIX-x2" netns "$(node_netns 2)"
        for n in $NODES; do
            ip -n "$(node_netns "$n")" link set "$PREFIX-x$n" name eth0
            ip -n "$(node_netns "$n")" addr add "$(node_ip "$n")/24" dev eth0
        done
    fi
    for n in $NODES; do
        ns=$(node_netns "$n")
        ip -n "$ns" link set eth0 up
        ip -n "$ns" route replace default via "$(uplink_host_ip "$n")"
        local m
        for m in $NODES; do
            [ "$m" = "$n" ] || ip -n "$ns" route replace "$(pod_cidr "$m")" via "$(node_ip "$m")"
        done
        # The host: each node's address and pod subnet through its uplink; Services through the
        # control node, whose kube-proxy rules forward them wherever the endpoints are.
        ip route replace "$(node_ip "$n")/32" via "$(uplink_node_ip "$n")" dev "$(host_link "$n")"
        ip route replace "$(pod_cidr "$n")" via "$(uplink_node_ip "$n")" dev "$(host_link "$n")"
    done
    ip route replace "$SERVICE_CIDR" via "$(uplink_node_ip "$CONTROL_NODE")" dev "$(host_link "$CONTROL_NODE")"
}

# node_up N: node N's holder process, owning its mount and UTS namespaces.
node_up() {
    local n=$1 dir value
    dir=$(node_dir "$n")
    daemon_running "node$n" && return 0
    mkdir -p "$dir/var/lib" "$dir/var/log" "$dir/run" "$dir/sysctl/vm" "$dir/sysctl/kernel/keys"
    # Values the kubelet checks (pkg/kubelet/cm: setupKernelTunables), per node.
    for value in vm/overcommit_memory=1 vm/panic_on_oom=0 kernel/panic=10 kernel/panic_on_oops=1 \
        kernel/keys/root_maxkeys=1000000 kernel/keys/root_maxbytes=25000000; do
        echo "${value#*=}" >"$dir/sysctl/${value%%=*}"
    done
    local cg
    cg=$(node_cgroup "$n")/system/node
    cg_make "$cg"
    rm -f "$RUN/node$n.pid"
    # The copy of the host's mounts includes other network namespaces' bind mounts (sandboxes',
    # Docker's); they are dropped first, or this namespace would keep those alive after their
    # owners delete them.
    # shellcheck disable=SC2016 # expanded by the inner shell
    CG_PROCS=$(cg_procs_files "$cg") PID_FILE=$RUN/node$n.pid NODE_DIR=$dir NODE_NAME=$(node_name "$n") \
        setsid nsenter --net="/run/netns/$(node_netns "$n")" -- \
        unshare --mount --uts --propagation private -- sh -c '
            set -e
            for f in $CG_PROCS; do echo $$ >"$f"; done
            awk '\''$3 == "nsfs" {print $2}'\'' /proc/self/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
            hostname "$NODE_NAME"
            mount --bind "$NODE_DIR/var/lib" /var/lib
            mount --bind "$NODE_DIR/var/log" /var/log
            mount --bind "$NODE_DIR/run" /run
            for f in $(cd "$NODE_DIR/sysctl" && find . -type f); do
                mount --bind "$NODE_DIR/sysctl/$f" "/proc/sys/$f"
            done
            echo $$ >"$PID_FILE"
            exec sleep infinity' >>"$LOGS/node$n.log" 2>&1 </dev/null 3>&- 9<&- &
    local waited=0
    until [ -s "$RUN/node$n.pid" ]; do
        sleep 0.05
        waited=$((waited + 1))
        [ $waited -lt 200 ] || fail "node$n's namespaces were not made" "node$n"
    done
}
