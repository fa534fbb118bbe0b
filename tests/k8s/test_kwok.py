"""The Kubernetes backend with many sandboxes at once, on fake nodes (kwok) of the lab: the control plane only.

20 sandboxes started together over 3 fake nodes: every pod lands on a fake node (the backend's
node selector and tolerations, which a real cluster's dedicated nodes use alike), list_units
names all of them, and stopping them leaves no object behind. The fake pods run nothing: no
agent answers (bench/k8s_sim.py measures the same at 1,000). Named to run before test_lab.py,
whose last tests take the lab down.
"""

from __future__ import annotations

import concurrent.futures
import json
from collections.abc import Iterator

import pytest
from django.conf import settings as django_settings

from sandboxes.backends import get_backend
from sandboxes.backends.base import UnitSpec
from sandboxes.backends.kubernetes import LABEL_INSTANCE
from tests.k8s import kwok
from tests.k8s.lab import Lab

pytestmark = [pytest.mark.k8s, pytest.mark.integration, pytest.mark.timeout(300)]

COUNT, NODES = 20, 3


@pytest.fixture
def fake_nodes(lab: Lab) -> Iterator[kwok.FakeNodes]:
    with kwok.FakeNodes(lab.env["K8S_LAB_ADMIN_KUBECONFIG"], NODES, prefix="kwok-test") as fleet:
        yield fleet
    assert lab.kubectl("get", "nodes", "-l", f"{kwok.LABEL}=true", "-o", "name").split() == []


@pytest.fixture
def sim_backend(settings, lab: Lab, fake_nodes: kwok.FakeNodes) -> Iterator:
    settings.SANDBOX_BACKEND = "sandboxes.backends.kubernetes.KubernetesBackend"
    settings.SANDBOX_K8S_KUBECONFIG = lab.env["K8S_LAB_PLATFORM_KUBECONFIG"]
    settings.SANDBOX_K8S_NAMESPACE = lab.namespace
    for name, value in kwok.SETTINGS.items():
        setattr(settings, name, value)
    backend = get_backend()
    yield backend
    for name in backend.list_units():  # whatever a failure left
        backend.stop(name)


def test_sandboxes_started_together_land_on_the_fake_nodes_and_stop_without_leftovers(sim_backend, lab: Lab, fake_nodes):
    names = [f"{django_settings.SANDBOX_INSTANCE}-{9000 + i}" for i in range(COUNT)]
    specs = [UnitSpec(name=name, broker="nats", owner="1") for name in names]
    with concurrent.futures.ThreadPoolExecutor(max_workers=10) as pool:
        list(pool.map(sim_backend.start, specs))

    selector = f"{LABEL_INSTANCE}={django_settings.SANDBOX_INSTANCE}"
    pods = json.loads(lab.kubectl("-n", lab.namespace, "get", "pods", "-l", selector, "-o", "json"))["items"]
    placed = {p["metadata"]["name"]: p["spec"].get("nodeName") for p in pods}
    assert sorted(placed) == sorted(names)
    assert set(placed.values()) <= set(fake_nodes.names), placed
    assert all(p["status"]["phase"] == "Running" for p in pods)
    assert sorted(sim_backend.list_units()) == sorted(names)
    assert all(sim_backend.poll(name) is None for name in names)

    with concurrent.futures.ThreadPoolExecutor(max_workers=10) as pool:
        list(pool.map(sim_backend.stop, names))
    assert sim_backend.list_units() == []
    left = lab.kubectl("-n", lab.namespace, "get", "pods,secrets,networkpolicies", "-l", selector, "-o", "name").split()
    assert left == []
