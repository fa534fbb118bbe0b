# The lab's image registry (distribution v3) on the control node, plain HTTP on the node
# network, and the two images every lab has; sourced by scripts/k8s-lab.sh.
#
# Nodes pull from it by address (10.251.0.1:5000/...), as they would from a registry on the
# cluster's network; containerd is told in certs.d that this host speaks HTTP.

PAUSE_IMAGE=$REGISTRY/k8s-lab/pause:v$K8S_VERSION
BUSYBOX_IMAGE=$REGISTRY/k8s-lab/busybox:1

# What is pushed outlives the lab, in the build cache beside the binaries: a lab brought up again finds
# the images it had (a push of an unchanged tag is skipped), as a real cluster's registry keeps them.
# Past REGISTRY_CACHE_MB the store is emptied when a lab comes up (test images have tags of their own).
REGISTRY_STORE=${BROKER_ACADEMY_CACHE:-/root/.cache/broker-academy}/k8s-lab-registry
REGISTRY_CACHE_MB=${REGISTRY_CACHE_MB:-6144}

registry_up() {
    mkdir -p "$LAB/registry" "$REGISTRY_STORE"
    if [ "$(du -sm "$REGISTRY_STORE" | cut -f1)" -gt "$REGISTRY_CACHE_MB" ]; then
        say "the registry's store $REGISTRY_STORE is past ${REGISTRY_CACHE_MB} MB: emptied"
        rm -rf --one-file-system "${REGISTRY_STORE:?}"/*
    fi
    write_config "$LAB/registry/config.yml" <<EOF
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: $REGISTRY_STORE}
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
