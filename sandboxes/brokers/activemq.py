"""ActiveMQ Classic 6 from Maven Central's jars, one broker per unit with its own XML and KahaDB.

The jars (broker, KahaDB, STOMP, the Spring XML support, XStream and Jettison,
Log4j 2) are fetched by scripts/fetch-jars.sh activemq into the Broker Academy
cache, found through ``ACTIVEMQ_LIBS`` or the cache; the version is pinned in
:mod:`sandboxes.brokers.versions`.

Watching without consuming: every destination has ``advisoryForDelivery`` and
``advisoryForConsumed`` with ``includeBodyForAdvisory``, so the broker publishes
a copy of each message it receives (``ActiveMQ.Advisory.MessageDelivered.*``)
and of each one a client acknowledges (``ActiveMQ.Advisory.MessageConsumed.*``).
The tap subscribes to those two advisory topics over STOMP; queues are never
browsed or read. "Delivered" covers queues and topics alike, so neither mirrored
queues nor a ``>`` topic subscription is needed (they would double every
message). ActiveMQ sends no consumption advisory for non-durable topic
subscribers, so that one case is inferred from topic counters (see
:class:`_TopicFollower`). Advisory bodies reach STOMP as JSON made by XStream and
Jettison, which is why those two jars are fetched with the broker.

The side panel's counters come from the statistics plugin
(``ActiveMQ.Statistics.Destination.>``), asked over STOMP with a reply queue.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import socket
import struct
import threading
import time
import uuid
import xml.etree.ElementTree as ET
import zlib
from collections import deque
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar, Self
from xml.sax.saxutils import escape

from sandboxes.brokers import versions
from sandboxes.brokers.base import (
    BASE_ENV,
    Backoff,
    BrokerKind,
    BrokerUnavailable,
    Emit,
    LaunchSpec,
    Site,
    java_binary,
    missing_client,
    missing_java,
)
from sandboxes.events import Direction, Event

logger = logging.getLogger(__name__)

VERSION = versions.version("activemq")
BROKER_JAR = f"activemq-broker-{VERSION}.jar"
# The STOMP transformer that renders advisory messages needs these; without them the tap sees nothing.
ADVISORY_JARS = ("xstream-*.jar", "jettison-*.jar")
#: What activemq.jar's launcher runs: the console's "start" command on an xbean: URI.
MAIN = "org.apache.activemq.console.Main"
# No authentication plugin: any login is accepted; these are the documented ones.
USER, PASSWORD = "admin", "admin"
TAP_ID = "broker-academy-tap"
DELIVERED = "/topic/ActiveMQ.Advisory.MessageDelivered.>"
CONSUMED = "/topic/ActiveMQ.Advisory.MessageConsumed.>"
TOPIC_POLL_S = 0.5  # how often topic counters are read to infer non-durable consumption
# Recent messages kept per topic, to show what an inferred consumption took.
TOPIC_MEMORY = 500

# Java 17 closes internals that Spring/XStream reflect on; ActiveMQ's own start script opens the same ones.
_OPENS = [
    "java.base/java.lang=ALL-UNNAMED",
    "java.base/java.util=ALL-UNNAMED",
    "java.base/java.util.concurrent=ALL-UNNAMED",
    "java.base/java.net=ALL-UNNAMED",
    "java.base/java.security=ALL-UNNAMED",
]

_XML = """<beans xmlns="http://www.springframework.org/schema/beans"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="http://www.springframework.org/schema/beans http://www.springframework.org/schema/beans/spring-beans.xsd
  http://activemq.apache.org/schema/core http://activemq.apache.org/schema/core/activemq-core.xsd">
  <!-- Written by Broker Academy; rewritten on every start. -->
  <broker xmlns="http://activemq.apache.org/schema/core" brokerName="sandbox" dataDirectory="{data}"
          useJmx="false" advisorySupport="true" schedulerSupport="false">
    <destinationPolicy><policyMap><policyEntries>
      <policyEntry queue="&gt;" advisoryForDelivery="true" advisoryForConsumed="true" includeBodyForAdvisory="true"/>
      <policyEntry topic="&gt;" advisoryForDelivery="true" advisoryForConsumed="true" includeBodyForAdvisory="true"/>
    </policyEntries></policyMap></destinationPolicy>
    <plugins><statisticsBrokerPlugin/></plugins>
    <systemUsage><systemUsage>
      <memoryUsage><memoryUsage limit="{memory_mb} mb"/></memoryUsage>
      <storeUsage><storeUsage limit="{store_mb} mb"/></storeUsage>
      <tempUsage><tempUsage limit="{temp_mb} mb"/></tempUsage>
    </systemUsage></systemUsage>
    <persistenceAdapter><kahaDB directory="{data}/kahadb" journalMaxFileLength="8mb"/></persistenceAdapter>
    <transportConnectors>
      <transportConnector name="openwire" uri="tcp://{bind}:{openwire}?maximumConnections={conns}&amp;wireFormat.maxFrameSize={frame}"/>
      <transportConnector name="stomp" uri="stomp://{bind}:{stomp}?maximumConnections={conns}&amp;transport.maxFrameSize={frame}"/>
    </transportConnectors>
  </broker>
</beans>
"""

# ActiveMQ 6 logs through Log4j 2; its properties format needs no extra jar.
_LOG4J2 = """# Written by Broker Academy: the broker logs to stdout, which the agent keeps.
status = warn
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = %d{ISO8601} %-5p %m [%c{1}]%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.spring.name = org.springframework
logger.spring.level = WARN
logger.xbean.name = org.apache.xbean
logger.xbean.level = WARN
"""


def activemq_libs() -> Path:
    """The folder holding ActiveMQ's jars: ``ACTIVEMQ_LIBS``, else the cache of fetch-jars.sh."""
    if os.environ.get("ACTIVEMQ_LIBS"):
        return Path(os.environ["ACTIVEMQ_LIBS"])
    return versions.home("activemq") / "libs"


class ActiveMQ(BrokerKind):
    name = "activemq"
    title = "Apache ActiveMQ"
    default_ports: ClassVar[dict[str, int]] = {"stomp": 61613, "openwire": 61616}

    def missing(self) -> list[str]:
        problems = []
        libs = activemq_libs()
        if not (libs / BROKER_JAR).exists():
            problems.append(
                f"ActiveMQ {VERSION} jars not found in {libs}: run scripts/fetch-jars.sh activemq (needs maven), "
                "or set ACTIVEMQ_LIBS to a folder with them"
            )
        else:
            problems += [
                f"no {pattern} in {libs}: ActiveMQ needs it to send advisories over STOMP; rerun scripts/fetch-jars.sh activemq"
                for pattern in ADVISORY_JARS
                if not any(libs.glob(pattern))
            ]
        problems += missing_java()
        problems += missing_client("stomp", "stomp.py")
        return problems

    def prepare(self, *, site: Site) -> None:
        data_dir, ports, limits, bind = site.data_dir, site.ports, site.limits, site.bind
        (data_dir / "conf").mkdir(parents=True, exist_ok=True)
        (data_dir / "data").mkdir(exist_ok=True)
        (data_dir / "tmp").mkdir(exist_ok=True)
        xml = _XML.format(
            data=escape(str(data_dir / "data")),
            memory_mb=max(16, limits.heap_mb // 4),  # messages held in memory; the rest of the heap runs the broker
            store_mb=max(32, limits.disk_mb * 4 // 5),
            temp_mb=max(16, limits.disk_mb // 5),
            bind=bind,
            openwire=ports["openwire"],
            stomp=ports["stomp"],
            conns=limits.max_connections,
            frame=limits.max_message_bytes + 64 * 1024,  # room for headers around the largest allowed body
        )
        (data_dir / "conf" / "activemq.xml").write_text(xml)
        (data_dir / "conf" / "log4j2.properties").write_text(_LOG4J2)

    def launch(self, *, site: Site) -> LaunchSpec:
        data_dir, limits = site.data_dir, site.limits
        conf = data_dir / "conf"
        libs = activemq_libs()
        argv = [
            java_binary() or "java",
            f"-Xmx{limits.heap_mb}m",
            "-Xms32m",
            "-Xss512k",
            # One small broker per unit: the serial collector and the C1 compiler start
            # fastest and keep the footprint low; throughput is not the point here.
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-XX:MaxMetaspaceSize=96m",
            "-Xshare:auto",
            "-Djava.awt.headless=true",
            f"-Djava.io.tmpdir={data_dir / 'tmp'}",
            f"-Dactivemq.home={libs.parent}",
            f"-Dactivemq.base={data_dir}",
            f"-Dactivemq.conf={conf}",
            f"-Dactivemq.data={data_dir / 'data'}",
            "-Dlog4j2.configurationFile=" + str(conf / "log4j2.properties"),
            *(f"--add-opens={o}" for o in _OPENS),
            "-cp",
            f"{conf}:{libs / '*'}",
            MAIN,
            "start",
            f"xbean:file:{conf / 'activemq.xml'}",
        ]
        return LaunchSpec(argv=tuple(argv), env=dict(BASE_ENV), cwd=str(data_dir), stop_timeout=10.0)

    def probe_ready(self, *, host: str, ports: Mapping[str, int]) -> bool:
        try:
            with _Stomp(host, ports["stomp"], timeout=0.5):
                return True
        except (OSError, ValueError, BrokerUnavailable):
            return False

    def connection_env(self, *, host: str, ports: Mapping[str, int]) -> dict[str, str]:
        return {
            "STOMP_HOST": host,
            "STOMP_PORT": str(ports["stomp"]),
            "STOMP_USER": USER,
            "STOMP_PASSWORD": PASSWORD,
            "OPENWIRE_URL": f"tcp://{host}:{ports['openwire']}",
        }

    def broker_version(self, *, host: str, ports: Mapping[str, int]) -> str | None:
        # STOMP's CONNECTED frame names the server: "ActiveMQ/6.3.1".
        try:
            with _Stomp(host, ports["stomp"], timeout=1.0) as s:
                product, _, said = s.server.partition("/")
        except (OSError, ValueError, BrokerUnavailable):
            return None
        return said if product == "ActiveMQ" and said else None

    def tap(self, *, host: str, ports: Mapping[str, int], emit: Emit, stop: threading.Event) -> None:
        import stomp  # imported here: the platform side never needs it

        topics = _TopicFollower(emit)

        class Listener(stomp.ConnectionListener):
            def on_message(self, frame: Any) -> None:
                try:
                    event = _advisory_event(frame.headers, frame.body)
                except (
                    ValueError,
                    KeyError,
                    TypeError,
                    IndexError,
                    struct.error,
                    zlib.error,
                ) as exc:
                    logger.warning(
                        "activemq tap: unreadable advisory on %s: %s",
                        frame.headers.get("destination"),
                        exc,
                    )
                    return
                if event is not None:
                    topics.saw(event)
                    emit(event)

        backoff = Backoff(stop)
        while not stop.is_set():
            conn = stomp.Connection(
                [(host, ports["stomp"])],
                reconnect_attempts_max=1,
                auto_decode=False,
                heartbeats=(0, 0),
            )
            conn.set_listener("tap", Listener())
            try:
                conn.connect(
                    USER,
                    PASSWORD,
                    wait=True,
                    headers={"client-id": f"{TAP_ID}-{uuid.uuid4().hex[:8]}"},
                )
                conn.subscribe(
                    DELIVERED,
                    id="delivered",
                    ack="auto",
                    headers={"transformation": "jms-advisory-json"},
                )
                conn.subscribe(
                    CONSUMED,
                    id="consumed",
                    ack="auto",
                    headers={"transformation": "jms-advisory-json"},
                )
            except Exception as exc:
                logger.debug("activemq tap: cannot connect: %s", exc)
                _quiet_disconnect(conn)
                if backoff.wait():
                    return
                continue
            backoff.reset()
            stats: _Stomp | None = None
            topics.reset()
            while not stop.wait(TOPIC_POLL_S):
                if not conn.is_connected():
                    break
                try:
                    stats = stats or _Stomp(host, ports["stomp"], timeout=1.0)
                    topics.poll(_statistics(stats, "topic"))
                except (OSError, ValueError, BrokerUnavailable) as exc:
                    logger.debug("activemq tap: topic statistics failed: %s", exc)
                    if stats is not None:
                        stats.close()
                    stats = None
            if stats is not None:
                stats.close()
            _quiet_disconnect(conn)

    def snapshot(self, *, host: str, ports: Mapping[str, int]) -> dict[str, Any]:
        try:
            with _Stomp(host, ports["stomp"], timeout=1.0) as s:
                queues = [_row(stats) for stats in _statistics(s, "queue")]
                topics = [_row(stats) for stats in _statistics(s, "topic")]
        except (OSError, ValueError) as exc:  # timeouts included
            raise BrokerUnavailable(f"ActiveMQ statistics: {exc}") from exc
        return {
            "broker": self.name,
            "queues": sorted(queues, key=lambda r: r["name"]),
            "topics": sorted(topics, key=lambda r: r["name"]),
        }


def _row(stats: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": stats["name"],
        "messages": stats.get("size", 0),
        "enqueued": stats.get("enqueueCount", 0),
        "dequeued": stats.get("dequeueCount", 0),
        "dispatched": stats.get("dispatchCount", 0),
        "in_flight": stats.get("inflightCount", 0),
        "expired": stats.get("expiredCount", 0),
        "consumers": stats.get("consumerCount", 0),
        "producers": stats.get("producerCount", 0),
    }


def _statistics(s: _Stomp, kind: str) -> list[dict[str, Any]]:
    """Counters of every learner queue or topic, from the statistics plugin (one request, one reply per destination)."""
    reply = f"/temp-queue/{TAP_ID}-stats"  # one per connection, subscribed once: temporary queues live as long as it
    if not s.stats_subscribed:
        s.send_frame(
            "SUBSCRIBE",
            {
                "destination": reply,
                "id": "stats",
                "ack": "auto",
                "transformation": "jms-map-xml",
            },
        )
        s.stats_subscribed = True
    # The plugin answers with one map per destination, then (asked to) an empty map.
    s.send_frame(
        "SEND",
        {
            "destination": f"/{kind}/ActiveMQ.Statistics.Destination.>",
            "reply-to": reply,
            "ActiveMQ.Statistics.Destination.List.End.With.Null": "true",
        },
    )
    rows = []
    while True:
        command, _headers, body = s.recv_frame()
        if command != "MESSAGE":
            continue
        stats = _map_xml(body)
        if not stats:
            break
        found, _, name = str(stats.get("destinationName", "")).partition("://")
        if found == kind and not name.startswith("ActiveMQ."):  # advisory, statistics and temporary destinations are the broker's
            rows.append({**stats, "name": name})
    return rows


class _TopicFollower:
    """Infers "consumed" on topics from their dequeue counters.

    ActiveMQ (5.17 and 6.x) sends MessageConsumed advisories for queues and durable topic
    subscriptions only; a non-durable subscriber's acknowledgement only moves the
    topic's dequeue counter. So when that counter moves by ``d`` (minus the
    durable acknowledgements already reported), the tap shows the latest messages
    produced to the topic as consumed, each at most once per subscriber, with
    ``detail["inferred"] = "true"``.
    """

    def __init__(self, emit: Emit) -> None:
        self.emit = emit
        self.lock = threading.Lock()
        self.recent: dict[str, deque[list[Any]]] = {}  # topic -> [event, times shown consumed]
        self.durable_acks: dict[str, int] = {}
        self.dequeued: dict[str, int] = {}
        self.primed = False

    def reset(self) -> None:
        with self.lock:
            self.dequeued.clear()
            self.primed = False

    def saw(self, event: Event) -> None:
        if not event.destination.startswith("/topic/"):
            return
        name = event.destination[len("/topic/") :]
        with self.lock:
            if event.direction == "produced":
                self.recent.setdefault(name, deque(maxlen=TOPIC_MEMORY)).append([event, 0])
            else:
                self.durable_acks[name] = self.durable_acks.get(name, 0) + 1

    def poll(self, rows: list[dict[str, Any]]) -> None:
        out: list[Event] = []
        with self.lock:
            for row in rows:
                name, dequeued = row["name"], int(row.get("dequeueCount", 0))
                # A topic first seen after the first poll was born since: count from zero.
                before = self.dequeued.get(name, 0 if self.primed else dequeued)
                self.dequeued[name] = dequeued
                moved = dequeued - before - self.durable_acks.pop(name, 0)
                if moved > 0:
                    out += self._consumed(name, moved, max(1, int(row.get("consumerCount", 0))))
            self.primed = True
        for event in out:
            self.emit(event)

    def _consumed(self, name: str, moved: int, subscribers: int) -> list[Event]:
        candidates = [item for item in self.recent.get(name, ()) if item[1] < subscribers]
        wanted = -(-moved // subscribers)  # ceil
        out: list[Event] = []
        for item in candidates[-wanted:]:
            for _ in range(min(subscribers - item[1], moved - len(out))):
                item[1] += 1
                out.append(
                    replace(
                        item[0],
                        direction="consumed",
                        detail={**item[0].detail, "inferred": "true"},
                        seen_ms=int(time.time() * 1000),
                    )
                )
        if len(out) < moved:
            out.append(
                Event.build(
                    broker="activemq",
                    direction="consumed",
                    destination=f"/topic/{name}",
                    payload=None,
                    detail={"inferred": "true", "not_shown": moved - len(out)},
                )
            )
        return out


def _quiet_disconnect(conn: Any) -> None:
    # Disconnecting a dead connection may fail; there is nothing left to do then.
    with contextlib.suppress(Exception):
        conn.disconnect()


def _advisory_event(headers: Mapping[str, str], body: bytes) -> Event | None:
    """Turn a MessageDelivered/MessageConsumed advisory into an event (None for the broker's own traffic)."""
    topic = headers.get("destination", "")
    direction: Direction | None = None
    if ".MessageDelivered." in topic:
        direction = "produced"
    elif ".MessageConsumed." in topic:
        direction = "consumed"
    # "orignal" (sic) is ActiveMQ's spelling of the header.
    kind, _, name = headers.get("orignalDestination", "").partition("://")
    if direction is None or not name or name.startswith("ActiveMQ.") or kind not in ("queue", "topic"):
        return None
    wrapper = json.loads(body)
    message_type, message = next(iter(wrapper.items()))
    payload = _content(message_type, message)
    detail: dict[str, Any] = {
        "message_id": headers.get("orignalMessageId", ""),
        "persistent": str(bool(message.get("persistent"))).lower(),
    }
    for field, label in (
        ("groupID", "group"),
        ("correlationId", "correlation_id"),
        ("type", "jms_type"),
    ):
        if message.get(field) not in (None, ""):
            detail[label] = str(message[field])
    if message.get("redeliveryCounter"):
        detail["redelivered"] = str(message["redeliveryCounter"])
    return Event.build(
        broker="activemq",
        direction=direction,
        destination=f"/{kind}/{name}",
        payload=payload,
        headers=_properties(message.get("marshalledProperties")),
        detail=detail,
        timestamp_ms=message.get("timestamp") or None,
    )


def _sequence(seq: Any) -> bytes:
    """The bytes of an XStream-rendered ByteSequence ({"data": [base64], "offset", "length"})."""
    if not seq:
        return b""
    data = base64.b64decode(seq["data"][0] if isinstance(seq["data"], list) else seq["data"])
    offset = int(seq.get("offset", 0))
    return data[offset : offset + int(seq.get("length", len(data)))]


def _content(message_type: str, message: Mapping[str, Any]) -> bytes:
    raw = _sequence(message.get("content"))
    if message.get("compressed") and raw:
        raw = zlib.decompress(raw)
    if message_type == "ActiveMQTextMessage":
        if isinstance(message.get("text"), str):
            return message["text"].encode("utf-8")
        # A text body is stored as a 4-byte length then UTF-8.
        return raw[4:] if len(raw) >= 4 else raw
    return raw


def _properties(seq: Any) -> dict[str, str]:
    """Decode ActiveMQ's marshalled property map (MarshallingSupport.marshalPrimitiveMap)."""
    data = _sequence(seq)
    if len(data) < 4:
        return {}
    out: dict[str, str] = {}
    (count,), pos = struct.unpack_from(">i", data, 0), 4
    for _ in range(count):
        (klen,) = struct.unpack_from(">H", data, pos)
        key = data[pos + 2 : pos + 2 + klen].decode("utf-8", "replace")
        pos += 2 + klen
        value, pos = _primitive(data, pos)
        out[key] = value
    return out


def _primitive(data: bytes, pos: int) -> tuple[str, int]:
    kind = data[pos]
    pos += 1
    fixed = {1: ">?", 2: ">b", 3: ">H", 4: ">h", 5: ">i", 6: ">q", 7: ">d", 8: ">f"}
    if kind == 0:
        return "", pos
    if kind in fixed:
        (value,) = struct.unpack_from(fixed[kind], data, pos)
        text = chr(value) if kind == 3 else str(value).lower() if kind == 1 else str(value)
        return text, pos + struct.calcsize(fixed[kind])
    if kind == 9:  # short string: 2-byte length
        (n,) = struct.unpack_from(">H", data, pos)
        return data[pos + 2 : pos + 2 + n].decode("utf-8", "replace"), pos + 2 + n
    if kind in (10, 13):  # byte array / big string: 4-byte length
        (n,) = struct.unpack_from(">i", data, pos)
        chunk = data[pos + 4 : pos + 4 + n]
        return (chunk.hex() if kind == 10 else chunk.decode("utf-8", "replace")), pos + 4 + n
    raise ValueError(f"property type {kind} not shown")  # maps and lists inside properties: rare, skipped


def _map_xml(body: bytes) -> dict[str, Any]:
    """Parse the jms-map-xml rendering of a MapMessage: <map><entry><string>k</string><long>1</long></entry>..."""
    out: dict[str, Any] = {}
    for entry in ET.fromstring(body):
        key, value = list(entry)[:2]
        text = value.text or ""
        out[key.text or ""] = (
            int(text) if value.tag in ("long", "int", "short") else float(text) if value.tag == "double" else text
        )
    return out


class _Stomp:
    """A minimal blocking STOMP 1.2 client for one short exchange (probe, statistics)."""

    def __init__(self, host: str, port: int, *, timeout: float) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.stats_subscribed = False
        self.server = ""  # the CONNECTED frame's server header, "ActiveMQ/<version>"
        try:
            self.send_frame(
                "CONNECT",
                {
                    "accept-version": "1.2",
                    "host": host,
                    "login": USER,
                    "passcode": PASSWORD,
                },
            )
            command, headers, _ = self.recv_frame()
        except BaseException:
            self.sock.close()
            raise
        if command != "CONNECTED":
            self.sock.close()
            raise BrokerUnavailable(f"STOMP CONNECT answered {command}: {headers.get('message', '')}")
        self.server = headers.get("server", "")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.send_frame("DISCONNECT", {})
        except OSError:
            pass
        self.sock.close()

    def send_frame(self, command: str, headers: Mapping[str, str], body: bytes = b"") -> None:
        head = "".join(f"{k}:{_escape_header(v)}\n" for k, v in headers.items())
        self.sock.sendall(f"{command}\n{head}\n".encode() + body + b"\0")

    def recv_frame(self) -> tuple[str, dict[str, str], bytes]:
        while True:
            self.buf = self.buf.lstrip(b"\r\n")  # heart-beats between frames
            head_end = self.buf.find(b"\n\n")
            if head_end >= 0:
                lines = self.buf[:head_end].decode("utf-8").split("\n")
                headers: dict[str, str] = {}
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    headers.setdefault(k, v)
                start = head_end + 2
                if "content-length" in headers:
                    end = start + int(headers["content-length"])
                    if len(self.buf) > end:
                        body, self.buf = self.buf[start:end], self.buf[end + 1 :]
                        return lines[0], headers, body
                else:
                    end = self.buf.find(b"\0", start)
                    if end >= 0:
                        body, self.buf = self.buf[start:end], self.buf[end + 1 :]
                        return lines[0], headers, body
            chunk = self.sock.recv(65536)
            if not chunk:
                raise BrokerUnavailable("STOMP connection closed by the broker")
            self.buf += chunk


def _escape_header(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace(":", "\\c")
