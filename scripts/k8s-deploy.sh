#!/usr/bin/env bash
# The whole platform (deploy/kubernetes/lab: web, worker, beat, Postgres, Redis) in the two-node
# lab. See docs/deploy.md.
#
#   scripts/k8s-deploy.sh up [KIND...]   build (or reuse) and push the images: the platform's,
#                                        Postgres', Redis' and the sandbox images of KIND...
#                                        (default: kafka); apply; wait until everything is ready
#   scripts/k8s-deploy.sh down           delete the deploy's two namespaces, and so all in them
#   scripts/k8s-deploy.sh env            the deploy's namespaces, web Service and files, as shell assignments
#
# Needs the lab up (scripts/k8s-lab.sh up) and root (it pushes through the lab's script). Its own
# overlay goes in K8S_DEPLOY (default var/k8s-deploy): kustomization.yaml, which names the pushed
# images, and secrets.env (SECRET_KEY and the Postgres and Redis passwords, made once, mode 0600).
set -euo pipefail
# A failing step inside $(...) stops the script too.
shopt -s inherit_errexit

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEPLOY=$(realpath -m "${K8S_DEPLOY:-$ROOT/var/k8s-deploy}")
NAMESPACE=ba-lab
SANDBOX_NAMESPACE=ba-lab-sandboxes
# The host folder of the lab's kept-data volume (deploy/kubernetes/lab/kept-volume.yaml), mounted in web and worker:
# under /srv, which the lab's nodes share with the host (each has a /var/lib and a /run of its own).
KEPT_DIR=/srv/broker-academy-lab/kept
PY=$ROOT/.venv/bin/python

say() { echo "k8s-deploy: $*" >&2; }

lab_env() {
    local env
    env=$("$ROOT/scripts/k8s-lab.sh" env) || exit 1
    eval "$env"
    [ -n "${K8S_LAB_KUBECTL:-}" ] && [ -s "$K8S_LAB_ADMIN_KUBECONFIG" ] || {
        say "the lab is not up: run scripts/k8s-lab.sh up"
        exit 1
    }
}

kubectl_admin() {
    "$K8S_LAB_KUBECTL" --kubeconfig "$K8S_LAB_ADMIN_KUBECONFIG" --cache-dir "$K8S_LAB_KUBECACHEDIR" "$@"
}

seconds_since() { printf '%.1f' "$((($(date +%s%N) - $1) / 100000000))e-1"; }

# The images, as NAME=REFERENCE lines: the platform's three, then the sandbox kinds'.
images_push() {
    local kind refs
    "$ROOT/scripts/docker-engine.sh" >/dev/null
    "$ROOT/scripts/docker-base.sh" >/dev/null
    "$PY" -m courseplatform.platform_image --registry "$K8S_LAB_REGISTRY" | grep '='
    "$PY" -m sandboxes.images.build "$@" >/dev/null
    refs=$("$PY" -m sandboxes.images.registry --registry "$K8S_LAB_REGISTRY" "$@")
    for kind in "$@"; do
        echo "sandbox-$kind=$(echo "$refs" | grep "/broker-academy/$kind:")"
    done
}

secrets_make() {
    [ -s "$DEPLOY/secrets.env" ] && return 0
    umask 077
    {
        echo "SECRET_KEY=$(head -c 48 /dev/urandom | od -An -tx1 | tr -d ' \n')"
        echo "POSTGRES_PASSWORD=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
        echo "REDIS_PASSWORD=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    } >"$DEPLOY/secrets.env"
    umask 022
}

# kustomization.yaml: deploy/kubernetes/lab, with the pushed images and the Secret.
overlay_write() {
    local refs=$1 name ref sandbox_images="" base
    base=$(realpath --relative-to="$DEPLOY" "$ROOT/deploy/kubernetes/lab")
    {
        echo "# Made by scripts/k8s-deploy.sh up: deploy/kubernetes/lab with this lab's images and secrets."
        echo "apiVersion: kustomize.config.k8s.io/v1beta1"
        echo "kind: Kustomization"
        echo "resources: [$base]"
        echo "images:"
        while IFS='=' read -r name ref; do
            case $name in
            sandbox-*) sandbox_images="$sandbox_images${sandbox_images:+,}${name#sandbox-}=$ref" ;;
            *) echo "- {name: broker-academy/$name, newName: ${ref%:*}, newTag: ${ref##*:}}" ;;
            esac
        done <<<"$refs"
        echo "configMapGenerator:"
        echo "- name: platform-settings"
        echo "  namespace: $NAMESPACE"
        echo "  behavior: merge"
        echo "  literals: [\"SANDBOX_K8S_IMAGES=$sandbox_images\"]"
        echo "secretGenerator:"
        echo "- name: platform-secrets"
        echo "  namespace: $NAMESPACE"
        echo "  envs: [secrets.env]"
    } >"$DEPLOY/kustomization.yaml"
}

deploy_up() {
    local started images_started refs workload
    [ $# -gt 0 ] || set -- kafka
    mkdir -p "$DEPLOY"
    started=$(date +%s%N)
    images_started=$started
    refs=$(images_push "$@")
    say "images pushed in $(seconds_since "$images_started") s"
    secrets_make
    overlay_write "$refs"
    local applied
    applied=$(date +%s%N)
    # The lab's kept-data volume: a host folder both nodes see, the platform's account (61100) its owner.
    install -d -m 0700 -o 61100 -g 61100 "$KEPT_DIR"
    kubectl_admin apply -k "$DEPLOY" >/dev/null
    for workload in statefulset/postgres deployment/redis deployment/web deployment/worker deployment/beat; do
        kubectl_admin -n "$NAMESPACE" rollout status "$workload" --timeout=600s >/dev/null || {
            say "FAILED: $workload is not ready; its pods:"
            kubectl_admin -n "$NAMESPACE" get pods -o wide >&2
            exit 1
        }
    done
    say "applied and ready in $(seconds_since "$applied") s (all: $(seconds_since "$started") s)"
    kubectl_admin -n "$NAMESPACE" get pods -o wide >&2
    say "web: http://$(web_address)/ (Host: academy.lab)"
}

web_address() {
    echo "$(kubectl_admin -n "$NAMESPACE" get service web -o jsonpath='{.spec.clusterIP}'):80"
}

# The pods of both namespaces, by name on one line.
pods_left() {
    local pods
    pods=$(kubectl_admin -n "$NAMESPACE" get pods -o name && kubectl_admin -n "$SANDBOX_NAMESPACE" get pods -o name) || return 1
    echo "$pods" | sed 's|^pod/||' | sort | tr '\n' ' ' | sed 's/ *$//'
}

deploy_down() {
    local started namespaces left said="" deadline
    started=$(date +%s%N)
    kubectl_admin delete namespace "$NAMESPACE" "$SANDBOX_NAMESPACE" --ignore-not-found --wait=false >/dev/null
    # Progress: which pods the namespaces still wait for, each time that changes. Each answer is read whole
    # (a reader that stops at its first line, as grep -q does, would end kubectl with SIGPIPE, which pipefail
    # takes for "no namespaces left"); a failed request is asked again.
    deadline=$(($(date +%s) + 300))
    while :; do
        [ "$(date +%s)" -lt "$deadline" ] || { say "FAILED: the namespaces are still there after 300 s"; exit 1; }
        if ! namespaces=$(kubectl_admin get namespace "$NAMESPACE" "$SANDBOX_NAMESPACE" --ignore-not-found -o name); then
            sleep 1
            continue
        fi
        [ -n "$namespaces" ] || break
        left=$(pods_left) || left=$said
        if [ "$left" != "$said" ]; then
            say "down: $(seconds_since "$started") s: ${left:-no pods left; the namespaces finish}"
            said=$left
        fi
        sleep 1
    done
    kubectl_admin delete persistentvolume ba-lab-kept --ignore-not-found --wait=true --timeout=60s >/dev/null
    rm -rf "$KEPT_DIR"
    rmdir --ignore-fail-on-non-empty "$(dirname "$KEPT_DIR")" 2>/dev/null || true
    say "namespaces $NAMESPACE and $SANDBOX_NAMESPACE deleted in $(seconds_since "$started") s"
}

case "${1:-}" in
up)
    lab_env
    deploy_up "${@:2}"
    ;;
down)
    lab_env
    deploy_down
    ;;
env)
    lab_env
    echo "K8S_DEPLOY=$DEPLOY"
    echo "K8S_DEPLOY_NAMESPACE=$NAMESPACE"
    echo "K8S_DEPLOY_SANDBOX_NAMESPACE=$SANDBOX_NAMESPACE"
    echo "K8S_DEPLOY_HOST=academy.lab"
    ;;
*)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
