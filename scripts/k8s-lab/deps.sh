# Debian packages a lab node needs; sourced by scripts/k8s-lab.sh.
#
# Installing containerd on a machine whose init starts services also starts the host's own
# containerd; the lab never uses it (each node runs its own on its own socket).

# file that must exist -> Debian package that provides it
declare -A LAB_PACKAGES=(
    [/usr/bin/containerd]=containerd
    [/usr/sbin/runc]=runc
    [/usr/lib/cni/bridge]=containernetworking-plugins
    [/usr/sbin/iptables]=iptables
    [/usr/sbin/conntrack]=conntrack
    [/bin/busybox]=busybox-static
    [/usr/bin/openssl]=openssl
    [/usr/bin/curl]=curl
    [/usr/bin/jq]=jq
    [/usr/bin/bc]=bc
    [/usr/bin/nsenter]=util-linux
    [/usr/sbin/ip]=iproute2
    [/usr/bin/gzip]=gzip
)

deps_missing() {
    local file
    for file in "${!LAB_PACKAGES[@]}"; do
        [ -e "$file" ] || echo "${LAB_PACKAGES[$file]}"
    done | sort -u
}

deps_install() {
    local missing
    missing=$(deps_missing | tr '\n' ' ')
    [ -n "$missing" ] || return 0
    echo "installing: $missing"
    # Another apt run (scripts/install.sh) may hold the lock; wait for it rather than fail.
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    # shellcheck disable=SC2086 # one word per package
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $missing
    missing=$(deps_missing | tr '\n' ' ')
    [ -z "$missing" ] || fail "still missing after apt-get install: $missing"
}
