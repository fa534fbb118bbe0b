# What runs on every node: containerd (Debian's, with runc and the CNI plugins), the kubelet
# and kube-proxy; sourced by scripts/k8s-lab.sh.

containerd_up() {
    local n=$1 dir
    dir=$(node_dir "$n")
    mkdir -p "$dir/etc/cni/net.d" "$dir/etc/containerd/certs.d/$REGISTRY"
    write_config "$dir/etc/containerd/certs.d/$REGISTRY/hosts.toml" <<EOF
server = "http://$REGISTRY"
[host."http://$REGISTRY"]
  capabilities = ["pull", "resolve"]
EOF
    # The usual paths (/var/lib/containerd, /run/containerd) are the node's own folders.
    write_config "$dir/etc/containerd/config.toml" <<EOF
version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "/run/containerd/containerd.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "/var/lib/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # Containers may not lower their oom_score_adj below containerd's: needed where processes
  # lack CAP_SYS_RESOURCE (runc fails with "can't get final child's PID from pipe"), harmless elsewhere.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "/usr/sbin/runc"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$dir/etc/containerd/certs.d"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$dir/etc/cni/net.d"
EOF
    # A bridge per node for its pods; other nodes' pods are reached by the routes of net.sh.
    # No masquerading: a pod sees the other pod's own address, as Kubernetes' network model asks.
    write_config "$dir/etc/cni/net.d/10-k8s-lab.conflist" <<EOF
{"cniVersion": "1.0.0", "name": "k8s-lab", "plugins": [
  {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$(pod_cidr "$n")"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
EOF
    daemon_start "$n" "node$n-containerd" containerd --config "$dir/etc/containerd/config.toml"
    wait_until "containerd on node$n" 60 "node$n-containerd" test -S "$dir/run/containerd/containerd.sock"
}

kubelet_up() {
    local n=$1 dir
    dir=$(node_dir "$n")
    write_config "$dir/etc/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $(node_ip "$n")
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
# Only callers with a certificate of the cluster CA or a token the API server vouches for,
# and only for what RBAC lets them do on this node (no AlwaysAllow).
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true, cacheTTL: 30s}
  x509: {clientCAFile: $PKI/ca.crt}
authorization:
  mode: Webhook
  webhook: {cacheAuthorizedTTL: 30s, cacheUnauthorizedTTL: 10s}
tlsCertFile: $PKI/node$n-kubelet-server.crt
tlsPrivateKeyFile: $PKI/node$n-kubelet-server.key
rotateCertificates: false
serverTLSBootstrap: false
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
cgroupDriver: cgroupfs
cgroupRoot: /$(node_cgroup "$n")
# Kubelet 1.35+ refuses cgroup v1 unless told; this kind of machine has only v1.
failCgroupV1: false
failSwapOn: false
protectKernelDefaults: true
clusterDomain: cluster.local
resolvConf: ""
volumePluginDir: /var/lib/kubelet/volumeplugins
# Disk and memory are the machine's, shared with everything else on it.
evictionHard: {memory.available: "100Mi", nodefs.available: "2%", imagefs.available: "2%", nodefs.inodesFree: "2%"}
serializeImagePulls: false
EOF
    daemon_start "$n" "node$n-kubelet" "$BIN/kubelet" --config="$dir/etc/kubelet.yaml" \
        --kubeconfig="$PKI/node$n-kubelet.kubeconfig" \
        --hostname-override="$(node_name "$n")" --node-ip="$(node_ip "$n")"
    wait_until "kubelet healthy on node$n" 60 "node$n-kubelet" \
        node_exec "$n" curl -fsS -m 2 http://127.0.0.1:10248/healthz
}

kube_proxy_up() {
    local n=$1 dir
    dir=$(node_dir "$n")
    # conntrack limits are machine-wide settings; zero leaves them as they are.
    write_config "$dir/etc/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $PKI/kube-proxy.kubeconfig}
mode: iptables
hostnameOverride: $(node_name "$n")
clusterCIDR: $CLUSTER_CIDR
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
nodePortAddresses: [primary]
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
    daemon_start "$n" "node$n-kube-proxy" "$BIN/kube-proxy" --config="$dir/etc/kube-proxy.yaml"
    wait_until "kube-proxy healthy on node$n" 60 "node$n-kube-proxy" \
        node_exec "$n" curl -fsS -m 2 http://127.0.0.1:10256/healthz
}

nodes_ready() {
    local deadline n
    deadline=$(($(date +%s) + 180))
    until kubectl_admin wait --for=condition=Ready --timeout=5s \
        $(for n in $NODES; do echo "node/$(node_name "$n")"; done) >/dev/null 2>&1; do
        if [ "$(date +%s)" -ge $deadline ]; then
            kubectl_admin get nodes -o wide >&3 2>&1 || true
            for n in $NODES; do log_tail "$LOGS/node$n-kubelet.log"; done
            fail "the nodes did not become Ready in 180 s"
        fi
        sleep 0.5
    done
}
