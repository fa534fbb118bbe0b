# Images for the lab without any registry pull: a folder becomes a one-layer OCI image pushed
# to the lab's registry over its HTTP API; sourced by scripts/k8s-lab.sh.
#
# The layer is reproducible (sorted names, zero times, root owner), so pushing the same folder
# twice gives the same digest and the registry keeps one copy.

# image_busybox_rootfs DIR: a root filesystem of Debian's static busybox, its applets linked.
image_busybox_rootfs() {
    local dir=$1
    mkdir -p "$dir/bin" "$dir/etc" "$dir/tmp" "$dir/www"
    chmod 1777 "$dir/tmp"
    cp /bin/busybox "$dir/bin/busybox"
    # Inside the new root, so the links say /bin/busybox.
    chroot "$dir" /bin/busybox --install -s /bin
    printf 'root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$dir/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$dir/etc/group"
}

# image_push DIR REPOSITORY:TAG [COMMAND...]: pushes DIR as an image; prints its manifest digest.
image_push() {
    local dir=$1 ref=$2 repo tag work arch layer diff_id layer_digest config manifest
    shift 2
    repo=${ref%:*}
    tag=${ref##*:}
    work=$(mktemp -d "$LAB/tmp.image.XXXXXX")
    arch=$(dpkg --print-architecture)
    tar -C "$dir" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf "$work/layer.tar" .
    diff_id=sha256:$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
    gzip -n -1 "$work/layer.tar"
    layer=$work/layer.tar.gz
    layer_digest=sha256:$(sha256sum "$layer" | cut -d' ' -f1)
    jq -cn --arg arch "$arch" --arg diff "$diff_id" --args \
        '{architecture: $arch, os: "linux",
          config: {Env: ["PATH=/bin"], WorkingDir: "/", Cmd: (if $ARGS.positional == [] then null else $ARGS.positional end)},
          rootfs: {type: "layers", diff_ids: [$diff]},
          history: [{created_by: "scripts/k8s-lab.sh push-image"}]}' "$@" >"$work/config.json"
    config=$work/config.json
    jq -cn --arg cd "sha256:$(sha256sum "$config" | cut -d' ' -f1)" --argjson cs "$(stat -c %s "$config")" \
        --arg ld "$layer_digest" --argjson ls "$(stat -c %s "$layer")" \
        '{schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
          config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $cd, size: $cs},
          layers: [{mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: $ld, size: $ls}]}' \
        >"$work/manifest.json"
    manifest=$work/manifest.json
    image_push_blob "$repo" "$layer" "$layer_digest"
    image_push_blob "$repo" "$config" "sha256:$(sha256sum "$config" | cut -d' ' -f1)"
    curl -fsS -X PUT -H "Content-Type: application/vnd.oci.image.manifest.v1+json" \
        --data-binary "@$manifest" "http://$REGISTRY/v2/$repo/manifests/$tag" >/dev/null
    echo "sha256:$(sha256sum "$manifest" | cut -d' ' -f1)"
    rm -rf "$work"
}

image_push_blob() {
    local repo=$1 file=$2 digest=$3 location sep
    curl -fsS -o /dev/null -I "http://$REGISTRY/v2/$repo/blobs/$digest" 2>/dev/null && return 0
    location=$(curl -fsS -X POST -D - -o /dev/null "http://$REGISTRY/v2/$repo/blobs/uploads/" |
        tr -d '\r' | awk 'tolower($1) == "location:" {print $2}')
    [ -n "$location" ] || fail "the registry gave no upload location for $repo" registry
    case $location in http*) ;; *) location=http://$REGISTRY$location ;; esac
    case $location in *\?*) sep='&' ;; *) sep='?' ;; esac
    curl -fsS -X PUT -H "Content-Type: application/octet-stream" --data-binary "@$file" \
        "$location${sep}digest=$digest" >/dev/null
}

# image_exists REPOSITORY:TAG
image_exists() {
    curl -fs -o /dev/null -I -H "Accept: application/vnd.oci.image.manifest.v1+json" \
        "http://$REGISTRY/v2/${1%:*}/manifests/${1##*:}"
}
