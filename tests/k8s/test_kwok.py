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
from django.db import connections

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


@pytest.mark.django_db(transaction=True)
def test_a_reconcile_of_many_ready_sandboxes_lists_their_pods_once_instead_of_reading_each(sim_backend):
    from django.contrib.auth.models import User

    from sandboxes.models import Sandbox, State
    from sandboxes.services.lifecycle import unit_name
    from sandboxes.services.reconcile import sandboxes_reconcile

    learners = [User.objects.create_user(f"reconciled-{n}") for n in range(COUNT)]  # one active sandbox of a broker each
    sandboxes = [Sandbox.objects.create(user=user, broker="nats", state=State.READY) for user in learners]
    for sandbox in sandboxes:
        sandbox.unit = unit_name(sandbox)
        sandbox.save(update_fields=["unit"])
    with concurrent.futures.ThreadPoolExecutor(max_workers=10) as pool:
        list(pool.map(sim_backend.start, [UnitSpec(name=s.unit, broker="nats", owner=str(s.user_id)) for s in sandboxes]))
    requests = kwok.RequestCount(sim_backend.api)

    # In a thread of its own, as in the worker: after the browser tests, Playwright's loop runs in this one,
    # and reconcile's async_to_sync refuses to start inside a running loop.
    def reconcile():
        try:
            return sandboxes_reconcile()
        finally:
            connections.close_all()  # this thread's own connection, which nothing else would close

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        outcome = pool.submit(reconcile).result()
    counted = requests.take()
    # Every pod runs (kwok) and no agent answers on a fake node: nothing is stopped or failed.
    assert outcome == {"orphans": [], "gone": [], "stuck": [], "requeued": []}, outcome
    assert set(Sandbox.objects.values_list("state", flat=True)) == {State.READY}
    # list_units' three lists and one list of the pods for every ready sandbox; before, two reads a sandbox (40).
    assert sum(counted.values()) == 4, counted
