"""Kafka's configuration for one unit: server.properties from the site, and the loggers kept quiet."""

from __future__ import annotations

from sandboxes.brokers.base import Site

#: Loggers that repeat themselves at INFO on every start or every second.
QUIET_LOGGERS = (
    "kafka.server.KafkaConfig",
    "org.apache.kafka.common.config.AbstractConfig",
    "kafka.request.logger",
    "state.change.logger",
    "kafka.log.LogCleaner",
    "org.apache.kafka.storage.internals.log",
    "kafka.log",
    "org.apache.kafka.raft",
    "org.apache.kafka.metadata",
    "org.apache.kafka.image",
    "org.apache.kafka.coordinator",
)


def server_properties(site: Site) -> str:
    """The text of server.properties: one KRaft node, small, its storage under ``site.data_dir``."""
    return properties_text(server_settings(site))


def properties_text(properties: dict[str, str]) -> str:
    """``properties`` as the text of a .properties file, in their order."""
    text = "# Written by Broker Academy; rewritten on every start.\n"
    return text + "".join(f"{key}={value}\n" for key, value in properties.items())


def server_settings(site: Site) -> dict[str, str]:
    """The settings of one KRaft node, small, its storage under ``site.data_dir``: a cluster's nodes start from them."""
    ports, limits, host, bind = site.ports, site.limits, site.host, site.bind
    logs = site.data_dir / "kraft-logs"
    segment = 8 * 1024 * 1024
    properties = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{bind}:{ports['controller']}",
        "listeners": f"PLAINTEXT://{bind}:{ports['kafka']},CONTROLLER://{bind}:{ports['controller']}",
        "advertised.listeners": f"PLAINTEXT://{host}:{ports['kafka']}",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(logs),
        "num.partitions": "1",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        # One node: internal topics with one replica, and few partitions so that the
        # first group or transaction does not wait for fifty of them to be created.
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "share.coordinator.state.topic.num.partitions": "1",
        "group.initial.rebalance.delay.ms": "0",
        # Groups of the new protocol (KIP-848) and share groups (KIP-932) learn of their
        # assignment from heartbeats, every 5 s by default: a second keeps a join in a
        # cell visible within a breath rather than after most of the cell's run.
        "group.consumer.min.heartbeat.interval.ms": "500",
        "group.consumer.heartbeat.interval.ms": "1000",
        "group.share.min.heartbeat.interval.ms": "500",
        "group.share.heartbeat.interval.ms": "1000",
        "auto.create.topics.enable": "true",
        # Disk: small segments and a per-partition cap, checked often.
        "log.segment.bytes": str(segment),
        "log.retention.bytes": str(max(segment * 2, limits.disk_mb * 1024 * 1024 // 8)),
        "log.retention.check.interval.ms": "30000",
        "offsets.topic.segment.bytes": str(segment),
        "transaction.state.log.segment.bytes": str(segment),
        "share.coordinator.state.topic.segment.bytes": str(segment),
        "metadata.log.segment.bytes": str(segment),
        # Index files are made at their full size (sparse): 1 MiB holds a full segment's entries, not 10.
        "log.index.size.max.bytes": str(1024 * 1024),
        "log.cleaner.dedupe.buffer.size": str(8 * 1024 * 1024),  # default 128 MiB would not fit the heap
        "message.max.bytes": str(limits.max_message_bytes),
        "replica.fetch.max.bytes": str(limits.max_message_bytes),
        "max.connections": str(limits.max_connections),
        "num.network.threads": "2",
        "num.io.threads": "2",
        "background.threads": "2",
        "num.recovery.threads.per.data.dir": "1",
        "group.coordinator.threads": "1",
    }
    return properties
