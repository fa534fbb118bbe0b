"""The Kafka clients the tap and the snapshot read with, and the topology the side panel shows."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from sandboxes.brokers.kafka import groups as modern_groups

logger = logging.getLogger(__name__)

INTERNAL_TOPICS = frozenset({"__consumer_offsets", "__transaction_state", "__share_group_state"})
TAP_CLIENT = "broker-academy-tap"
MAX_PER_STEP = 500  # records shown one by one when a group's offset jumps; beyond, one summary event


def offset_groups(listed: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """{group: its ListGroups row} for the groups that commit offsets (all but share groups)."""
    return {g["group_id"]: g for g in listed if g.get("group_type") != "share"}


class Clients:
    """One group-less consumer and one admin client, used from a single thread."""

    def __init__(self, bootstrap: str, *, role: str) -> None:
        from kafka import (  # imported here: the platform side never needs them
            KafkaAdminClient,
            KafkaConsumer,
        )

        common = {
            "bootstrap_servers": bootstrap,
            "client_id": f"{TAP_CLIENT}-{role}",
            "request_timeout_ms": 5000,
        }
        self.consumer = KafkaConsumer(
            **common,
            group_id=None,
            enable_auto_commit=False,
            # Watching must change nothing: asking about a topic the learner just deleted would
            # otherwise make the broker create it again.
            allow_auto_create_topics=False,
            metadata_max_age_ms=1000,
            fetch_max_wait_ms=100,
            max_poll_records=MAX_PER_STEP,
            # Records of open and aborted transactions are shown as produced: they are in the log.
            isolation_level="read_uncommitted",
        )
        never_create_topics(self.consumer)
        self.admin = KafkaAdminClient(**common)
        # What kafka-python cannot describe (KIP-848 groups), asked of confluent_kafka's admin.
        self.modern = modern_groups.ModernGroups(bootstrap, client_id=f"{TAP_CLIENT}-{role}")

    def close(self) -> None:
        for client in (self.consumer, self.admin):
            # Closing a half-broken client may fail; there is nothing left to do then.
            with contextlib.suppress(Exception):
                client.close()

    def partitions(self) -> set[Any]:
        from kafka import TopicPartition

        found = set()
        for topic in self.consumer.topics():
            if topic in INTERNAL_TOPICS:
                continue
            for partition in self.consumer.partitions_for_topic(topic) or ():
                found.add(TopicPartition(topic, partition))
        return found

    def groups(self) -> dict[str, dict[str, Any]]:
        """Every group the broker knows: {group: its ListGroups row (group_state, group_type, protocol_type)}.

        Share groups (KIP-932) are left out: they commit no offsets, so the tap has nothing of theirs to show yet.
        """
        return offset_groups(self.admin.list_groups())

    def committed(self, group_ids: list[str] | None = None) -> dict[str, dict[Any, int] | None]:
        """Committed offsets of every consumer group (or of ``group_ids``): {group: {TopicPartition: offset}}.

        A group that exists but cannot be read right now maps to None.
        """
        from kafka.errors import KafkaError

        out: dict[str, dict[Any, int] | None] = {}
        for group_id in self.groups() if group_ids is None else group_ids:
            try:
                # One group per request: one group's error must not hide the others' offsets.
                offsets = self.admin.list_group_offsets(group_id).get(group_id, {})
            except KafkaError as exc:
                # A group being loaded or rebalanced answers later; skip it this round.
                logger.debug("kafka: offsets of group %s not readable now: %r", group_id, exc)
                out[group_id] = None
                continue
            out[group_id] = {
                tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0 and tp.topic not in INTERNAL_TOPICS
            }
        return out


def never_create_topics(consumer: Any) -> None:
    """Make ``consumer``'s metadata requests ask the broker not to create the topics they name.

    kafka-python 3.0.12 accepts ``allow_auto_create_topics=False`` but builds its cluster
    metadata without it, so every refresh of an assigned topic the learner just deleted
    would create it again (the broker's ``auto.create.topics.enable`` is on, as learners
    expect). The option is set where the requests are built until the client passes it on.
    """
    cluster = getattr(consumer, "_cluster", None)
    if cluster is not None and "allow_auto_create_topics" in getattr(cluster, "config", {}):
        cluster.config["allow_auto_create_topics"] = False


def topology(clients: Clients) -> dict[str, Any]:
    """Topics with their partitions' offsets, and consumer groups as kafka-ui shows them.

    A group carries its state (Stable, Empty, PreparingRebalance...), its members
    (client id, host, assigned partitions) and one row per partition it has
    committed or been assigned: ``committed`` (the next offset the group will
    read), ``end_offset`` (the log end) and ``lag`` (their difference).
    """
    partitions = clients.partitions()
    ends = clients.consumer.end_offsets(list(partitions)) if partitions else {}
    starts = clients.consumer.beginning_offsets(list(partitions)) if partitions else {}
    topics: dict[str, list[dict[str, int]]] = {}
    for tp in sorted(partitions, key=lambda tp: (tp.topic, tp.partition)):
        topics.setdefault(tp.topic, []).append(
            {
                "partition": tp.partition,
                "start_offset": starts.get(tp, 0),
                "high_watermark": ends.get(tp, 0),
            }
        )
    every = clients.admin.list_groups()  # one ListGroups for both kinds of group below
    listed = offset_groups(every)
    # A group whose offsets cannot be read this round is left out rather than shown empty.
    committed = {g: o for g, o in clients.committed(list(listed)).items() if o is not None}
    described = _describe_groups(clients, list(committed))
    new_protocol = [g for g in committed if g not in described and listed[g].get("group_type") == "consumer"]
    described.update(clients.modern.describe(new_protocol))
    groups = []
    for group_id in sorted(committed):
        info = described.get(group_id)
        members, owner = _members(info)
        rows = []
        for tp in sorted(set(committed[group_id]) | set(owner), key=lambda tp: (tp.topic, tp.partition)):
            offset = committed[group_id].get(tp)
            end = ends.get(tp)
            rows.append(
                {
                    "topic": tp.topic,
                    "partition": tp.partition,
                    "committed": offset,
                    "end_offset": end,
                    "lag": None if end is None or offset is None else max(0, end - offset),
                    "member": owner.get(tp),
                }
            )
        groups.append(
            {
                "group": group_id,
                "type": listed[group_id].get("group_type") or "classic",
                # A KIP-848 group (group.protocol=consumer) is not described by the classic
                # DescribeGroups, but ListGroups still tells its state.
                "state": (info or {}).get("group_state") or listed[group_id].get("group_state") or "Unknown",
                "protocol": (info or {}).get("protocol_data") or None,
                "members": members,
                "offsets": rows,
            }
        )
    groups += modern_groups.share_groups(every)
    return {
        "broker": "kafka",
        "topics": [{"name": name, "partitions": rows} for name, rows in topics.items()],
        "groups": groups,
    }


def _describe_groups(clients: Clients, group_ids: list[str]) -> dict[str, dict[str, Any]]:
    """{group: DescribeGroups result as a dict}; a group the coordinator cannot describe right now is missing.

    kafka-python 3 describes classic groups only: a KIP-848 group answers with an error and is missing too.
    """
    from kafka.errors import KafkaError

    out = {}
    for group_id in group_ids:
        try:
            info = clients.admin.describe_groups([group_id]).get(group_id)
        except (KafkaError, ValueError) as exc:
            logger.debug("kafka: group %s not describable now: %r", group_id, exc)
            continue
        if info is None or info.get("error"):
            logger.debug("kafka: group %s not describable now: %s", group_id, info and info.get("error"))
            continue
        out[group_id] = info
    return out


def _members(info: dict[str, Any] | None) -> tuple[list[dict[str, Any]], dict[Any, str]]:
    """The members of a described group, and who owns each assigned partition (by client id)."""
    from kafka import TopicPartition

    members: list[dict[str, Any]] = []
    owner: dict[Any, str] = {}
    for member in (info or {}).get("members") or ():
        # Between a join and its assignment, or in a group that is no consumer group, the
        # assignment is not decoded (empty, or the raw bytes) and there is nothing to show.
        decoded = member.get("member_assignment")
        topics = (decoded.get("assigned_partitions") or ()) if isinstance(decoded, dict) else ()
        assigned = sorted(
            (
                TopicPartition(topic["topic"], partition)
                for topic in topics
                if topic["topic"] not in INTERNAL_TOPICS
                for partition in topic["partitions"]
            ),
            key=lambda tp: (tp.topic, tp.partition),
        )
        members.append(
            {
                "member_id": member["member_id"],
                "client_id": member["client_id"],
                "host": (member.get("client_host") or "").lstrip("/"),
                "partitions": [{"topic": tp.topic, "partition": tp.partition} for tp in assigned],
            }
        )
        for tp in assigned:
            owner[tp] = member["client_id"]
    members.sort(key=lambda m: (m["client_id"], m["member_id"]))
    return members, owner
