# etcd, the API server, the controller manager and the scheduler, on the control node;
# sourced by scripts/k8s-lab.sh. Flags follow what kubeadm gives a control-plane node.

etcd_up() {
    local cp=$CONTROL_NODE
    daemon_start "$cp" etcd "$BIN/etcd" \
        --name "$(node_name "$cp")" --data-dir /var/lib/etcd \
        --listen-client-urls https://127.0.0.1:2379 --advertise-client-urls https://127.0.0.1:2379 \
        --listen-peer-urls https://127.0.0.1:2380 --initial-advertise-peer-urls https://127.0.0.1:2380 \
        --initial-cluster "$(node_name "$cp")=https://127.0.0.1:2380" \
        --listen-metrics-urls http://127.0.0.1:2381 \
        --cert-file "$PKI/etcd-server.crt" --key-file "$PKI/etcd-server.key" \
        --client-cert-auth --trusted-ca-file "$PKI/etcd-ca.crt" \
        --peer-cert-file "$PKI/etcd-peer.crt" --peer-key-file "$PKI/etcd-peer.key" \
        --peer-client-cert-auth --peer-trusted-ca-file "$PKI/etcd-ca.crt" \
        --snapshot-count 10000 --log-level warn
    wait_until "etcd health" 60 etcd node_exec "$cp" curl -fsS -m 2 http://127.0.0.1:2381/health
}

# The API server takes the longest to start; up does other work meanwhile.
apiserver_start() {
    daemon_start "$CONTROL_NODE" kube-apiserver "$BIN/kube-apiserver" \
        --advertise-address="$(node_ip "$CONTROL_NODE")" --bind-address=0.0.0.0 --secure-port="$API_PORT" \
        --etcd-servers=https://127.0.0.1:2379 --etcd-cafile="$PKI/etcd-ca.crt" \
        --etcd-certfile="$PKI/apiserver-etcd-client.crt" --etcd-keyfile="$PKI/apiserver-etcd-client.key" \
        --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
        --client-ca-file="$PKI/ca.crt" \
        --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
        --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" \
        --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
        --kubelet-certificate-authority="$PKI/ca.crt" \
        --kubelet-preferred-address-types=InternalIP \
        --service-account-issuer=https://kubernetes.default.svc.cluster.local \
        --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
        --service-cluster-ip-range="$SERVICE_CIDR" \
        --allow-privileged=false --profiling=false
}

apiserver_ready() {
    # /readyz is open to anyone (system:public-info-viewer); the CA proves it is the lab's.
    wait_until "API server ready" 120 kube-apiserver \
        curl -fsS -m 3 --cacert "$PKI/ca.crt" "$API_SERVER/readyz"
}

# RBAC the components and the admin need beyond Kubernetes' bootstrap policy. The only use of
# the system:masters certificate.
rbac_bootstrap() {
    "$BIN/kubectl" --kubeconfig "$PKI/super-admin.kubeconfig" apply -f - <<'EOF'
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "k8s-lab:cluster-admins"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: Group, name: "k8s-lab:cluster-admins"}]
---
# kubectl logs/exec/port-forward: the API server calls kubelets with this identity, and the
# kubelets ask the API server (webhook) whether it may.
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "k8s-lab:apiserver-kubelet-client"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:kubelet-api-admin"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: kube-apiserver-kubelet-client}]
EOF
}

controller_manager_up() {
    local kc=$PKI/controller-manager.kubeconfig
    daemon_start "$CONTROL_NODE" kube-controller-manager "$BIN/kube-controller-manager" \
        --kubeconfig="$kc" --authentication-kubeconfig="$kc" --authorization-kubeconfig="$kc" \
        --bind-address=127.0.0.1 --leader-elect=false --cluster-name=k8s-lab \
        --use-service-account-credentials=true \
        --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
        --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
        --service-cluster-ip-range="$SERVICE_CIDR" --cluster-cidr="$CLUSTER_CIDR" \
        --allocate-node-cidrs=false --configure-cloud-routes=false --profiling=false
    wait_until "controller manager healthy" 60 kube-controller-manager \
        node_exec "$CONTROL_NODE" curl -fsSk -m 2 https://127.0.0.1:10257/healthz
}

scheduler_up() {
    local kc=$PKI/scheduler.kubeconfig
    daemon_start "$CONTROL_NODE" kube-scheduler "$BIN/kube-scheduler" \
        --kubeconfig="$kc" --authentication-kubeconfig="$kc" --authorization-kubeconfig="$kc" \
        --bind-address=127.0.0.1 --leader-elect=false --profiling=false
    wait_until "scheduler healthy" 60 kube-scheduler \
        node_exec "$CONTROL_NODE" curl -fsSk -m 2 https://127.0.0.1:10259/healthz
}
