"""Apache Kafka 4 in KRaft mode: one process that is both broker and controller.

The jars come from Maven Central (scripts/fetch-jars.sh kafka), found through
``KAFKA_LIBS``, ``KAFKA_HOME/libs`` or the Broker Academy cache; the version is
pinned in :mod:`sandboxes.brokers.versions`. The broker speaks both consumer
group protocols (classic, and KIP-848's ``group.protocol=consumer``) and serves
share groups (KIP-932): a cluster formatted by Kafka 4.4 finalizes ``group.version=1``
and ``share.version=2`` by default, so no flag turns them on (and the
``group.coordinator.rebalance.protocols`` setting is deprecated since 4.4). The tap reads
every topic from its end with no consumer group, and follows the committed
offsets of every group: a commit that moves a group from A to B shows records
A..B-1 as consumed by that group.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import socket
import struct
import subprocess
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from sandboxes.brokers import kafka_groups, versions
from sandboxes.brokers.base import (
    BASE_ENV,
    Backoff,
    BrokerKind,
    BrokerLimits,
    BrokerUnavailable,
    Emit,
    LaunchSpec,
    java_binary,
    missing_client,
    missing_java,
)
from sandboxes.events import Event

logger = logging.getLogger(__name__)

VERSION = versions.version("kafka")
CORE_JAR = f"kafka_2.13-{VERSION}.jar"
INTERNAL_TOPICS = frozenset({"__consumer_offsets", "__transaction_state", "__share_group_state"})
TAP_CLIENT = "broker-academy-tap"
DISCOVER_S = 1.0  # how often new topics and partitions are looked for
GROUPS_S = 0.5  # how often committed offsets are read
MAX_PER_STEP = 500  # records shown one by one when a group's offset jumps; beyond, one summary event
# When the tap falls this far behind a partition's end it jumps ahead, keeping the last CATCH_UP_KEEP
# records, and reports what it passed over: the panel stays live, and nothing goes uncounted.
MAX_BEHIND = 3000
CATCH_UP_KEEP = 200
LAG_CHECK_S = 0.5

# Fast start for a small single-node broker: the serial collector and C1 only, class
# data sharing on. Measured on 2 cores: launch to ready in about 3 s.
_JVM_FLAGS = (
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Xshare:auto",
    "-Xss512k",
    "-Djava.awt.headless=true",
)

# Kafka 4 logs through Log4j 2 (KIP-653); its properties format needs no extra jar.
_LOG4J2 = """# Written by Broker Academy: the broker logs to stdout, which the agent keeps.
status = warn
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
""" + "".join(
    f"logger.q{i}.name = {name}\nlogger.q{i}.level = WARN\n"
    for i, name in enumerate(
        (
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
    )
)


def kafka_libs() -> Path:
    """The folder holding Kafka's jars: ``KAFKA_LIBS``, else ``KAFKA_HOME/libs``, else the cache of fetch-kafka.sh."""
    if os.environ.get("KAFKA_LIBS"):
        return Path(os.environ["KAFKA_LIBS"])
    if os.environ.get("KAFKA_HOME"):
        return Path(os.environ["KAFKA_HOME"]) / "libs"
    return versions.home("kafka") / "libs"


class Kafka(BrokerKind):
    name = "kafka"
    title = "Apache Kafka"
    default_ports: ClassVar[dict[str, int]] = {"kafka": 9092, "controller": 9093}

    def __init__(self) -> None:
        self._snapshot_lock = threading.Lock()
        self._snapshot_clients: dict[tuple[str, int], _Clients] = {}

    def missing(self) -> list[str]:
        problems = []
        libs = kafka_libs()
        if not (libs / CORE_JAR).exists():
            problems.append(
                f"Kafka {VERSION} jars not found in {libs}: run scripts/fetch-jars.sh kafka (needs maven), "
                "or set KAFKA_LIBS to a folder with them"
            )
        elif not any(libs.glob("log4j-slf4j-impl-*.jar")):
            problems.append(f"no slf4j binding in {libs}: the broker would log nothing; rerun scripts/fetch-jars.sh kafka")
        problems += missing_java()
        problems += missing_client("kafka", "kafka-python")
        return problems

    def prepare(
        self,
        *,
        data_dir: Path,
        ports: Mapping[str, int],
        limits: BrokerLimits,
        host: str = "localhost",
        bind: str = "127.0.0.1",
    ) -> None:
        logs = data_dir / "kraft-logs"
        logs.mkdir(parents=True, exist_ok=True)
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
        text = "# Written by Broker Academy; rewritten on every start.\n"
        text += "".join(f"{key}={value}\n" for key, value in properties.items())
        (data_dir / "server.properties").write_text(text)
        (data_dir / "log4j2.properties").write_text(_LOG4J2)
        if not (logs / "meta.properties").exists():
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
            result = subprocess.run(
                [
                    *self._java_argv(data_dir, heap_mb=128),
                    "kafka.tools.StorageTool",
                    "format",
                    # One argument, not two: an id may start with "-" (1 in 32), which argparse takes for an option.
                    f"--cluster-id={cluster_id}",
                    "-c",
                    str(data_dir / "server.properties"),
                ],
                env=dict(BASE_ENV),
                cwd=str(data_dir),
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            if result.returncode != 0:
                raise RuntimeError(f"kafka storage format failed: {(result.stderr or result.stdout)[-2000:]}")

    def launch(
        self,
        *,
        data_dir: Path,
        ports: Mapping[str, int],
        limits: BrokerLimits,
        host: str = "localhost",
        bind: str = "127.0.0.1",
    ) -> LaunchSpec:
        argv = (
            *self._java_argv(data_dir, heap_mb=limits.heap_mb),
            "kafka.Kafka",
            str(data_dir / "server.properties"),
        )
        return LaunchSpec(argv=argv, env=dict(BASE_ENV), cwd=str(data_dir), stop_timeout=15.0)

    def _java_argv(self, data_dir: Path, *, heap_mb: int) -> list[str]:
        return [
            java_binary() or "java",
            f"-Xmx{heap_mb}m",
            "-Xms32m",
            "-XX:MaxDirectMemorySize=64m",
            "-XX:MaxMetaspaceSize=128m",
            *_JVM_FLAGS,
            f"-Djava.io.tmpdir={data_dir}",
            f"-Dkafka.logs.dir={data_dir}",
            "-Dlog4j2.configurationFile=" + str(data_dir / "log4j2.properties"),
            "-cp",
            str(kafka_libs() / "*"),
        ]

    def probe_ready(self, *, host: str, ports: Mapping[str, int]) -> bool:
        # A broker lists itself in metadata only once it is unfenced and serving.
        try:
            return _metadata_brokers(host, ports["kafka"], timeout=0.5) > 0
        except (OSError, struct.error, ValueError):
            return False

    def connection_env(self, *, host: str, ports: Mapping[str, int]) -> dict[str, str]:
        return {"BOOTSTRAP_SERVERS": f"{host}:{ports['kafka']}"}

    def broker_version(self, *, host: str, ports: Mapping[str, int]) -> str | None:
        # Kafka's protocol carries no software version; the highest metadata.version the broker
        # supports names its release line (4.4-IV2 is Kafka 4.4), which is what it can say.
        try:
            supported = _supported_features(host, ports["kafka"], timeout=1.0)
        except (OSError, struct.error, ValueError, IndexError):
            return None
        level = supported.get("metadata.version", (0, -1))[1]
        return metadata_release(level)

    def tap(self, *, host: str, ports: Mapping[str, int], emit: Emit, stop: threading.Event) -> None:
        backoff = Backoff(stop)
        while not stop.is_set():
            try:
                _Tap(f"{host}:{ports['kafka']}", emit, stop).run()
            except Exception as exc:
                logger.debug("kafka tap: restarting after: %r", exc)
                if backoff.wait():
                    return
            else:
                return

    def snapshot(self, *, host: str, ports: Mapping[str, int]) -> dict[str, Any]:
        key = (host, ports["kafka"])
        with self._snapshot_lock:
            clients = self._snapshot_clients.get(key)
            try:
                if clients is None:
                    clients = self._snapshot_clients[key] = _Clients(f"{host}:{ports['kafka']}", role="snapshot")
                return _topology(clients)
            except Exception as exc:
                self._snapshot_clients.pop(key, None)
                if clients is not None:
                    clients.close()
                raise BrokerUnavailable(f"Kafka at {host}:{ports['kafka']}: {exc!r}") from exc


def _metadata_brokers(host: str, port: int, *, timeout: float) -> int:
    """Send a Metadata v1 request for no topics and return how many brokers answer."""
    client = b"ba-probe"
    body = struct.pack(">hhih", 3, 1, 1, len(client)) + client + struct.pack(">i", 0)
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(struct.pack(">i", len(body)) + body)
        head = _recv_exact(sock, 4)
        (size,) = struct.unpack(">i", head)
        reply = _recv_exact(sock, size)
    _correlation, brokers = struct.unpack_from(">ii", reply, 0)
    return brokers


#: The first metadata.version feature level of each Kafka release (MetadataVersion in
#: kafka-server-common): levels are never renumbered, so the table only grows. A release
#: newer than the table reports no version, which the version test catches.
_METADATA_RELEASES = (
    (7, "3.3"),
    (8, "3.4"),
    (9, "3.5"),
    (12, "3.6"),
    (15, "3.7"),
    (20, "3.8"),
    (21, "3.9"),
    (22, "4.0"),
    (26, "4.1"),
    (28, "4.2"),
    (30, "4.3"),
    (31, "4.4"),
    (34, None),  # 4.5's first level, unreleased when 4.4 was pinned
)


def metadata_release(level: int) -> str | None:
    """The Kafka release whose metadata.version levels include ``level``, or None when the table does not know it."""
    found = None
    for first, release in _METADATA_RELEASES:
        if level < first:
            break
        found = release
    return found


def _supported_features(host: str, port: int, *, timeout: float) -> dict[str, tuple[int, int]]:
    """Send an ApiVersions v3 request and return the features the broker supports: {name: (min, max)}.

    v3 is the first flexible version (compact strings, tagged fields); the features
    travel in the response's tagged field 0. The response header is v0 whatever the version.
    """
    name, version = b"broker-academy", b"1"
    header = struct.pack(">hhih", 18, 3, 1, len(TAP_CLIENT)) + TAP_CLIENT.encode() + b"\0"
    body = bytes([len(name) + 1]) + name + bytes([len(version) + 1]) + version + b"\0"
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(struct.pack(">i", len(header + body)) + header + body)
        (size,) = struct.unpack(">i", _recv_exact(sock, 4))
        reply = memoryview(_recv_exact(sock, size))
    pos = 4  # correlation id
    (error,) = struct.unpack_from(">h", reply, pos)
    if error:
        raise ValueError(f"ApiVersions answered error {error}")
    pos += 2
    count, pos = _uvarint(reply, pos)
    for _ in range(count - 1):  # api key, min, max, then an empty tag buffer each
        pos += 6
        pos = _skip_tags(reply, pos)
    pos += 4  # throttle time
    features: dict[str, tuple[int, int]] = {}
    tags, pos = _uvarint(reply, pos)
    for _ in range(tags):
        tag, pos = _uvarint(reply, pos)
        size, pos = _uvarint(reply, pos)
        end = pos + size
        if tag == 0:
            count, pos = _uvarint(reply, pos)
            for _ in range(count - 1):
                length, pos = _uvarint(reply, pos)
                key = bytes(reply[pos : pos + length - 1]).decode()
                low, high = struct.unpack_from(">hh", reply, pos + length - 1)
                pos = _skip_tags(reply, pos + length - 1 + 4)
                features[key] = (low, high)
        pos = end
    return features


def _uvarint(data: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _skip_tags(data: memoryview, pos: int) -> int:
    count, pos = _uvarint(data, pos)
    for _ in range(count):
        _tag, pos = _uvarint(data, pos)
        size, pos = _uvarint(data, pos)
        pos += size
    return pos


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ValueError("connection closed")
        data += chunk
    return data


class _Clients:
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
        _never_create_topics(self.consumer)
        self.admin = KafkaAdminClient(**common)
        self.modern = kafka_groups.ModernGroups(bootstrap, client_id=f"{TAP_CLIENT}-{role}")

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
        return {g["group_id"]: g for g in self.admin.list_groups() if g.get("group_type") != "share"}

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


def _never_create_topics(consumer: Any) -> None:
    """Make ``consumer``'s metadata requests ask the broker not to create the topics they name.

    kafka-python 3.0.12 accepts ``allow_auto_create_topics=False`` but builds its cluster
    metadata without it, so every refresh of an assigned topic the learner just deleted
    would create it again (the broker's ``auto.create.topics.enable`` is on, as learners
    expect). The option is set where the requests are built until the client passes it on.
    """
    cluster = getattr(consumer, "_cluster", None)
    if cluster is not None and "allow_auto_create_topics" in getattr(cluster, "config", {}):
        cluster.config["allow_auto_create_topics"] = False


def _topology(clients: _Clients) -> dict[str, Any]:
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
    listed = clients.groups()
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
    groups += kafka_groups.share_groups(clients.admin.list_groups())
    return {
        "broker": "kafka",
        "topics": [{"name": name, "partitions": rows} for name, rows in topics.items()],
        "groups": groups,
    }


def _describe_groups(clients: _Clients, group_ids: list[str]) -> dict[str, dict[str, Any]]:
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


def _event(direction: str, record: Any, detail: dict[str, Any] | None = None) -> Event:
    return Event.build(
        broker="kafka",
        direction=direction,  # type: ignore[arg-type]
        destination=record.topic,
        payload=record.value,
        key=record.key,
        headers=list(record.headers or []),
        partition=record.partition,
        offset=record.offset,
        timestamp_ms=record.timestamp if record.timestamp is not None and record.timestamp >= 0 else None,
        detail=detail,
    )


class _Tap:
    """One run of the Kafka tap: tails partitions, follows group offsets, until stop or an error."""

    def __init__(self, bootstrap: str, emit: Emit, stop: threading.Event) -> None:
        self.bootstrap, self.emit, self.stop = bootstrap, emit, stop

    def run(self) -> None:
        from kafka import KafkaConsumer

        clients = _Clients(self.bootstrap, role="tail")
        reader = KafkaConsumer(
            bootstrap_servers=self.bootstrap,
            client_id=f"{TAP_CLIENT}-reader",
            group_id=None,
            enable_auto_commit=False,
            allow_auto_create_topics=False,
            fetch_max_wait_ms=50,
            max_poll_records=MAX_PER_STEP,
            request_timeout_ms=5000,
        )
        _never_create_topics(reader)
        try:
            self._loop(clients, reader)
        finally:
            clients.close()
            reader.close()

    def _loop(self, clients: _Clients, reader: Any) -> None:
        assigned: set[Any] = set()
        positions: dict[str, dict[Any, int]] | None = None
        next_discover = next_groups = next_lag = 0.0
        first = True
        while not self.stop.is_set():
            now = time.monotonic()
            if now >= next_discover:
                found = clients.partitions()
                if found != assigned:
                    clients.consumer.assign(list(found))
                    new = found - assigned
                    if first:
                        clients.consumer.seek_to_end(*new)
                    elif new:
                        # Born since the tap started: read it all, the first records
                        # are usually the ones that created the topic.
                        clients.consumer.seek_to_beginning(*new)
                    assigned = found
                first = False
                next_discover = now + DISCOVER_S
            if assigned:
                for records in clients.consumer.poll(timeout_ms=200).values():
                    for record in records:
                        self.emit(_event("produced", record))
                if time.monotonic() >= next_lag:
                    self._catch_up(clients, assigned)
                    next_lag = time.monotonic() + LAG_CHECK_S
            else:
                self.stop.wait(0.2)
            if time.monotonic() >= next_groups:
                committed = clients.committed()
                if positions is None:
                    # What groups had committed before the tap came is not shown.
                    positions = {g: o for g, o in committed.items() if o is not None}
                else:
                    self._consumed(clients, reader, positions, committed)
                next_groups = time.monotonic() + GROUPS_S

    def _catch_up(self, clients: _Clients, assigned: set[Any]) -> None:
        """Skip ahead on partitions the tap cannot keep up with, reporting how many records it passed."""
        ends = clients.consumer.end_offsets(list(assigned))
        for tp, end in ends.items():
            position = clients.consumer.position(tp)
            if position is None or end - position <= MAX_BEHIND:
                continue
            resume = end - CATCH_UP_KEEP
            clients.consumer.seek(tp, resume)
            self.emit(
                Event.build(
                    broker="kafka",
                    direction="produced",
                    destination=tp.topic,
                    payload=None,
                    partition=tp.partition,
                    offset=resume - 1,
                    detail={"from_offset": position, "to_offset": resume, "not_shown": resume - position},
                )
            )

    def _consumed(
        self,
        clients: _Clients,
        reader: Any,
        before: dict[str, dict[Any, int]],
        now: dict[str, dict[Any, int] | None],
    ) -> None:
        """Emit what each group consumed since ``before``, and move ``before`` forward.

        A group not readable this round keeps its positions, so that it is not
        taken for a new one next time; a deleted group is forgotten, so that a
        group of the same name starts afresh.
        """
        for gone in set(before) - set(now):
            del before[gone]
        for group_id, offsets in now.items():
            if offsets is None:
                continue
            known = before.setdefault(group_id, {})
            for tp, end in offsets.items():
                previous = known.get(tp)
                known[tp] = end
                if previous is not None:
                    start = previous
                else:
                    # First commit of a group (or partition) seen since the tap started: the
                    # group read from the start of what the log still holds.
                    start = clients.consumer.beginning_offsets([tp]).get(tp, end)
                if end <= start:
                    continue
                detail = {"group": group_id}
                if end - start > MAX_PER_STEP:
                    self.emit(
                        Event.build(
                            broker="kafka",
                            direction="consumed",
                            destination=tp.topic,
                            payload=None,
                            partition=tp.partition,
                            offset=end - 1,
                            detail={
                                **detail,
                                "from_offset": start,
                                "to_offset": end,
                                "not_shown": end - start,
                            },
                        )
                    )
                    continue
                for record in _read_range(reader, tp, start, end):
                    self.emit(_event("consumed", record, detail))


def _read_range(reader: Any, tp: Any, start: int, end: int) -> list[Any]:
    """Records of ``tp`` with offsets in [start, end), read by a group-less consumer; stops early after 2 s."""
    reader.assign([tp])
    reader.seek(tp, start)
    out = []
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        for records in reader.poll(timeout_ms=100).values():
            out += [r for r in records if start <= r.offset < end]
        # Transaction markers take offsets too, so the position, not the last record, says when to stop.
        if reader.position(tp) >= end:
            break
    return out
