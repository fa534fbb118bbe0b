# The platform's access to the lab: a ServiceAccount whose only rights are what a sandbox
# backend needs in the sandboxes' namespace, and a kubeconfig holding its token; sourced by
# scripts/k8s-lab.sh.
#
# The account lives in the platform's own namespace, not in the sandboxes' one: a sandbox pod
# can only name a ServiceAccount of its own namespace, and the account's token Secret is not
# among the secrets the backend may read there.

platform_access() {
    kubectl_admin apply -f - <<EOF
apiVersion: v1
kind: Namespace
metadata: {name: $PLATFORM_NAMESPACE}
---
apiVersion: v1
kind: Namespace
metadata: {name: $SANDBOX_NAMESPACE}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: $PLATFORM_ACCOUNT, namespace: $PLATFORM_NAMESPACE}
automountServiceAccountToken: false
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: sandbox-backend, namespace: $SANDBOX_NAMESPACE}
rules:
- apiGroups: [""]
  resources: [pods, secrets, services]
  verbs: [get, list, watch, create, delete]
- apiGroups: [""]
  resources: [pods/log]
  verbs: [get]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, list, watch, create, delete]
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: sandbox-backend, namespace: $SANDBOX_NAMESPACE}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: sandbox-backend}
subjects: [{kind: ServiceAccount, name: $PLATFORM_ACCOUNT, namespace: $PLATFORM_NAMESPACE}]
---
# A long-lived token, revoked by deleting this Secret (the platform runs outside the cluster here).
apiVersion: v1
kind: Secret
metadata:
  name: $PLATFORM_ACCOUNT-token
  namespace: $PLATFORM_NAMESPACE
  annotations: {kubernetes.io/service-account.name: $PLATFORM_ACCOUNT}
type: kubernetes.io/service-account-token
EOF
    wait_until "token of $PLATFORM_ACCOUNT" 60 kube-controller-manager platform_token
    local token
    token=$(platform_token)
    umask 077
    cat >"$PLATFORM_KUBECONFIG.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: k8s-lab
  cluster:
    server: $API_SERVER
    certificate-authority-data: $(base64 -w0 "$PKI/ca.crt")
users:
- name: $PLATFORM_ACCOUNT
  user: {token: $token}
contexts:
- name: $PLATFORM_ACCOUNT@k8s-lab
  context: {cluster: k8s-lab, user: $PLATFORM_ACCOUNT, namespace: $SANDBOX_NAMESPACE}
current-context: $PLATFORM_ACCOUNT@k8s-lab
EOF
    umask 022
    mv "$PLATFORM_KUBECONFIG.tmp" "$PLATFORM_KUBECONFIG"
}

# The token the controller manager put in the Secret (fails while it has not yet).
platform_token() {
    local token
    token=$(kubectl_admin -n "$PLATFORM_NAMESPACE" get secret "$PLATFORM_ACCOUNT-token" \
        -o jsonpath='{.data.token}') && [ -n "$token" ] && echo "$token" | base64 -d
}
