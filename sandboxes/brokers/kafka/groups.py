"""What the Kafka tap learns about groups that kafka-python cannot describe: KIP-848 groups and share groups.

kafka-python 3.0 describes classic groups only, so a group of the new protocol
(``group.protocol=consumer``) showed its state but no members. confluent_kafka's
admin describes both kinds; its answer is turned into the shape of kafka-python's
DescribeGroups result, so the tap reads members and assignments in one way.
Share groups (KIP-932) commit no offsets and neither client describes their
members yet: they are listed with their state only.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)

DESCRIBE_TIMEOUT_S = 5.0


class ModernGroups:
    """One confluent_kafka admin client for the tap's snapshot thread; made on first use."""

    def __init__(self, bootstrap: str, *, client_id: str) -> None:
        self._config: dict[str, str | int | float | bool] = {
            "bootstrap.servers": bootstrap,
            "client.id": client_id,
            "log_level": 3,
        }
        self._admin: Any = None

    def describe(self, group_ids: list[str]) -> dict[str, dict[str, Any]]:
        """{group: a DescribeGroups-shaped dict} for the KIP-848 groups in ``group_ids``; one not describable now is missing."""
        if not group_ids:
            return {}
        from confluent_kafka import KafkaException

        if self._admin is None:
            from confluent_kafka.admin import AdminClient

            self._admin = AdminClient(self._config)
        out = {}
        futures = self._admin.describe_consumer_groups(group_ids, request_timeout=DESCRIBE_TIMEOUT_S)
        for group_id, future in futures.items():
            try:
                out[group_id] = describe_groups_shape(future.result(timeout=DESCRIBE_TIMEOUT_S))
            except (KafkaException, TimeoutError) as exc:
                logger.debug("kafka: group %s not describable now: %r", group_id, exc)
        return out


def describe_groups_shape(description: Any) -> dict[str, Any]:
    """A confluent_kafka ``ConsumerGroupDescription`` as the dict kafka-python's ``describe_groups`` gives.

    The state is left out: ListGroups names the new protocol's states (Assigning,
    Reconciling), which confluent_kafka 2.16 reports as UNKNOWN.
    """

    def assigned(assignment: Any) -> dict[str, Any]:
        by_topic: dict[str, list[int]] = {}
        for tp in getattr(assignment, "topic_partitions", None) or ():
            by_topic.setdefault(tp.topic, []).append(tp.partition)
        return {"assigned_partitions": [{"topic": t, "partitions": sorted(p)} for t, p in sorted(by_topic.items())]}

    return {
        "group": description.group_id,
        "protocol_data": None,
        "members": [
            {
                "member_id": member.member_id,
                "client_id": member.client_id,
                "client_host": member.host,
                "member_assignment": assigned(member.assignment),
                "target_assignment": assigned(member.target_assignment),
            }
            for member in description.members
        ],
    }


def share_groups(listed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Topology entries for the share groups in a ListGroups answer: name, state, no members or offsets."""
    return [
        {
            "group": g["group_id"],
            "type": "share",
            "state": g.get("group_state") or "Unknown",
            "protocol": None,
            "members": [],
            "offsets": [],
        }
        for g in sorted(listed, key=lambda g: g["group_id"])
        if g.get("group_type") == "share"
    ]
