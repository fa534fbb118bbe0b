# The lab's layout, addresses and the helpers every stage uses; sourced by scripts/k8s-lab.sh.
#
# One lab per machine: the names below (network namespaces, host links, cgroups) are
# machine-wide. They all start with "k8slab", which never has the shape of a sandbox unit's
# "<instance>-<number>", so the sandbox backends never take them for their own.

K8S_VERSION=1.37.2
PREFIX=k8slab
NODES="1 2"
CONTROL_NODE=1

# Addresses. Each node has a /30 link to the host (its "uplink") and an address on the
# node-to-node link, which is its InternalIP; pods of node N live in 10.244.(N-1).0/24.
CLUSTER_CIDR=10.244.0.0/16
SERVICE_CIDR=10.96.0.0/16
KUBERNETES_SERVICE_IP=10.96.0.1
API_PORT=6443
REGISTRY_PORT=5000

node_name() { echo "node$1"; }
node_ip() { echo "10.251.0.$1"; }
node_netns() { echo "$PREFIX-n$1"; }
host_link() { echo "$PREFIX-h$1"; }
uplink_host_ip() { echo "10.251.$1.1"; }
uplink_node_ip() { echo "10.251.$1.2"; }
pod_cidr() { echo "10.244.$(($1 - 1)).0/24"; }
node_cgroup() { echo "$PREFIX-n$1"; }
node_dir() { echo "$LAB/node$1"; }

API_SERVER=https://$(node_ip "$CONTROL_NODE"):$API_PORT
REGISTRY=$(node_ip "$CONTROL_NODE"):$REGISTRY_PORT

PKI=$LAB/pki
RUN=$LAB/run
LOGS=$LAB/log
ADMIN_KUBECONFIG=$LAB/admin.kubeconfig
PLATFORM_KUBECONFIG=$LAB/platform.kubeconfig
PLATFORM_NAMESPACE=broker-academy
SANDBOX_NAMESPACE=broker-academy-sandboxes
PLATFORM_ACCOUNT=broker-academy-platform

# ---- messages: one line per stage on success, the failing component's log on failure ----

# The caller's stderr, kept on fd 3 while a stage's own output goes to the lab's log.
exec 3>&2

say() { echo "k8s-lab: $*" >&3; }

log_tail() {
    local file=$1
    [ -s "$file" ] || return 0
    # The error may be above the tail (the kubelet prints its whole configuration after it).
    echo "---- last errors in $file" >&3
    grep -E '^[EF][0-9]{4} |level=(error|fatal)|"level":"(error|fatal)"|[Ee]rror|FAILED' "$file" | tail -n 10 >&3 || true
    echo "---- last lines of $file" >&3
    tail -n "${K8S_LAB_LOG_LINES:-40}" "$file" >&3
    echo "----" >&3
}

# fail MESSAGE [COMPONENT]: says what failed, shows the component's log tail and stops.
fail() {
    say "FAILED: $1"
    [ -n "${2:-}" ] && log_tail "$LOGS/$2.log"
    [ -n "${STAGE_LOG:-}" ] && log_tail "$STAGE_LOG"
    say "state is kept for inspection; 'scripts/k8s-lab.sh down' removes it"
    exit 1
}

# stage NAME FUNCTION [ARGS]: runs one step with its output in the lab's log, says how long it
# took. A command failing inside it stops everything through the ERR trap (set -eE), which
# shows the log's tail.
stage() {
    local name=$1 started
    shift
    started=$(date +%s%N)
    STAGE=$name
    STAGE_LOG=$LOGS/up.log
    echo "== $name" >>"$STAGE_LOG"
    "$@" >>"$STAGE_LOG" 2>&1
    say "$(printf '%-18s %6.1f s' "$name" "$((($(date +%s%N) - started) / 100000000))e-1")"
    STAGE=
}

on_error() {
    fail "${STAGE:-k8s-lab}: '$2' exited with $1 (line $3)"
}

# wait_until DESCRIPTION SECONDS COMPONENT COMMAND...: polls COMMAND; fails early when the
# component's process has died, and shows its log either way.
wait_until() {
    local what=$1 seconds=$2 component=$3 deadline
    shift 3
    deadline=$(($(date +%s) + seconds))
    until "$@" >/dev/null 2>&1; do
        if [ -n "$component" ] && ! daemon_running "$component"; then
            fail "$component exited while waiting for $what" "$component"
        fi
        [ "$(date +%s)" -lt "$deadline" ] || fail "no $what after $seconds s" "$component"
        sleep 0.3
    done
}

# ---- cgroups: every process of node N lives under /k8slab-nN in each hierarchy ----
# Its daemons under system/<name>, its pods under kubepods (the kubelet's cgroupRoot), so
# `down` finds every process of the lab by its cgroup, with or without pid files.

cg_hierarchies() {
    if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
        echo /sys/fs/cgroup
        return
    fi
    local d
    for d in /sys/fs/cgroup/*/; do
        if [ -f "${d}cgroup.procs" ]; then echo "${d%/}"; fi
    done
}

# cg_make PATH: creates PATH in every hierarchy; cpuset's cpus and mems are copied down,
# since a v1 cpuset cgroup with none refuses processes.
cg_make() {
    local h part dir
    for h in $(cg_hierarchies); do
        dir=$h
        for part in ${1//\// }; do
            dir=$dir/$part
            mkdir -p "$dir"
            if [ -f "$dir/cpuset.cpus" ] && [ -z "$(cat "$dir/cpuset.cpus")" ]; then
                cat "$(dirname "$dir")/cpuset.cpus" >"$dir/cpuset.cpus"
                cat "$(dirname "$dir")/cpuset.mems" >"$dir/cpuset.mems"
            fi
        done
    done
}

# cg_procs_files PATH: the cgroup.procs files a process writes its pid to, to join PATH.
cg_procs_files() {
    local h
    for h in $(cg_hierarchies); do echo "$h/$1/cgroup.procs"; done
}

# cg_pids PATH: every process in PATH and below, in any hierarchy.
cg_pids() {
    local h
    for h in $(cg_hierarchies); do
        if [ -d "$h/$1" ]; then find "$h/$1" -name cgroup.procs -exec cat {} + 2>/dev/null || true; fi
    done | sort -un
}

cg_remove() {
    local h
    for h in $(cg_hierarchies); do
        if [ -d "$h/$1" ]; then find "$h/$1" -depth -type d -exec rmdir {} + 2>/dev/null || true; fi
    done
    for h in $(cg_hierarchies); do
        [ -d "$h/$1" ] && return 1
    done
    return 0
}

# ---- daemons ----
# A node is a holder process (sleep) that owns the node's mount and UTS namespaces inside its
# network namespace; every daemon of the node is started by entering the holder's namespaces.

pid_of() { cat "$RUN/$1.pid" 2>/dev/null; }

# write_config FILE: stdin into FILE, only when it differs. A running daemon's configuration is
# left alone when nothing changed (kube-proxy exits when its file is written, even unchanged).
write_config() {
    mkdir -p "$(dirname "$1")"
    cat >"$1.new"
    if cmp -s "$1.new" "$1"; then
        rm -f "$1.new"
    else
        mv "$1.new" "$1"
    fi
}

# daemon_running NAME: its recorded pid is alive and still one of the lab's (pids get reused).
daemon_running() {
    local pid
    pid=$(pid_of "$1") || return 1
    [ -n "$pid" ] && grep -q ":/$PREFIX-n" "/proc/$pid/cgroup" 2>/dev/null
}

# daemon_start NODE NAME COMMAND...: COMMAND inside node NODE, in cgroup system/NAME, niced,
# in a session of its own (a Ctrl+C at the caller's terminal does not reach it), logging to
# log/NAME.log. The pid file is written by the process itself, after it joined its cgroup.
daemon_start() {
    local node=$1 name=$2 holder cg
    shift 2
    daemon_running "$name" && return 0
    holder=$(pid_of "node$node") || fail "node$node has no namespace holder"
    cg=$(node_cgroup "$node")/system/$name
    cg_make "$cg"
    rm -f "$RUN/$name.pid"
    # shellcheck disable=SC2016 # expanded by the inner shell
    CG_PROCS=$(cg_procs_files "$cg") PID_FILE=$RUN/$name.pid \
        setsid nice -n "${K8S_LAB_NICE:-10}" \
        nsenter -t "$holder" --net --mount --uts -- \
        sh -c 'set -e; for f in $CG_PROCS; do echo $$ >"$f"; done; echo $$ >"$PID_FILE"; exec "$@"' "$name" "$@" \
        >>"$LOGS/$name.log" 2>&1 </dev/null 3>&- 9<&- &
    local waited=0
    until [ -s "$RUN/$name.pid" ]; do
        sleep 0.05
        waited=$((waited + 1))
        [ $waited -lt 200 ] || fail "$name did not start" "$name"
    done
}

# node_exec NODE COMMAND...: a short command inside node NODE (its network and mounts).
node_exec() {
    local node=$1
    shift
    nsenter -t "$(pid_of "node$node")" --net --mount --uts -- "$@"
}

kubectl_admin() { "$BIN/kubectl" --kubeconfig "$ADMIN_KUBECONFIG" "$@"; }

# rss_kb PID...: resident memory of these processes, in kB.
rss_kb() {
    local pid total=0 kb
    for pid in "$@"; do
        kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null) || continue
        total=$((total + ${kb:-0}))
    done
    echo "$total"
}
