"""The three-broker Kafka kind (6.2's replication section) as a Pod in the two-node lab, through the real worker.

The learner's steps of the chapter, on the kubernetes backend: a topic replicated on three brokers
takes acks=all writes; the partition's leader is stopped the way the chapter's cell stops it
(HTTP to the unit's supervisor, CLUSTER_CONTROL_URL), the ISR shrinks and the leadership moves,
writes still pass with two in sync; the broker comes back from the topology panel's button (the
service behind it, which asks the agent's ``node`` op over the pod network) and rejoins the ISR.
The pod's memory is the kind's (sandboxes/backends/unit_memory.py): three JVMs, the agent and the
cells inside it, never OOM-killed.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from sandboxes import agent_client
from sandboxes.backends import get_backend
from sandboxes.backends.base import AgentAddress
from sandboxes.backends.unit_memory import unit_memory
from sandboxes.models import Sandbox, State
from sandboxes.services import actions, provisioning
from sandboxes.services.nodes import sandbox_node_action
from tests.aio import run
from tests.brokers.test_kafka_cluster import CONTROL, broker_states, partition
from tests.k8s.lab import Lab, cgroup_memory, get_json, lab_images, leftovers, memory_mib, pod_cgroup
from tests.sandboxes.test_lifecycle import provision, run_cell
from tests.services import wait_for

pytestmark = [
    pytest.mark.k8s,
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(1200),
    pytest.mark.usefixtures("k8s_backend"),
]

KIND = "kafka-cluster"
TOPIC = "replicated-orders"

CREATE_TOPIC = f"""
import os
from kafka.admin import KafkaAdminClient, NewTopic
admin = KafkaAdminClient(bootstrap_servers=os.environ["BOOTSTRAP_SERVERS"])
admin.create_topics([NewTopic("{TOPIC}", 1, 3, topic_configs={{"min.insync.replicas": "2"}})])
admin.close()
print("created")
"""
#: acks=all, tried once a second for up to a minute: the leader may learn of a changed ISR a moment
#: after the snapshot shows it, and each try is refused or accepted at once (no retries).
PRODUCE_ACKS_ALL = f"""
import os, time
from kafka import KafkaProducer
from kafka.errors import KafkaError
producer = KafkaProducer(bootstrap_servers=os.environ["BOOTSTRAP_SERVERS"], acks="all", retries=0, request_timeout_ms=10000)
deadline = time.monotonic() + 60
while True:
    try:
        meta = producer.send("{TOPIC}", b"order").get(timeout=30)
        print("accepted", meta.offset)
        break
    except KafkaError as error:
        if time.monotonic() > deadline:
            print("refused", type(error).__name__)
            break
        time.sleep(1)
producer.close()
"""


@pytest.fixture(scope="module")
def images(lab: Lab) -> dict[str, str]:
    try:
        return lab_images(lab, [KIND])
    except RuntimeError as exc:
        pytest.fail(str(exc))


def snapshot_when(address: AgentAddress, predicate: Callable[[dict[str, Any]], bool], *, timeout: float) -> dict[str, Any]:
    """The first of the agent's snapshots (sent as the topology changes, over the pod network) that satisfies ``predicate``."""
    seen: list[dict[str, Any]] = []

    async def follow() -> dict[str, Any]:
        async for message in agent_client.subscribe(address):
            if message.get("type") == "snapshot":
                seen.append(message["data"])
                if predicate(message["data"]):
                    return message["data"]
        raise AssertionError("the agent closed its subscription")

    async def bounded() -> dict[str, Any]:
        return await asyncio.wait_for(follow(), timeout=timeout)

    try:
        return run(bounded())
    except TimeoutError:
        last = json.dumps(seen[-1] if seen else None)[:1500]
        pytest.fail(f"no snapshot as expected within {timeout:.0f} s; the last: {last}", pytrace=False)


def cell(sandbox: Sandbox, code: str) -> str:
    result, output = run_cell(sandbox, code, timeout=120)
    assert result["status"] == 0, output
    return output


def test_a_cluster_sandbox_pod_loses_its_leader_and_takes_it_back_with_acks_all_writes_passing(
    k8s_worker, lab: Lab, learner, units_cleanup
):
    started = time.monotonic()
    sandbox = provision(learner, KIND, timeout=300)
    print(f"\nk8s {KIND}: provisioned through the worker in {time.monotonic() - started:.1f} s")
    pod = get_json(lab, f"pod/{sandbox.unit}")
    memory = unit_memory(KIND)
    resources = pod["spec"]["containers"][0]["resources"]
    assert (memory_mib(resources, "requests"), memory_mib(resources, "limits")) == (memory.request_mb, memory.limit_mb)
    cgroup = pod_cgroup(lab, sandbox.unit)
    assert cgroup is not None, "the pod's cgroup is not found on this machine"
    address = provisioning.sandbox_socket(sandbox=sandbox)
    snapshot_when(address, lambda s: broker_states(s) == {1: True, 2: True, 3: True}, timeout=120)
    print(f"k8s {KIND}: three brokers up, the pod holds {cgroup_memory(cgroup)[0]} MiB")

    assert "created" in cell(sandbox, CREATE_TOPIC)
    first = snapshot_when(address, lambda s: (p := partition(s, TOPIC)) is not None and len(p["isr"]) == 3, timeout=60)
    assert sorted(partition(first, TOPIC)["replicas"]) == [1, 2, 3]
    assert "accepted" in cell(sandbox, PRODUCE_ACKS_ALL)

    # The leader stops, as the chapter's cell stops it: it leaves the ISR and another broker leads.
    leader = partition(first, TOPIC)["leader"]
    answer = json.loads(cell(sandbox, CONTROL % (leader, "stop")))
    assert {b["id"]: b["state"] for b in answer["brokers"]}[leader] == "stopped"
    shrunk = snapshot_when(
        address,
        lambda s: (p := partition(s, TOPIC)) is not None and leader not in p["isr"] and p["leader"] not in (leader, -1, None),
        timeout=60,
    )
    assert len(partition(shrunk, TOPIC)["isr"]) == 2
    assert broker_states(shrunk)[leader] is False
    print(
        f"k8s {KIND}: broker {leader} stopped, leader now {partition(shrunk, TOPIC)['leader']}, ISR {partition(shrunk, TOPIC)['isr']}"
    )
    assert "accepted" in cell(sandbox, PRODUCE_ACKS_ALL)  # two in sync: min.insync.replicas=2 holds

    # It comes back from the topology panel's button: the service asks the agent, in the pod, to start it.
    reply = run(sandbox_node_action(user_id=learner.pk, broker=KIND, node=leader, action="start"))
    assert any(b["id"] == leader for b in reply["brokers"]), reply
    grown = snapshot_when(address, lambda s: (p := partition(s, TOPIC)) is not None and len(p["isr"]) == 3, timeout=120)
    assert broker_states(grown) == {1: True, 2: True, 3: True}
    assert "accepted" in cell(sandbox, PRODUCE_ACKS_ALL)

    # Three JVMs, the agent and the cells fit the kind's memory: the kernel killed nothing in the pod.
    resident, oom_kills = cgroup_memory(cgroup)
    print(f"k8s {KIND}: after the lesson the pod holds {resident} MiB of its {memory.limit_mb} MiB wall")
    assert oom_kills == 0, f"{oom_kills} processes of the pod were killed at its memory wall"
    status = get_json(lab, f"pod/{sandbox.unit}")["status"]
    container = status["containerStatuses"][0]
    assert status["phase"] == "Running" and container["restartCount"] == 0, container

    actions.sandbox_stop(user_id=learner.pk, broker=KIND)
    wait_for(
        lambda: Sandbox.objects.get(pk=sandbox.pk).state == State.STOPPED, timeout=120, what="the sandbox stopped", interval=0.2
    )
    assert leftovers(lab, sandbox.unit) == []
    assert sandbox.unit not in get_backend().list_units()
