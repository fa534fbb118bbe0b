"""Kafka as three KRaft nodes in one unit: a stopped broker leaves the ISR, acks=all is refused below
min.insync.replicas, and a restarted broker brings the partition back; the snapshot shows it all.

One unit for the module (three JVMs start in ~20-40 s on a busy machine). A broker is stopped the way
a learner's cell does it (HTTP to the unit's supervisor, CLUSTER_CONTROL_URL) and started the way the
topology panel's button does it (the agent's ``node`` op).
"""

from __future__ import annotations

import json

import pytest

from sandboxes import agent_client
from sandboxes.agent import protocol
from tests.aio import run

pytestmark = pytest.mark.integration
KIND = "kafka-cluster"
TOPIC = "replicated-payments"

#: One acks=all write, refused at once: no retry hides the broker's answer.
PRODUCE_ONCE = """
import os
from kafka import KafkaProducer
from kafka.errors import KafkaError
producer = KafkaProducer(bootstrap_servers=os.environ["BOOTSTRAP_SERVERS"], acks="all", retries=0, request_timeout_ms=10000)
try:
    meta = producer.send("replicated-payments", b"payment").get(timeout=30)
    print("accepted", meta.offset)
except KafkaError as error:
    print("refused", type(error).__name__)
producer.close()
"""
#: Where a write must pass: the leader may learn of a grown ISR a moment after the snapshot shows it,
#: so the cell tries again (once a second, each try refused or accepted at once) for up to a minute.
PRODUCE_UNTIL_ACCEPTED = """
import os, time
from kafka import KafkaProducer
from kafka.errors import NotEnoughReplicasError
producer = KafkaProducer(bootstrap_servers=os.environ["BOOTSTRAP_SERVERS"], acks="all", retries=0, request_timeout_ms=10000)
deadline = time.monotonic() + 60
for attempt in range(1, 1000):
    try:
        meta = producer.send("replicated-payments", b"payment").get(timeout=30)
        print("accepted", meta.offset, "after", attempt, "tries")
        break
    except NotEnoughReplicasError:
        if time.monotonic() > deadline:
            print("refused NotEnoughReplicasError for a minute")
            break
        time.sleep(1)
producer.close()
"""

CONTROL = """
import json, os, urllib.request
request = urllib.request.Request(os.environ["CLUSTER_CONTROL_URL"] + "/brokers/%d/%s", method="POST")
with urllib.request.urlopen(request, timeout=60) as answer:
    print(json.dumps(json.load(answer)))
"""


def partition(snapshot, topic=TOPIC):
    for t in snapshot.get("topics", ()):
        if t["name"] == topic:
            return t["partitions"][0]
    return None


def broker_states(snapshot):
    return {b["id"]: b["up"] for b in snapshot.get("brokers", ())}


def test_starts_three_brokers_with_both_addresses(broker):
    assert broker.env == {
        "BOOTSTRAP_SERVERS": "localhost:9092,localhost:9094,localhost:9096",
        "CLUSTER_CONTROL_URL": "http://localhost:9080",
    }
    snap = broker.snapshot(lambda s: broker_states(s) == {1: True, 2: True, 3: True}, timeout=30)
    print(f"\nkafka-cluster: ready in {broker.ready_s:.1f} s, three brokers' RSS {broker.rss_mb():.0f} MiB")
    assert snap["broker"] == "kafka-cluster"


def test_stopped_broker_shrinks_isr_refuses_acks_all_and_recovers(broker):
    broker.cell(
        f"""
        import os
        from kafka.admin import KafkaAdminClient, NewTopic
        admin = KafkaAdminClient(bootstrap_servers=os.environ["BOOTSTRAP_SERVERS"])
        admin.create_topics([NewTopic("{TOPIC}", 1, 3, topic_configs={{"min.insync.replicas": "2"}})])
        admin.close()
        """
    )
    first = broker.snapshot(lambda s: (p := partition(s)) is not None and len(p["isr"]) == 3, timeout=30)
    assert sorted(partition(first)["replicas"]) == [1, 2, 3]
    assert "accepted" in broker.cell(PRODUCE_UNTIL_ACCEPTED)

    # Broker 2 stops, as a cell stops it: it leaves the ISR and the cluster, and the panel says so.
    stopped = json.loads(broker.cell(CONTROL % (2, "stop")))
    assert {b["id"]: b["state"] for b in stopped["brokers"]}[2] == "stopped"
    shrunk = broker.snapshot(lambda s: (p := partition(s)) is not None and p["isr"] == [1, 3], timeout=30)
    assert broker_states(shrunk) == {1: True, 2: False, 3: True}
    assert partition(shrunk)["leader"] in (1, 3)
    assert "accepted" in broker.cell(PRODUCE_UNTIL_ACCEPTED)  # two in sync: min.insync.replicas=2 still holds

    # A second broker stops: one replica in sync, fewer than min.insync.replicas, and acks=all is refused.
    other = 3 if partition(shrunk)["leader"] == 1 else 1
    broker.cell(CONTROL % (other, "stop"))
    alone = broker.snapshot(lambda s: (p := partition(s)) is not None and len(p["isr"]) == 1, timeout=30)
    assert sum(broker_states(alone).values()) == 1
    assert "refused NotEnoughReplicasError" in broker.cell(PRODUCE_ONCE)

    # The last running broker stays up: the supervisor refuses to stop it.
    last = partition(alone)["leader"]
    refused = run(agent_client.node(broker.unit / protocol.SOCKET_NAME, node=last, action="stop"))
    assert refused.get("code") == "refused", refused

    # Broker 2 comes back from the panel's button (the agent's op): the ISR grows and acks=all is accepted again.
    started = run(agent_client.node(broker.unit / protocol.SOCKET_NAME, node=2, action="start"))
    assert started.get("ok"), started
    grown = broker.snapshot(lambda s: (p := partition(s)) is not None and 2 in p["isr"] and len(p["isr"]) >= 2, timeout=90)
    assert broker_states(grown)[2] is True
    assert "accepted" in broker.cell(PRODUCE_UNTIL_ACCEPTED)
    run(agent_client.node(broker.unit / protocol.SOCKET_NAME, node=other, action="start"))
    broker.snapshot(lambda s: (p := partition(s)) is not None and len(p["isr"]) == 3, timeout=90)
