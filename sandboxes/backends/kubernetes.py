"""The backend for a Kubernetes cluster: each unit is one hardened Pod, reached by its agent over the network.

A unit is three objects in the backend's namespace, all named after the unit
(``<instance>-<sandbox id>``) and carrying the same labels as the docker backend's:

- a **Secret** ``<unit>-agent`` holding the agent's token and the checker's. Each is derived from
  SECRET_KEY and the unit's name (an HMAC), so every web and worker process knows it
  without reading the Secret, two workers starting the same unit agree on it, and one
  unit's token opens no other agent (nor its own checker);
- a **NetworkPolicy** ``<unit>``: nothing out, only the agent's and the checker's ports in (for clusters
  whose network plugin enforces policies; the lab's bridge CNI does not);
- a **Pod** ``<unit>`` running the project's image of the broker kind with the agent
  listening on TCP (``--listen``, ``--token-file``); the platform reaches it at the pod's
  address, and sends exercise checks to the pod's checker container on its own port
  (``AgentAddress.checker``). Readiness probes on both ports tell when :meth:`start` may
  return, and :meth:`start` waits for them with a watch, not by polling.

Every create is preceded by a lookup; a 409 on create means another worker made it a
moment ago, and is used as it is. On stop, 404 (gone) and 409 (being removed) are success.

Kept state travels through the agent (a pod's data folder is an emptyDir): kept_archives.py.

Hardening (the Docker backend's, or stronger) is said where the pod is built: kubernetes_manifests.py;
the agent's address and token, and their cache: kubernetes_addresses.py.

Uses the official ``kubernetes`` client (synchronous): a backend's methods are called
from Celery tasks and services that block anyway, as the docker backend's SDK does.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error
from django.core.exceptions import ImproperlyConfigured
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from .base import AgentAddress, SandboxBackend, UnitSpec
from .kept_archives import KeptArchives, KeptThroughAgent
from .kubernetes_addresses import AgentAddresses, agent_token, checker_token, nowhere
from .kubernetes_manifests import (
    AGENT_PORT,
    ANNOTATION_OWNER,
    LABEL_BROKER,
    LABEL_INSTANCE,
    LABEL_SANDBOX,
    LABEL_UNIT,
    pod_manifest,
    policy_manifest,
    secret_manifest,
    secret_name,
    toleration,
)
from .kubernetes_pod_watch import REQUEST_S, PodWatch, pod_exit_status
from .unit_memory import unit_memory

__all__ = ["AGENT_PORT", "ANNOTATION_OWNER", "LABEL_BROKER", "LABEL_INSTANCE", "LABEL_SANDBOX", "LABEL_UNIT", "KubernetesBackend"]

log = logging.getLogger(__name__)

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
FOREIGN = "A {what} named {name!r} exists but does not belong to this platform instance ({instance}); remove or rename it."


class KubernetesBackend(KeptThroughAgent, SandboxBackend):
    """One Pod (with its Secret and NetworkPolicy) per unit; see the module's docstring."""

    def __init__(self) -> None:
        self.instance = settings.SANDBOX_INSTANCE
        self.image = settings.SANDBOX_K8S_IMAGE
        self.images: dict[str, str] = dict(settings.SANDBOX_K8S_IMAGES)
        self.cpus = settings.SANDBOX_K8S_CPUS
        self.disk_mb = settings.SANDBOX_K8S_DISK_MB
        self.kubeconfig = settings.SANDBOX_K8S_KUBECONFIG
        self.namespace = settings.SANDBOX_K8S_NAMESPACE
        self.node_selector: dict[str, str] = dict(settings.SANDBOX_K8S_NODE_SELECTOR)
        self.tolerations: list[str] = list(settings.SANDBOX_K8S_TOLERATIONS)
        self._api: client.ApiClient | None = None
        self._addresses = AgentAddresses()
        self.kept = KeptArchives(Path(settings.SANDBOX_ROOT), self.instance)

    @classmethod
    def check_settings(cls) -> list[CheckMessage]:
        """Object names, the image template and the tolerations can work (sandboxes.E121, E122, E124)."""
        errors: list[CheckMessage] = []
        instance, image = settings.SANDBOX_INSTANCE, settings.SANDBOX_K8S_IMAGE
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
        for text in settings.SANDBOX_K8S_TOLERATIONS:
            try:
                toleration(text)
            except ValueError as exc:
                errors.append(Error(f"SANDBOX_K8S_TOLERATIONS: {exc}", id="sandboxes.E124"))
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
        return secret_name(name)

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
        """The unit's agent token (kubernetes_addresses.py)."""
        return agent_token(name)

    def image_for(self, broker: str) -> str:
        return self.images.get(broker) or self.image.format(broker=broker)

    # -- the contract ----------------------------------------------------------

    def start(self, unit: UnitSpec) -> None:
        name = unit.name
        if not self.owns(name):
            raise ValueError(f"{name!r} is not a unit name of instance {self.instance!r}")
        self._addresses.forget(name)
        unit = self.kept_spec(unit)
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
                self.restore_kept(unit)
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
        self.restore_kept(unit)
        log.info("unit started", extra={"unit": name, "broker": unit.broker, "restored": bool(unit.restore)})

    def stop(self, name: str) -> None:
        self._addresses.forget(name)
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
        return -1 if pod is None or not self._ours(pod, name) else pod_exit_status(pod)

    def poll_many(self, names: Iterable[str]) -> dict[str, int | None]:
        """One list of the instance's pods for all of ``names`` (reconcile's pass over every sandbox), and
        their addresses cached on the way, instead of two reads a unit."""
        pods = self.core.list_namespaced_pod(
            self.namespace, label_selector=f"{LABEL_INSTANCE}={self.instance}", _request_timeout=REQUEST_S
        ).items
        found = {(pod.metadata.labels or {}).get(LABEL_UNIT): pod for pod in pods}
        for name, pod in found.items():
            if name:
                self._addresses.learn(name, pod)
        return {name: pod_exit_status(found[name]) if name in found else -1 for name in names}

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
        cached = self._addresses.cached(name)
        if cached is not None:
            return cached
        pod = self._read_pod(name)
        address = self._addresses.learn(name, pod) if pod is not None and self._ours(pod, name) else None
        return address or nowhere(name)

    def processes(self, name: str) -> list[int]:
        """Always empty: a pod's processes run on a node, not here; the kubelet accounts for them."""
        return []

    # -- the objects -----------------------------------------------------------

    def pod_manifest(self, unit: UnitSpec) -> dict[str, Any]:
        """The unit's Pod (kubernetes_manifests.py); see the module's docstring for why each setting."""
        return pod_manifest(
            unit=unit,
            labels=self.labels(unit.name, unit.broker),
            image=self.image_for(unit.broker),
            memory=unit_memory(unit.broker),
            cpus=self.cpus,
            disk_mb=self.disk_mb,
            node_selector=self.node_selector,
            tolerations=self.tolerations,
        )

    def _create_secret(self, name: str, labels: dict[str, str]) -> None:
        body = secret_manifest(name=name, labels=labels, token=self.token(name), checker_token=checker_token(name))
        self.core.create_namespaced_secret(self.namespace, body, _request_timeout=REQUEST_S)

    def _create_policy(self, name: str, labels: dict[str, str]) -> None:
        body = policy_manifest(name=name, labels=labels, instance=self.instance)
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

    # -- waiting, by watching (kubernetes_pod_watch.py) --------------------------

    def _wait_ready(self, name: str) -> None:
        PodWatch(self.core, self.namespace).wait_ready(name)

    def _wait_gone(self, name: str) -> None:
        PodWatch(self.core, self.namespace).wait_gone(name, lambda pod: self._ours(pod, name))
