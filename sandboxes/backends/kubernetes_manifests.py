"""What the Kubernetes backend asks the API server for: a unit's Pod, its agent's Secret and its NetworkPolicy.

Plain dictionaries, built from the unit and the backend's settings. Kept apart from the
backend so that reading what a sandbox pod is does not mean reading how it is watched.

Hardening (the Docker backend's, or stronger): the pod runs as the images' non-root
``broker`` account with ``runAsNonRoot``, no privilege escalation, every capability
dropped, the RuntimeDefault seccomp profile, a read-only root with two size-limited
emptyDirs (the unit's folder on disk, /tmp a tmpfs), memory and CPU requests and limits (memory by broker
kind: its weight reserved, a wall above what the broker grows to; unit_memory.py), an
ephemeral-storage limit (the broker's disk cap), no ServiceAccount token, no service
links, no host namespaces or paths. Without capabilities the agent cannot switch to a
uid of the cell's own, so agent, broker and cells share the pod's one account: the pod is
the wall around them. Exercise checks, which must be out of the learner's reach, run in a
second container, ``checker`` (agent/checker.py): another uid, its own PID namespace and /tmp,
a token of its own mounted there only. Its network is walled in from inside by an init container
(kubernetes_fence.py): nothing leaves the pod, only the agent's and the checker's ports are
reached from outside, whether or not the cluster enforces the NetworkPolicy.
"""

from __future__ import annotations

from typing import Any

from sandboxes.images import BROKER_USER, UNIT_DIR

from .base import UnitSpec
from .kubernetes_fence import fence_container
from .unit_memory import UnitMemory

LABEL_INSTANCE = "broker-academy.org/instance"
LABEL_UNIT = "broker-academy.org/unit"
LABEL_SANDBOX = "broker-academy.org/sandbox"
LABEL_BROKER = "broker-academy.org/broker"
#: The owner is an annotation: a user name need not be a valid label value.
ANNOTATION_OWNER = "broker-academy.org/owner"

#: The port the agent listens on inside its pod.
AGENT_PORT = 7070
#: The port of the pod's checker container (exercise checks, agent/checker.py).
CHECKER_PORT = 7071
#: The images' account for brokers (sandboxes/images/base.Dockerfile): the agent's, the broker's and the cells' uid.
RUN_AS = 61000
#: The checker container's uid: not the learner's, and an account of no image (nothing on the root is its own).
CHECKER_UID = 61001
TOKEN_KEY = "token"
TOKEN_DIR = "/run/agent"
CHECKER_TOKEN_KEY = "checker-token"
CHECKER_TOKEN_DIR = "/run/checker"
TMP_MB = 64
#: The checker's memory: requested, a check's interpreter with a broker client is a few tens of MiB above its
#: server's; the limit leaves a check room for a consumer's buffers.
CHECKER_MEMORY_REQUEST_MB = 48
CHECKER_MEMORY_LIMIT_MB = 256
#: The checker's CPU, in millicores: its request is taken from the agent container's, so a pod asks the scheduler
#: for SANDBOX_K8S_CPUS as before; its limit lets a check start its interpreter quickly.
CHECKER_CPU_REQUEST_M = 50
CHECKER_CPU_LIMIT_M = 500
CHECKER_TMP_MB = 16
CHECKER_LOGS_MB = 16
#: The rest of a pod's ephemeral storage: its container's log and writable layer (the root is read-only).
LOGS_MB = 64
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def secret_name(name: str) -> str:
    """The Secret holding a unit's agent token."""
    return f"{name}-agent"


def toleration(text: str) -> dict[str, str]:
    """A toleration from a taint as kubectl writes it: "key=value:Effect", or "key:Effect" for any value."""
    taint, _, effect = text.strip().rpartition(":")
    key, equals, value = taint.partition("=")
    if not key or effect not in TAINT_EFFECTS:
        raise ValueError(f"{text!r} is not a taint (key=value:Effect or key:Effect, Effect one of {', '.join(TAINT_EFFECTS)})")
    if equals:
        return {"key": key, "operator": "Equal", "value": value, "effect": effect}
    return {"key": key, "operator": "Exists", "effect": effect}


def checker_args(unit: UnitSpec) -> list[str]:
    """The checker container's command line: the same image's agent, serving checks only (agent/checker.py)."""
    token = f"{CHECKER_TOKEN_DIR}/{CHECKER_TOKEN_KEY}"
    return [
        "--checks-only",
        "--unit-dir",
        "/tmp",
        "--broker",
        unit.broker,
        "--listen",
        f"0.0.0.0:{CHECKER_PORT}",
        "--token-file",
        token,
    ]


HARDENED = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "privileged": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def checker_request_m(whole: int) -> int:
    """The checker's CPU request out of the pod's ``whole`` millicores (the agent's request is the rest)."""
    return min(CHECKER_CPU_REQUEST_M, whole // 2)


def listening_container(*, name: str, image: str, args: list[str], port: int) -> dict[str, Any]:
    """A container of the image's agent (``/entrypoint``) that listens on ``port``: ready once it accepts there.
    The pod's two (the agent, the checker) differ in what follows: resources, account and volumes."""
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["/entrypoint"],
        "args": args,
        "env": [{"name": "HOME", "value": "/tmp"}],
        "ports": [{"name": name, "containerPort": port, "protocol": "TCP"}],
        "readinessProbe": {"tcpSocket": {"port": port}, "periodSeconds": 1, "failureThreshold": 1},
    }


def checker_container(*, unit: UnitSpec, image: str, cpus: float) -> dict[str, Any]:
    """The pod's second container: the unit's checks, as another uid, in a PID namespace and /tmp of their own."""
    whole = int(cpus * 1000)
    cpu = {"requests": f"{checker_request_m(whole)}m", "limits": f"{min(CHECKER_CPU_LIMIT_M, whole)}m"}
    return {
        **listening_container(name="checker", image=image, args=checker_args(unit), port=CHECKER_PORT),
        "resources": {
            what: {"memory": f"{mb}Mi", "cpu": cpu[what], "ephemeral-storage": f"{CHECKER_LOGS_MB}Mi"}
            for what, mb in (("requests", CHECKER_MEMORY_REQUEST_MB), ("limits", CHECKER_MEMORY_LIMIT_MB))
        },
        "securityContext": {**HARDENED, "runAsUser": CHECKER_UID, "runAsGroup": CHECKER_UID},
        "volumeMounts": [
            {"name": "checker-tmp", "mountPath": "/tmp"},
            {"name": "checker-token", "mountPath": CHECKER_TOKEN_DIR, "readOnly": True},
        ],
    }


def agent_args(unit: UnitSpec) -> list[str]:
    listen = ["--listen", f"0.0.0.0:{AGENT_PORT}", "--token-file", f"{TOKEN_DIR}/{TOKEN_KEY}"]
    # setpriv's mode, as in a Docker container: no namespaces of the cells' own, the agent's seccomp filter on each.
    walls = ["--cell-confinement", "setpriv"]
    # A unit on kept data: its agent waits for the archive the backend sends (agent/kept_data.py) before the broker starts.
    restore = ["--restore"] if unit.restore else []
    return ["--unit-dir", UNIT_DIR, "--broker", unit.broker, "--broker-user", BROKER_USER, *walls, *listen, *restore]


def pod_manifest(
    *,
    unit: UnitSpec,
    labels: dict[str, str],
    image: str,
    memory: UnitMemory,
    cpus: float,
    disk_mb: int,
    node_selector: dict[str, str] | None = None,
    tolerations: list[str] | None = None,
) -> dict[str, Any]:
    """The unit's Pod; see kubernetes.py's docstring for why each setting.

    ``node_selector`` and ``tolerations`` (taints as "key=value:Effect") keep sandbox pods on the
    nodes a cluster sets apart for them; without them the scheduler may use any node.
    """
    name = unit.name
    whole = int(cpus * 1000)
    storage = {"ephemeral-storage": f"{disk_mb + LOGS_MB}Mi"}
    requests = {"memory": f"{memory.request_mb}Mi", "cpu": f"{whole - checker_request_m(whole)}m", **storage}
    limits = {"memory": f"{memory.limit_mb}Mi", "cpu": f"{whole}m", **storage}
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels, "annotations": {ANNOTATION_OWNER: unit.owner}},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": 10,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": RUN_AS,
                "runAsGroup": RUN_AS,
                "fsGroup": RUN_AS,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "initContainers": [fence_container(image=image, ports=(AGENT_PORT, CHECKER_PORT))],
            "containers": [
                {
                    **listening_container(name="agent", image=image, args=agent_args(unit), port=AGENT_PORT),
                    "resources": {"requests": requests, "limits": limits},
                    "securityContext": dict(HARDENED),
                    "volumeMounts": [
                        {"name": "unit", "mountPath": UNIT_DIR},
                        {"name": "tmp", "mountPath": "/tmp"},
                        {"name": "token", "mountPath": TOKEN_DIR, "readOnly": True},
                    ],
                },
                checker_container(unit=unit, image=image, cpus=cpus),
            ],
            "volumes": [
                {"name": "unit", "emptyDir": {"sizeLimit": f"{disk_mb}Mi"}},
                # A tmpfs of TMP_MB, as Docker's /tmp: a cell that fills it gets ENOSPC, not its pod evicted
                # (the kubelet sizes a memory-backed emptyDir by its sizeLimit; it counts in the pod's memory).
                {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": f"{TMP_MB}Mi"}},
                # Readable by the pod's group only (fsGroup), never world-readable; each container is given its own
                # key of the unit's Secret, so the learner's (the agent's container) never holds the checker's.
                {
                    "name": "token",
                    "secret": {
                        "secretName": secret_name(name),
                        "defaultMode": 0o440,
                        "items": [{"key": TOKEN_KEY, "path": TOKEN_KEY}],
                    },
                },
                {
                    "name": "checker-token",
                    "secret": {
                        "secretName": secret_name(name),
                        "defaultMode": 0o440,
                        "items": [{"key": CHECKER_TOKEN_KEY, "path": CHECKER_TOKEN_KEY}],
                    },
                },
                {"name": "checker-tmp", "emptyDir": {"medium": "Memory", "sizeLimit": f"{CHECKER_TMP_MB}Mi"}},
            ],
        },
    }
    if node_selector:
        pod["spec"]["nodeSelector"] = dict(node_selector)
    if tolerations:
        pod["spec"]["tolerations"] = [toleration(t) for t in tolerations]
    return pod


def secret_manifest(*, name: str, labels: dict[str, str], token: str, checker_token: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": secret_name(name), "labels": labels},
        "type": "Opaque",
        "stringData": {TOKEN_KEY: token, CHECKER_TOKEN_KEY: checker_token},
    }


def policy_manifest(*, name: str, labels: dict[str, str], instance: str) -> dict[str, Any]:
    """Nothing leaves the pod; only the agent's and the checker's ports are reachable (where the network plugin
    enforces it)."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "podSelector": {"matchLabels": {LABEL_INSTANCE: instance, LABEL_UNIT: name}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"ports": [{"protocol": "TCP", "port": port} for port in (AGENT_PORT, CHECKER_PORT)]}],
            "egress": [],
        },
    }
