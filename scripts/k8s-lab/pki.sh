# The lab's certificates and the components' kubeconfigs; sourced by scripts/k8s-lab.sh.
#
# As a kubeadm cluster has them: a cluster CA and a separate etcd CA; a serving certificate
# for the API server, etcd and each kubelet; a client certificate per component, named so
# that RBAC's bootstrap roles and the Node authorizer know it (system:kube-scheduler,
# system:node:node1 in group system:nodes, ...). Only "super-admin" is in system:masters; it
# is used once, to bind the admin group to cluster-admin. Existing files are kept, so a
# second `up` changes nothing. ECDSA P-256 keys: fast to make, accepted everywhere here.

PKI_DAYS=365

pki_key() {
    [ -s "$1" ] || openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
}

pki_ca() {
    local name=$1 cn=$2
    [ -s "$PKI/$name.crt" ] && return 0
    pki_key "$PKI/$name.key"
    openssl req -x509 -new -key "$PKI/$name.key" -subj "/CN=$cn" -days $((PKI_DAYS * 2)) \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
        -out "$PKI/$name.crt"
}

# pki_cert CA NAME SUBJECT USAGES [SANS]: a certificate signed by CA.
# USAGES: serverAuth, clientAuth or both; SANS: openssl's "DNS:x,IP:y" form.
pki_cert() {
    local ca=$1 name=$2 subject=$3 usages=$4 sans=${5:-}
    [ -s "$PKI/$name.crt" ] && return 0
    pki_key "$PKI/$name.key"
    {
        echo "basicConstraints=critical,CA:FALSE"
        echo "keyUsage=critical,digitalSignature,keyEncipherment"
        echo "extendedKeyUsage=$usages"
        [ -n "$sans" ] && echo "subjectAltName=$sans"
    } >"$PKI/$name.ext"
    openssl req -new -key "$PKI/$name.key" -subj "$subject" -out "$PKI/$name.csr"
    openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/$ca.crt" -CAkey "$PKI/$ca.key" \
        -CAcreateserial -CAserial "$PKI/$ca.srl" -days $PKI_DAYS -extfile "$PKI/$name.ext" \
        -out "$PKI/$name.crt" 2>/dev/null
    rm -f "$PKI/$name.csr" "$PKI/$name.ext"
}

# pki_kubeconfig FILE USER CERT: a self-contained kubeconfig (certificates embedded).
pki_kubeconfig() {
    local file=$1 user=$2 cert=$3
    [ -s "$file" ] && return 0
    cat >"$file.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: k8s-lab
  cluster:
    server: $API_SERVER
    certificate-authority-data: $(base64 -w0 "$PKI/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 "$PKI/$cert.crt")
    client-key-data: $(base64 -w0 "$PKI/$cert.key")
contexts:
- name: $user@k8s-lab
  context: {cluster: k8s-lab, user: $user}
current-context: $user@k8s-lab
EOF
    chmod 600 "$file.tmp"
    mv "$file.tmp" "$file"
}

pki_make() {
    mkdir -p "$PKI"
    chmod 700 "$PKI"
    local cp_ip n
    cp_ip=$(node_ip "$CONTROL_NODE")
    pki_ca ca k8s-lab-ca
    pki_ca etcd-ca k8s-lab-etcd-ca

    pki_cert etcd-ca etcd-server "/CN=$(node_name "$CONTROL_NODE")" serverAuth,clientAuth \
        "DNS:localhost,DNS:$(node_name "$CONTROL_NODE"),IP:127.0.0.1,IP:$cp_ip"
    pki_cert etcd-ca etcd-peer "/CN=$(node_name "$CONTROL_NODE")" serverAuth,clientAuth \
        "DNS:localhost,DNS:$(node_name "$CONTROL_NODE"),IP:127.0.0.1,IP:$cp_ip"
    pki_cert etcd-ca apiserver-etcd-client "/CN=kube-apiserver-etcd-client" clientAuth

    pki_cert ca apiserver "/CN=kube-apiserver" serverAuth \
        "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,DNS:$(node_name "$CONTROL_NODE"),IP:$KUBERNETES_SERVICE_IP,IP:$cp_ip,IP:$(uplink_node_ip "$CONTROL_NODE"),IP:127.0.0.1"
    # The API server's identity toward kubelets; RBAC grants it system:kubelet-api-admin.
    pki_cert ca apiserver-kubelet-client "/CN=kube-apiserver-kubelet-client" clientAuth
    pki_cert ca controller-manager "/CN=system:kube-controller-manager" clientAuth
    pki_cert ca scheduler "/CN=system:kube-scheduler" clientAuth
    pki_cert ca kube-proxy "/CN=system:kube-proxy" clientAuth
    pki_cert ca super-admin "/O=system:masters/CN=k8s-lab-super-admin" clientAuth
    pki_cert ca admin "/O=k8s-lab:cluster-admins/CN=k8s-lab-admin" clientAuth
    for n in $NODES; do
        pki_cert ca "node$n-kubelet-client" "/O=system:nodes/CN=system:node:$(node_name "$n")" clientAuth
        pki_cert ca "node$n-kubelet-server" "/CN=system:node:$(node_name "$n")" serverAuth \
            "DNS:$(node_name "$n"),IP:$(node_ip "$n")"
        pki_kubeconfig "$PKI/node$n-kubelet.kubeconfig" "system:node:$(node_name "$n")" "node$n-kubelet-client"
    done
    [ -s "$PKI/sa.key" ] || pki_key "$PKI/sa.key"
    [ -s "$PKI/sa.pub" ] || openssl pkey -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub"

    pki_kubeconfig "$PKI/controller-manager.kubeconfig" system:kube-controller-manager controller-manager
    pki_kubeconfig "$PKI/scheduler.kubeconfig" system:kube-scheduler scheduler
    pki_kubeconfig "$PKI/kube-proxy.kubeconfig" system:kube-proxy kube-proxy
    pki_kubeconfig "$PKI/super-admin.kubeconfig" k8s-lab-super-admin super-admin
    pki_kubeconfig "$ADMIN_KUBECONFIG" k8s-lab-admin admin
}
