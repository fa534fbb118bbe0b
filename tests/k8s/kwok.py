"""Fake nodes in the lab: kwok (scripts/kwok-build.sh) as a process on the host, and Node objects it keeps alive.

kwok plays the kubelet of every Node annotated ``kwok.x-k8s.io/node=fake``: the node turns
Ready and keeps beating, and a pod bound to it is marked Running and Ready at once (no image,
no container, no agent), and goes as soon as it is deleted. The fake nodes are tainted, so
nothing lands there unless it tolerates the taint: sandbox pods do through the backend's
SANDBOX_K8S_NODE_SELECTOR and SANDBOX_K8S_TOLERATIONS settings (:data:`SETTINGS`).

Each fake node's pod CIDR is in 127.0.0.0/8: a fake pod's address is a loopback one, where no
agent listens, so a connection to its "agent" is refused at once instead of hanging on an
address nothing routes (the reconcile asks each ready sandbox's agent for its status).
"""

from __future__ import annotations

import collections
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from tests.services import ROOT, RUN_DIR, Service

ANNOTATION = "kwok.x-k8s.io/node"
LABEL = "broker-academy.org/simulated-node"
TAINT = {"key": ANNOTATION, "value": "fake", "effect": "NoSchedule"}
#: The backend's settings that send sandbox pods to the fake nodes (a real cluster's dedicated nodes alike).
SETTINGS = {"SANDBOX_K8S_NODE_SELECTOR": {LABEL: "true"}, "SANDBOX_K8S_TOLERATIONS": [f"{ANNOTATION}=fake:NoSchedule"]}
#: Room for every sandbox pod the simulation asks for (each requests 1536 Mi and one CPU by default).
CAPACITY = {"cpu": "1000", "memory": "1Ti", "pods": "110", "ephemeral-storage": "1Ti"}


def kwok_binary() -> str:
    """scripts/kwok-build.sh's kwok (built into the cache the first time, about two minutes)."""
    result = subprocess.run(
        [str(ROOT / "scripts" / "kwok-build.sh")], cwd=ROOT, capture_output=True, text=True, timeout=1800, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"scripts/kwok-build.sh failed:\n{result.stderr[-2000:]}")
    return result.stdout.split()[-1]


def node_manifest(name: str, index: int) -> dict[str, Any]:
    cidr = f"127.{70 + index // 256}.{index % 256}.0/24"
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {LABEL: "true", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"},
        },
        "spec": {"podCIDR": cidr, "podCIDRs": [cidr], "taints": [TAINT]},
        "status": {"capacity": CAPACITY, "allocatable": CAPACITY},
    }


class FakeNodes:
    """``count`` fake nodes and the kwok process behind them; a context manager that removes both."""

    def __init__(self, admin_kubeconfig: str, count: int, prefix: str = "kwok-sim") -> None:
        self.admin_kubeconfig, self.count = admin_kubeconfig, count
        self.names = [f"{prefix}-{i}" for i in range(count)]
        self.core: Any = client.CoreV1Api(config.new_client_from_config(config_file=admin_kubeconfig))
        self.kwok: Service | None = None

    def __enter__(self) -> FakeNodes:
        try:
            self.start()
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.remove()

    def start(self, timeout: float = 120) -> None:
        binary = kwok_binary()
        home = RUN_DIR / "kwok-home"  # kwok looks for ~/.kwok: a folder of this run, not root's
        home.mkdir(parents=True, exist_ok=True)
        argv = [binary, "--kubeconfig", self.admin_kubeconfig, "--config", str(Path(binary).with_name("kwok-stages.yaml"))]
        argv += ["--manage-all-nodes=false", f"--manage-nodes-with-annotation-selector={ANNOTATION}=fake"]
        argv += ["--node-ip=127.0.0.1", "--v=WARN"]
        self.kwok = Service("kwok", argv, env={"HOME": os.fspath(home)})
        for index, name in enumerate(self.names):
            try:
                self.core.create_node(node_manifest(name, index))
            except ApiException as exc:
                if exc.status != 409:  # left by an interrupted run: kwok takes it over all the same
                    raise
        deadline = time.monotonic() + timeout
        while len(self.ready()) < self.count:
            if not self.kwok.alive():
                raise RuntimeError(f"kwok exited:\n{self.kwok.tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.ready())} of {self.count} fake nodes Ready after {timeout} s")
            time.sleep(0.5)

    def ready(self) -> list[str]:
        nodes = self.core.list_node(label_selector=f"{LABEL}=true").items
        ready = [n for n in nodes if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])]
        return [n.metadata.name for n in ready if n.metadata.name in self.names]

    def remove(self, timeout: float = 60) -> None:
        """Delete the fake nodes (waiting until they are gone), then stop kwok."""
        for name in self.names:
            try:
                self.core.delete_node(name)
            except ApiException as exc:
                if exc.status != 404:
                    raise
        deadline = time.monotonic() + timeout
        while self.core.list_node(label_selector=f"{LABEL}=true").items and time.monotonic() < deadline:
            time.sleep(0.5)
        if self.kwok is not None:
            self.kwok.stop()


#: What RequestCount names a request after.
RESOURCES = ("pods", "secrets", "networkpolicies")


class RequestCount:
    """Every HTTP request one ApiClient sends, by verb and resource ("GET pods", "LIST pods", "WATCH pods")."""

    def __init__(self, api: client.ApiClient) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        rest, original = api.rest_client, api.rest_client.request

        def counted(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            parts = urlsplit(url)
            path = [p for p in parts.path.split("/") if p]
            resource = next((p for p in path if p in RESOURCES), "/".join(path[-1:]))
            kind = "LIST" if method == "GET" and path[-1:] == [resource] else method
            kind = "WATCH" if "watch=true" in parts.query.lower() else kind
            with self._lock:
                self.counts[f"{kind} {resource}"] += 1
            return original(method, url, *args, **kwargs)

        rest.request = counted  # type: ignore[method-assign]

    def take(self) -> collections.Counter[str]:
        """What was counted since the last take."""
        with self._lock:
            taken, self.counts = self.counts, collections.Counter()
        return taken
