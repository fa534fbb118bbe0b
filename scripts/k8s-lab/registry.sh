# The lab's image registry (distribution v3) on the control node, plain HTTP on the node
# network, and the two images every lab has; sourced by scripts/k8s-lab.sh.
#
# Nodes pull from it by address (10.251.0.1:5000/...), as they would from a registry on the
# cluster's network; containerd is told in certs.d that this host speaks HTTP.

PAUSE_IMAGE=$REGISTRY/k8s-lab/pause:v$K8S_VERSION
BUSYBOX_IMAGE=$REGISTRY/k8s-lab/busybox:1

registry_up() {
    mkdir -p "$LAB/registry/data"
    write_config "$LAB/registry/config.yml" <<EOF
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: $LAB/registry/data}
  delete: {enabled: true}
http:
  addr: $REGISTRY
  debug: {addr: ""}
EOF
    # The registry exports traces over OTLP unless told not to, and there is no collector.
    daemon_start "$CONTROL_NODE" registry env OTEL_TRACES_EXPORTER=none \
        "$BIN/registry" serve "$LAB/registry/config.yml"
    wait_until "registry answer" 30 registry curl -fsS -m 2 "http://$REGISTRY/v2/"
}

# The pod sandbox's pause (Kubernetes' own pause.c, built static by k8s-build.sh), and busybox.
registry_images() {
    local rootfs
    if ! image_exists "${PAUSE_IMAGE#*/}"; then
        rootfs=$(mktemp -d "$LAB/tmp.pause.XXXXXX")
        cp "$BIN/pause" "$rootfs/pause"
        image_push "$rootfs" "${PAUSE_IMAGE#*/}" /pause
        rm -rf "$rootfs"
    fi
    if ! image_exists "${BUSYBOX_IMAGE#*/}"; then
        rootfs=$(mktemp -d "$LAB/tmp.busybox.XXXXXX")
        image_busybox_rootfs "$rootfs"
        image_push "$rootfs" "${BUSYBOX_IMAGE#*/}" sh
        rm -rf "$rootfs"
    fi
}
