# Taking the lab apart and saying what runs; sourced by scripts/k8s-lab.sh.
#
# `down` finds what to remove by the lab's machine-wide names (cgroups, network namespaces,
# host links), not only by its pid files, so it also cleans up after an `up` that stopped
# half-way or a lab folder that is already gone.

lab_pids() {
    local n
    for n in $NODES; do
        cg_pids "$(node_cgroup "$n")"
        if [ -e "/run/netns/$(node_netns "$n")" ]; then ip netns pids "$(node_netns "$n")" 2>/dev/null || true; fi
    done | sort -un
}

lab_down() {
    local pids round=0 killed="" n leftovers=""
    # Every process at once, with SIGKILL: the cluster's state goes with it, nothing needs a
    # graceful stop, and a kubelet stopped first could not restart what is killed after it.
    while pids=$(lab_pids) && [ -n "$pids" ]; do
        # shellcheck disable=SC2086 # one pid per word
        kill -KILL $pids 2>/dev/null || true
        killed=$(printf '%s\n%s\n' "$killed" "$pids" | awk 'NF' | sort -u)
        round=$((round + 1))
        [ $round -lt 100 ] || break
        sleep 0.1
    done
    [ -z "$(lab_pids)" ] || leftovers="$leftovers processes($(lab_pids | tr '\n' ' '))"
    # Mounts live in the nodes' own mount namespaces and went with their last process; any in
    # the host's namespace under the lab folder would be a bug, but are not left behind either.
    if [ -d "$LAB" ]; then
        awk -v lab="$LAB/" 'index($2, lab) == 1 {print $2}' /proc/self/mounts | sort -r |
            while read -r m; do umount -l "$m" || true; done
    fi
    for n in $NODES; do
        ip link del "$(host_link "$n")" 2>/dev/null || true
        ip netns del "$(node_netns "$n")" 2>/dev/null || true
    done
    for n in $NODES; do
        round=0
        until cg_remove "$(node_cgroup "$n")"; do
            round=$((round + 1))
            if [ $round -ge 50 ]; then
                leftovers="$leftovers cgroup($(node_cgroup "$n"))"
                break
            fi
            sleep 0.1
        done
    done
    if [ -f "$LAB/.k8s-lab" ]; then
        rm -rf --one-file-system "$LAB"
    elif [ -d "$LAB" ]; then
        leftovers="$leftovers folder($LAB has no .k8s-lab marker, not removed)"
    fi
    if [ -n "$leftovers" ]; then
        say "down: left behind:$leftovers"
        return 1
    fi
    say "down: $(echo "$killed" | awk 'NF' | wc -l) processes stopped; namespaces, links, cgroups and $LAB removed"
}

# The lab's components, in start order.
lab_components() {
    local n
    for n in $NODES; do echo "node$n"; done
    echo registry etcd kube-apiserver kube-controller-manager kube-scheduler
    for n in $NODES; do echo "node$n-containerd node$n-kubelet node$n-kube-proxy"; done
}

lab_status() {
    local c running=0 total=0 pids pod_pids n
    if [ ! -f "$LAB/.k8s-lab" ] && [ -z "$(lab_pids)" ]; then
        echo "k8s-lab: no lab (folder $LAB)"
        return 1
    fi
    echo "k8s-lab: lab folder $LAB"
    for c in $(lab_components); do
        total=$((total + 1))
        if daemon_running "$c"; then
            running=$((running + 1))
            printf '  %-26s running  pid %-8s %6s MB\n' "$c" "$(pid_of "$c")" \
                $(($(rss_kb "$(pid_of "$c")") / 1024))
        else
            printf '  %-26s stopped\n' "$c"
        fi
    done
    if [ -s "$ADMIN_KUBECONFIG" ] && daemon_running kube-apiserver; then
        kubectl_admin get nodes --no-headers 2>/dev/null |
            awk '{printf "  node %-21s %s\n", $1, $2}'
    fi
    pids=$(lab_pids)
    pod_pids=$(for n in $NODES; do cg_pids "$(node_cgroup "$n")/kubepods"; done)
    # shellcheck disable=SC2086 # one pid per word
    printf '  memory: %s MB resident in %s processes (%s MB of it in pods)\n' \
        $(($(rss_kb $pids) / 1024)) "$(echo "$pids" | awk 'NF' | wc -l)" $(($(rss_kb $pod_pids) / 1024))
    if [ -s "$ADMIN_KUBECONFIG" ]; then
        echo "  admin kubeconfig:    $ADMIN_KUBECONFIG (the lab's own setup only)"
        echo "  platform kubeconfig: $PLATFORM_KUBECONFIG (namespace $SANDBOX_NAMESPACE)"
    fi
    [ $running -eq $total ]
}
