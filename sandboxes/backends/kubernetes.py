"""The backend for a Kubernetes cluster: each unit is one hardened Pod, reached by its agent over the network.

A unit is three objects in the backend's namespace, all named after the unit
(``<instance>-<sandbox id>``) and carrying the same labels as the docker backend's:

- a **Secret** ``<unit>-agent`` holding the agent's token. The token is derived from
  SECRET_KEY and the unit's name (an HMAC), so every web and worker process knows it
  without reading the Secret, two workers starting the same unit agree on it, and one
  unit's token opens no other agent;
- a **NetworkPolicy** ``<unit>``: nothing out, only the agent's port in (for clusters
  whose network plugin enforces policies; the lab's bridge CNI does not);
- a **Pod** ``<unit>`` running the project's image of the broker kind with the agent
  listening on TCP (``--listen``, ``--token-file``); the platform reaches it at the pod's
  address. A readiness probe on the agent's port tells when :meth:`start` may return,
  and :meth:`start` waits for it with a watch, not by polling.

Every create is preceded by a lookup; a 409 on create means another worker made it a
moment ago, and is used as it is. On stop, 404 (gone) and 409 (being removed) are success.

Hardening (the Docker backend's, or stronger): the pod runs as the images' non-root
``broker`` account with ``runAsNonRoot``, no privilege escalation, every capability
dropped, the RuntimeDefault seccomp profile, a read-only root with two size-limited
emptyDirs (the unit's folder and /tmp), memory and CPU requests and limits, an
ephemeral-storage limit (the broker's disk cap), no ServiceAccount token, no service
links, no host namespaces or paths. Without capabilities the agent cannot switch to a
uid of the cell's own, so agent, broker and cells share the pod's one account: the pod is
the wall around them, and a cell can reach at most its own agent.

Uses the official ``kubernetes`` client (synchronous): a backend's methods are called
from Celery tasks and services that block anyway, as the docker backend's SDK does.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error
from django.core.exceptions import ImproperlyConfigured
from django.utils.crypto import salted_hmac
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from sandboxes.images import BROKER_USER, UNIT_DIR

from .base import AgentAddress, SandboxBackend, UnitSpec

log = logging.getLogger(__name__)

LABEL_INSTANCE = "broker-academy.org/instance"
LABEL_UNIT = "broker-academy.org/unit"
LABEL_SANDBOX = "broker-academy.org/sandbox"
LABEL_BROKER = "broker-academy.org/broker"
#: The owner is an annotation: a user name need not be a valid label value.
ANNOTATION_OWNER = "broker-academy.org/owner"

#: The port the agent listens on inside its pod.
AGENT_PORT = 7070
#: The images' account for brokers (sandboxes/images/base.Dockerfile): the pod's one uid.
RUN_AS = 61000
TOKEN_KEY = "token"
TOKEN_DIR = "/run/agent"
TMP_MB = 64
#: The rest of a pod's ephemeral storage: its container's log and writable layer (the root is read-only).
LOGS_MB = 64
#: From create to a ready agent: pulling the image on a node that has not got it is most of it.
AGENT_START_S = 180.0
REMOVE_S = 60.0
#: One request to the API server; a watch's own limit is set per call.
REQUEST_S = 30
#: The agent's address and token per unit, kept this long in each process: a unit's pod is not
#: replaced under its name while its sandbox lives, and a stale entry ages out all the same.
ADDRESS_TTL_S = 30.0
#: What a pod's container says when it will not start on its own (restartPolicy is Never).
STUCK_REASONS = frozenset(
    {"ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull", "CreateContainerConfigError", "CreateContainerError"}
)
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

FOREIGN = "A {what} named {name!r} exists but does not belong to this platform instance ({instance}); remove or rename it."
POD_ENDED = "The sandbox pod ended ({reason}) before its agent answered. Its last lines:\n{logs}"
POD_STUCK = "The sandbox pod cannot start: {reason}: {message}"
POD_SILENT = "The sandbox agent was not ready within {seconds:.0f} s (pod phase {phase}). Its last lines:\n{logs}"
NOT_REMOVED = "The sandbox pod {name} was not removed within {seconds:.0f} s"


class KubernetesBackend(SandboxBackend):
    """One Pod (with its Secret and NetworkPolicy) per unit; see the module's docstring."""

    def __init__(self) -> None:
        self.instance = settings.SANDBOX_INSTANCE
        self.image = settings.SANDBOX_K8S_IMAGE
        self.images: dict[str, str] = dict(settings.SANDBOX_K8S_IMAGES)
        self.memory_mb = settings.SANDBOX_K8S_MEMORY_MB
        self.cpus = settings.SANDBOX_K8S_CPUS
        self.disk_mb = settings.SANDBOX_K8S_DISK_MB
        self.kubeconfig = settings.SANDBOX_K8S_KUBECONFIG
        self.namespace = settings.SANDBOX_K8S_NAMESPACE
        self._api: client.ApiClient | None = None
        self._addresses: dict[str, tuple[float, AgentAddress]] = {}

    @classmethod
    def check_settings(cls) -> list[CheckMessage]:
        """Object names, the image template and the memory limit can work (sandboxes.E121-E123)."""
        errors: list[CheckMessage] = []
        instance, image, memory_mb = settings.SANDBOX_INSTANCE, settings.SANDBOX_K8S_IMAGE, settings.SANDBOX_K8S_MEMORY_MB
        if not DNS_LABEL.match(instance) or len(instance) > 40:
            errors.append(
                Error(
                    f"SANDBOX_INSTANCE={instance!r}: the kubernetes backend names objects after it, "
                    "so it must be lowercase letters, digits and '-' (at most 40)",
                    id="sandboxes.E121",
                )
            )
        if "{broker}" not in image:
            errors.append(Error(f"SANDBOX_K8S_IMAGE={image!r} must contain {{broker}}", id="sandboxes.E122"))
        if not isinstance(memory_mb, int) or memory_mb < 512:
            errors.append(Error(f"SANDBOX_K8S_MEMORY_MB={memory_mb!r}: a unit needs at least 512", id="sandboxes.E123"))
        return errors

    # -- the API server ------------------------------------------------------

    @property
    def api(self) -> client.ApiClient:
        """A client for the configured kubeconfig, or the pod's own account when there is none."""
        if self._api is None:
            if self.kubeconfig:
                api = config.new_client_from_config(config_file=str(self.kubeconfig))
                if not self.namespace:
                    _, active = config.list_kube_config_contexts(config_file=str(self.kubeconfig))
                    self.namespace = active["context"].get("namespace", "")
            else:
                configuration = client.Configuration()
                config.load_incluster_config(client_configuration=configuration)
                api = client.ApiClient(configuration)
                if not self.namespace:
                    self.namespace = Path(config.incluster_config.SERVICE_TOKEN_FILENAME).with_name("namespace").read_text()
            if not self.namespace:
                raise ImproperlyConfigured("SANDBOX_K8S_NAMESPACE is empty and the kubeconfig's context names no namespace")
            self._api = api
        return self._api

    # The client's models declare every field optional, which the API server fills in; objects it
    # returns are read here as Any rather than checked for None at each step.
    @property
    def core(self) -> Any:
        return client.CoreV1Api(self.api)

    @property
    def networking(self) -> Any:
        return client.NetworkingV1Api(self.api)

    # -- names, labels, credentials ------------------------------------------

    @staticmethod
    def secret_name(name: str) -> str:
        return f"{name}-agent"

    def owns(self, name: str) -> bool:
        """Units are named <instance>-<sandbox id>; anything else in the namespace is not ours to touch."""
        instance, _, number = name.rpartition("-")
        return instance == self.instance and number.isdigit()

    def labels(self, name: str, broker: str = "") -> dict[str, str]:
        labels = {LABEL_INSTANCE: self.instance, LABEL_UNIT: name, LABEL_SANDBOX: name.rpartition("-")[2]}
        if broker:
            labels[LABEL_BROKER] = broker
        return labels

    def _ours(self, obj: Any, name: str) -> bool:
        labels = obj.metadata.labels or {}
        return labels.get(LABEL_INSTANCE) == self.instance and labels.get(LABEL_UNIT) == name

    @staticmethod
    def token(name: str) -> str:
        """The unit's agent token: an HMAC of its name under SECRET_KEY (never the same for two units)."""
        return salted_hmac("sandboxes.backends.kubernetes.agent-token", name, algorithm="sha256").hexdigest()

    def image_for(self, broker: str) -> str:
        return self.images.get(broker) or self.image.format(broker=broker)

    # -- the contract ----------------------------------------------------------

    def start(self, unit: UnitSpec) -> None:
        name = unit.name
        if not self.owns(name):
            raise ValueError(f"{name!r} is not a unit name of instance {self.instance!r}")
        self._addresses.pop(name, None)
        labels = self.labels(name, unit.broker)
        self._ensure(self._read_secret, self._create_secret, name, "secret", labels)
        self._ensure(self._read_policy, self._create_policy, name, "network policy", labels)
        pod = self._read_pod(name)
        if pod is not None:
            if not self._ours(pod, name):
                raise RuntimeError(FOREIGN.format(what="pod", name=name, instance=self.instance))
            if pod.metadata.deletion_timestamp is None and pod.status.phase in ("Pending", "Running"):
                log.info("unit reused", extra={"unit": name})
                self._wait_ready(name)
                return
            # Ended or being removed: a fresh pod replaces it (its data went with it).
            self._delete_pod(name)
            self._wait_gone(name)
        try:
            self.core.create_namespaced_pod(self.namespace, self.pod_manifest(unit), _request_timeout=REQUEST_S)
        except ApiException as exc:
            if exc.status != 409:
                raise
            log.info("unit created by another worker a moment ago; waiting for it", extra={"unit": name})
        self._wait_ready(name)
        log.info("unit started", extra={"unit": name, "broker": unit.broker})

    def stop(self, name: str) -> None:
        self._addresses.pop(name, None)
        self._delete_pod(name)
        self._ignore_gone(
            lambda: self.core.delete_namespaced_secret(self.secret_name(name), self.namespace, _request_timeout=REQUEST_S)
        )
        self._ignore_gone(
            lambda: self.networking.delete_namespaced_network_policy(name, self.namespace, _request_timeout=REQUEST_S)
        )
        self._wait_gone(name)
        log.info("unit stopped", extra={"unit": name})

    def poll(self, name: str) -> int | None:
        pod = self._read_pod(name)
        if pod is None or not self._ours(pod, name):
            return -1
        terminated = self._terminated(pod)
        if terminated is not None:
            return int(terminated.exit_code)
        if pod.status.phase in ("Pending", "Running"):
            return None
        return 1  # Failed or Succeeded without a container status: ended all the same

    def list_units(self) -> list[str]:
        selector = f"{LABEL_INSTANCE}={self.instance}"
        found: list[Any] = []
        found += self.core.list_namespaced_pod(self.namespace, label_selector=selector, _request_timeout=REQUEST_S).items
        found += self.core.list_namespaced_secret(self.namespace, label_selector=selector, _request_timeout=REQUEST_S).items
        found += self.networking.list_namespaced_network_policy(
            self.namespace, label_selector=selector, _request_timeout=REQUEST_S
        ).items
        names = {(obj.metadata.labels or {}).get(LABEL_UNIT, "") for obj in found}
        return sorted(n for n in names if self.owns(n))

    def agent_address(self, name: str) -> AgentAddress:
        """The pod's address and the agent's port, with the unit's token; cached briefly per process."""
        cached = self._addresses.get(name)
        if cached is not None and time.monotonic() - cached[0] < ADDRESS_TTL_S:
            return cached[1]
        pod = self._read_pod(name)
        ip = pod.status.pod_ip if pod is not None and self._ours(pod, name) else None
        # No pod (yet): an address nothing answers at, so callers see AgentUnavailable as with a missing socket.
        address = AgentAddress(host=ip or "0.0.0.0", port=AGENT_PORT if ip else 0, token=self.token(name))
        if ip:
            self._addresses[name] = (time.monotonic(), address)
        return address

    def processes(self, name: str) -> list[int]:
        """Always empty: a pod's processes run on a node, not here; the kubelet accounts for them."""
        return []

    # -- the objects -----------------------------------------------------------

    @staticmethod
    def agent_args(unit: UnitSpec) -> list[str]:
        listen = ["--listen", f"0.0.0.0:{AGENT_PORT}", "--token-file", f"{TOKEN_DIR}/{TOKEN_KEY}"]
        return ["--unit-dir", UNIT_DIR, "--broker", unit.broker, "--broker-user", BROKER_USER, *listen]

    def pod_manifest(self, unit: UnitSpec) -> dict[str, Any]:
        """The unit's Pod; see the module's docstring for why each setting."""
        name = unit.name
        resources = {
            "memory": f"{self.memory_mb}Mi",
            "cpu": f"{int(self.cpus * 1000)}m",
            "ephemeral-storage": f"{self.disk_mb + TMP_MB + LOGS_MB}Mi",
        }
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": self.labels(name, unit.broker), "annotations": {ANNOTATION_OWNER: unit.owner}},
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
                "containers": [
                    {
                        "name": "agent",
                        "image": self.image_for(unit.broker),
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["/entrypoint"],
                        "args": self.agent_args(unit),
                        "env": [{"name": "HOME", "value": "/tmp"}],
                        "ports": [{"name": "agent", "containerPort": AGENT_PORT, "protocol": "TCP"}],
                        "readinessProbe": {"tcpSocket": {"port": AGENT_PORT}, "periodSeconds": 1, "failureThreshold": 1},
                        "resources": {"requests": resources, "limits": resources},
                        "securityContext": {
                            "runAsNonRoot": True,
                            "allowPrivilegeEscalation": False,
                            "privileged": False,
                            "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]},
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "volumeMounts": [
                            {"name": "unit", "mountPath": UNIT_DIR},
                            {"name": "tmp", "mountPath": "/tmp"},
                            {"name": "token", "mountPath": TOKEN_DIR, "readOnly": True},
                        ],
                    }
                ],
                "volumes": [
                    {"name": "unit", "emptyDir": {"sizeLimit": f"{self.disk_mb}Mi"}},
                    {"name": "tmp", "emptyDir": {"sizeLimit": f"{TMP_MB}Mi"}},
                    # Readable by the pod's group only (fsGroup), never world-readable.
                    {"name": "token", "secret": {"secretName": self.secret_name(name), "defaultMode": 0o440}},
                ],
            },
        }

    def _create_secret(self, name: str, labels: dict[str, str]) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": self.secret_name(name), "labels": labels},
            "type": "Opaque",
            "stringData": {TOKEN_KEY: self.token(name)},
        }
        self.core.create_namespaced_secret(self.namespace, body, _request_timeout=REQUEST_S)

    def _create_policy(self, name: str, labels: dict[str, str]) -> None:
        """Nothing leaves the pod; only the agent's port is reachable (where the network plugin enforces it)."""
        body = {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "podSelector": {"matchLabels": {LABEL_INSTANCE: self.instance, LABEL_UNIT: name}},
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [{"ports": [{"protocol": "TCP", "port": AGENT_PORT}]}],
                "egress": [],
            },
        }
        self.networking.create_namespaced_network_policy(self.namespace, body, _request_timeout=REQUEST_S)

    def _read_pod(self, name: str) -> Any:
        return self._read(lambda: self.core.read_namespaced_pod(name, self.namespace, _request_timeout=REQUEST_S))

    def _read_secret(self, name: str) -> Any:
        return self._read(
            lambda: self.core.read_namespaced_secret(self.secret_name(name), self.namespace, _request_timeout=REQUEST_S)
        )

    def _read_policy(self, name: str) -> Any:
        return self._read(
            lambda: self.networking.read_namespaced_network_policy(name, self.namespace, _request_timeout=REQUEST_S)
        )

    @staticmethod
    def _read(call: Callable[[], Any]) -> Any:
        try:
            return call()
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def _ensure(
        self,
        read: Callable[[str], Any],
        create: Callable[[str, dict[str, str]], None],
        name: str,
        what: str,
        labels: dict[str, str],
    ) -> None:
        """Look up, and create when missing; a 409 is another worker's create, which is as good as ours."""
        found = read(name)
        if found is not None:
            if not self._ours(found, name):
                raise RuntimeError(FOREIGN.format(what=what, name=found.metadata.name, instance=self.instance))
            return
        try:
            create(name, labels)
        except ApiException as exc:
            if exc.status != 409:
                raise

    @staticmethod
    def _ignore_gone(call: Callable[[], Any]) -> None:
        """Delete; 404 (gone already) and 409 (being removed, or changed meanwhile) are success."""
        try:
            call()
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise

    def _delete_pod(self, name: str) -> None:
        pod = self._read_pod(name)
        if pod is not None and not self._ours(pod, name):
            return  # someone else's pod of that name: not ours to remove
        self._ignore_gone(
            lambda: self.core.delete_namespaced_pod(
                name, self.namespace, grace_period_seconds=5, propagation_policy="Background", _request_timeout=REQUEST_S
            )
        )

    # -- waiting, by watching --------------------------------------------------

    def _pod_events(self, name: str, deadline: float) -> Iterator[tuple[str, Any]]:
        """("ADDED"/"MODIFIED"/"DELETED", pod) for the one pod, starting with its state now (None: no pod)."""
        listed = self.core.list_namespaced_pod(self.namespace, field_selector=f"metadata.name={name}", _request_timeout=REQUEST_S)
        yield ("LISTED", listed.items[0] if listed.items else None)
        version = listed.metadata.resource_version
        while time.monotonic() < deadline:
            watcher = watch.Watch()
            seconds = max(1, int(deadline - time.monotonic()))
            try:
                for event in watcher.stream(
                    self.core.list_namespaced_pod,
                    self.namespace,
                    field_selector=f"metadata.name={name}",
                    resource_version=version,
                    timeout_seconds=seconds,
                    _request_timeout=seconds + REQUEST_S,
                ):
                    pod = event["object"]
                    version = pod.metadata.resource_version
                    yield (event["type"], pod)
            except ApiException as exc:
                if exc.status != 410:  # 410: our version is too old; list again from now
                    raise
                listed = self.core.list_namespaced_pod(
                    self.namespace, field_selector=f"metadata.name={name}", _request_timeout=REQUEST_S
                )
                yield ("LISTED", listed.items[0] if listed.items else None)
                version = listed.metadata.resource_version
            finally:
                watcher.stop()

    def _wait_ready(self, name: str) -> None:
        """Return once the pod's agent passes its readiness probe; raise when it ends or cannot start."""
        deadline = time.monotonic() + AGENT_START_S
        phase = "unknown"
        for kind, pod in self._pod_events(name, deadline):
            if pod is None or kind == "DELETED":
                raise RuntimeError(POD_ENDED.format(reason="removed", logs=""))
            phase = pod.status.phase or phase
            if self._ready(pod):
                return
            terminated = self._terminated(pod)
            if terminated is not None or phase in ("Failed", "Succeeded"):
                reason = f"exit status {terminated.exit_code}" if terminated is not None else phase
                raise RuntimeError(POD_ENDED.format(reason=reason, logs=self._logs(name)))
            for status in pod.status.container_statuses or []:
                waiting = status.state.waiting if status.state is not None else None
                if waiting is not None and waiting.reason in STUCK_REASONS:
                    raise RuntimeError(POD_STUCK.format(reason=waiting.reason, message=waiting.message or ""))
        raise RuntimeError(POD_SILENT.format(seconds=AGENT_START_S, phase=phase, logs=self._logs(name)))

    def _wait_gone(self, name: str) -> None:
        deadline = time.monotonic() + REMOVE_S
        for kind, pod in self._pod_events(name, deadline):
            if pod is None or kind == "DELETED" or not self._ours(pod, name):
                return
        raise RuntimeError(NOT_REMOVED.format(name=name, seconds=REMOVE_S))

    @staticmethod
    def _ready(pod: Any) -> bool:
        return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])

    @staticmethod
    def _terminated(pod: Any) -> Any:
        for status in pod.status.container_statuses or []:
            if status.state is not None and status.state.terminated is not None:
                return status.state.terminated
        return None

    def _logs(self, name: str) -> str:
        with contextlib.suppress(ApiException, OSError):
            return str(self.core.read_namespaced_pod_log(name, self.namespace, tail_lines=20, _request_timeout=REQUEST_S))
        return "(no logs)"
