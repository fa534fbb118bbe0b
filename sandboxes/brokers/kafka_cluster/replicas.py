"""What the cluster's snapshot adds to a Kafka topology: per partition its leader, replicas and ISR, and which brokers are down."""

from __future__ import annotations

from typing import Any

from sandboxes.brokers.kafka.clients import INTERNAL_TOPICS, Clients


def replication(clients: Clients, data: dict[str, Any], *, nodes: list[dict[str, Any]]) -> dict[str, Any]:
    """``data`` (a Kafka topology) with ``leader``, ``replicas``, ``isr`` and ``offline`` on each partition, and ``brokers``.

    ``state`` is what the unit's supervisor says of a broker's process (running, starting,
    stopping, stopped); a broker is ``up`` when it runs and the cluster lists it unfenced
    (a stopped broker stays listed, unfenced, until its session times out).
    Leader -1 means the partition has no leader now (no replica of its ISR is up).
    """
    described = {t["name"]: t for t in clients.admin.describe_topics() if t["name"] not in INTERNAL_TOPICS}
    cluster = clients.admin.describe_cluster()
    # DescribeCluster lists fenced brokers too (a stopped one stays registered): they are down.
    alive = {b["broker_id"] for b in cluster.get("brokers") or () if not b.get("is_fenced")}
    for topic in data["topics"]:
        rows = {p["partition_index"]: p for p in (described.get(topic["name"]) or {}).get("partitions") or ()}
        for partition in topic["partitions"]:
            row = rows.get(partition["partition"]) or {}
            partition["leader"] = row.get("leader_id", -1)
            partition["replicas"] = list(row.get("replica_nodes") or ())
            partition["isr"] = sorted(row.get("isr_nodes") or ())
            partition["offline"] = sorted(row.get("offline_replicas") or ())
    data["broker"] = "kafka-cluster"
    data["controller"] = cluster.get("controller_id")
    data["brokers"] = [{**node, "up": node["state"] == "running" and node["id"] in alive} for node in nodes]
    return data
