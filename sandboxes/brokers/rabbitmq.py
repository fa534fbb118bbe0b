"""RabbitMQ from Debian's package, one node per unit with all its state in the unit's folder.

The tap reads the firehose (``amq.rabbitmq.trace``), which RabbitMQ fills with a
copy of every publish and every delivery once tracing is on for a vhost; the
learner's queues are never read. Tracing is turned on at boot for ``/`` through
the ``rabbit.trace_vhosts`` application setting, so no ``rabbitmqctl`` call (and
no Erlang distribution round trip) is needed. The same tap queue hears the event
exchange (``amq.rabbitmq.event``: queues, bindings and consumers made or gone), so
that the panel's snapshot follows such changes at once instead of on a timer.

The snapshot asks the HTTP API only for what is current when asked: objects and
bindings (the schema database), message counts with ``disable_stats`` and
``enable_queue_totals`` (asked of each queue), consumers from ``/consumers`` plus
those the event exchange announced but the statistics have not caught up with.
"""

from __future__ import annotations

import base64
import glob
import json
import logging
import os
import pwd
import re
import secrets
import shutil
import socket
import string
import threading
import time
import urllib.request
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from sandboxes.brokers.base import (
    BASE_ENV,
    Backoff,
    BrokerKind,
    BrokerUnavailable,
    Emit,
    LaunchSpec,
    Site,
    missing_client,
)
from sandboxes.events import Direction, Event

logger = logging.getLogger(__name__)

SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
PLUGINS_GLOB = "/usr/lib/rabbitmq/lib/rabbitmq_server-*/plugins"
PLUGINS = ("rabbitmq_management", "rabbitmq_event_exchange")
EPMD = "epmd"
RUN_AS = "rabbitmq"  # Debian's account; the Erlang VM refuses nothing as root, but the package expects it
NODENAME = "rabbit@localhost"
TRACE_EXCHANGE = "amq.rabbitmq.trace"
EVENT_EXCHANGE = "amq.rabbitmq.event"
#: What the tap hears from the event exchange: the changes the panel draws (not connections or channels).
EVENT_KEYS = ("queue.*", "binding.*", "consumer.*", "exchange.*")
TAP_NAME = "broker-academy-tap"
TAP_QUEUE_PREFIX = "broker-academy.tap."
# Loopback-only by RabbitMQ's default, and everything in a unit is loopback.
USER, PASSWORD = "guest", "guest"
#: How long a consumer announced by the event exchange is counted without the HTTP API listing it:
#: longer than the management agent takes to fold a new consumer into its statistics (one second, see prepare()).
NEW_CONSUMER_S = 8.0

# Starts a private epmd in the foreground first: the one Erlang would start itself
# daemonises out of the process group and would outlive the broker. The loop waits
# until it answers, so Erlang finds it and does not start its own.
_LAUNCHER = """\
{epmd} -port "$ERL_EPMD_PORT" -address {bind} &
i=0
while ! {epmd} -port "$ERL_EPMD_PORT" -names >/dev/null 2>&1; do
  i=$((i+1)); [ $i -gt 100 ] && echo "epmd did not start" >&2 && exit 1
  sleep 0.02
done
exec {server}
"""


class RabbitMQ(BrokerKind):
    name = "rabbitmq"
    title = "RabbitMQ"
    default_ports: ClassVar[dict[str, int]] = {
        "amqp": 5672,
        "management": 15672,
        "dist": 25672,
        "epmd": 4369,
    }

    def __init__(self) -> None:
        self._announced: dict[tuple[str, int], _Announced] = {}  # by (host, AMQP port)
        self._versions: dict[tuple[str, int], str | None] = {}

    def missing(self) -> list[str]:
        problems = []
        if not os.access(SERVER, os.X_OK):
            problems.append(f"{SERVER} not found: install the Debian package rabbitmq-server (apt-get install rabbitmq-server)")
        elif shutil.which(EPMD, path=BASE_ENV["PATH"]) is None:
            problems.append("epmd not found on PATH: install the Debian package erlang-base")
        if os.geteuid() == 0:
            try:
                pwd.getpwnam(RUN_AS)
            except KeyError:
                problems.append(f"user {RUN_AS!r} missing: reinstall the Debian package rabbitmq-server")
        problems += missing_client("pika", "pika")
        return problems

    def prepare(self, *, site: Site) -> None:
        data_dir, ports, limits, bind = site.data_dir, site.ports, site.limits, site.bind
        for sub in ("mnesia", "log", "home"):
            (data_dir / sub).mkdir(parents=True, exist_ok=True)
        # Leave headroom under the process limit: the watermark blocks publishers, the
        # cgroup would kill the node.
        watermark = max(64, limits.memory_mb * 3 // 5)
        (data_dir / "rabbitmq.conf").write_text(
            f"""# Written by Broker Academy; rewritten on every start.
listeners.tcp.default = {bind}:{ports["amqp"]}
management.tcp.ip = {bind}
management.tcp.port = {ports["management"]}
loopback_users.guest = true
vm_memory_high_watermark.absolute = {watermark}MiB
disk_free_limit.absolute = 50MB
connection_max = {limits.max_connections}
max_message_size = {limits.max_message_bytes}
# Queue counters in the HTTP API (checks, cells that ask it) refresh every second instead of five. Both
# settings are needed: queues report every collect_statistics_interval, and the management agent folds
# the reports every <smallest sample interval> seconds, 5 by default (measured: counts up to 6 s old).
collect_statistics_interval = 1000
management.sample_retention_policies.global.minute = 1
management.sample_retention_policies.basic.minute = 1
management.sample_retention_policies.detailed.10 = 1
log.console = true
log.console.level = info
log.file = false
"""
        )
        (data_dir / "advanced.config").write_text('[{rabbit, [{trace_vhosts, [<<"/">>]}]}].\n')
        (data_dir / "enabled_plugins").write_text(f"[{','.join(PLUGINS)}].\n")
        _link_plugins(data_dir / "plugins")
        cookie = data_dir / "home" / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text("".join(secrets.choice(string.ascii_uppercase) for _ in range(32)))
        cookie.chmod(0o400)
        if os.geteuid() == 0:
            _check_reachable(data_dir, RUN_AS)
            account = pwd.getpwnam(RUN_AS)
            # os.walk does not follow the links to the system's plugins: only the unit's files change owner.
            for root, dirs, files in os.walk(data_dir):
                for name in [".", *dirs, *files]:
                    os.chown(
                        os.path.join(root, name),
                        account.pw_uid,
                        account.pw_gid,
                        follow_symlinks=False,
                    )

    def launch(self, *, site: Site) -> LaunchSpec:
        data_dir, ports, bind = site.data_dir, site.ports, site.bind
        env = {
            **BASE_ENV,
            "HOME": str(data_dir / "home"),
            "RABBITMQ_CONF_ENV_FILE": "/dev/null",  # ignore /etc/rabbitmq/rabbitmq-env.conf of the host
            "RABBITMQ_CONFIG_FILE": str(data_dir / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(data_dir / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(data_dir / "enabled_plugins"),
            "RABBITMQ_PLUGINS_DIR": str(data_dir / "plugins"),
            "RABBITMQ_MNESIA_BASE": str(data_dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(data_dir / "log"),
            "RABBITMQ_LOGS": "-",
            "RABBITMQ_PID_FILE": str(data_dir / "rabbitmq.pid"),
            "RABBITMQ_NODENAME": NODENAME,
            "RABBITMQ_USE_LONGNAME": "false",
            "RABBITMQ_NODE_PORT": str(ports["amqp"]),
            "RABBITMQ_DIST_PORT": str(ports["dist"]),
            "ERL_EPMD_PORT": str(ports["epmd"]),
            "ERL_CRASH_DUMP_SECONDS": "0",
            "RABBITMQ_MAX_NUMBER_OF_PROCESSES": "65536",
            # Two schedulers on a small unit, and no busy-waiting: an idle node then costs no CPU.
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "+S 2:2 +sbwt none +sbwtdcpu none +sbwtdio none",
        }
        script = _LAUNCHER.format(
            epmd=shutil.which(EPMD, path=BASE_ENV["PATH"]) or EPMD,
            bind=bind,
            server=SERVER,
        )
        return LaunchSpec(
            argv=("/bin/sh", "-c", script),
            env=env,
            cwd=str(data_dir),
            user=RUN_AS if os.geteuid() == 0 else None,
            stop_timeout=15.0,
        )

    def probe_ready(self, *, host: str, ports: Mapping[str, int]) -> bool:
        # The HTTP API starts last of the two; ask it, then make sure AMQP listens too.
        try:
            _api(host, ports, "/overview?columns=node", timeout=0.5)
            with socket.create_connection((host, ports["amqp"]), timeout=0.3):
                return True
        except (OSError, ValueError, BrokerUnavailable):
            return False

    def connection_env(self, *, host: str, ports: Mapping[str, int]) -> dict[str, str]:
        return {
            "AMQP_URL": f"amqp://{USER}:{PASSWORD}@{host}:{ports['amqp']}/%2F",
            "RABBITMQ_API_URL": f"http://{USER}:{PASSWORD}@{host}:{ports['management']}/api",
        }

    def broker_version(self, *, host: str, ports: Mapping[str, int]) -> str | None:
        # The node's own version, as it puts it in its AMQP server properties and its HTTP API.
        try:
            said = _api(host, ports, "/overview?columns=rabbitmq_version").get("rabbitmq_version")
        except (BrokerUnavailable, ValueError, AttributeError):
            return None
        return said if isinstance(said, str) and said else None

    def tap(self, *, host: str, ports: Mapping[str, int], emit: Emit, stop: threading.Event) -> None:
        import pika  # imported here: the platform side never needs it
        import pika.exceptions

        params = pika.ConnectionParameters(
            host=host,
            port=ports["amqp"],
            credentials=pika.PlainCredentials(USER, PASSWORD),
            client_properties={"connection_name": TAP_NAME},
            connection_attempts=1,
            socket_timeout=2,
            heartbeat=30,
        )
        backoff = Backoff(stop)
        announced = self._announced_at(host, ports)
        while not stop.is_set():
            try:
                conn = pika.BlockingConnection(params)
            except pika.exceptions.AMQPError as exc:
                logger.debug("rabbitmq tap: cannot connect: %s", exc)
                if backoff.wait():
                    return
                continue
            backoff.reset()
            try:
                channel = conn.channel()
                queue = TAP_QUEUE_PREFIX + secrets.token_hex(4)
                channel.queue_declare(
                    queue,
                    exclusive=True,
                    auto_delete=True,
                    arguments={"x-max-length": 100_000},
                )
                channel.queue_bind(queue, TRACE_EXCHANGE, "#")
                for key in EVENT_KEYS:
                    channel.queue_bind(queue, EVENT_EXCHANGE, key)

                def on_message(_ch: Any, method: Any, props: Any, body: bytes) -> None:
                    if method.exchange == EVENT_EXCHANGE:
                        _on_event(emit, announced, method.routing_key, props.headers or {})
                    else:
                        _on_trace(emit, method, props, body)

                channel.basic_consume(queue, on_message, auto_ack=True)
                while not stop.is_set():
                    conn.process_data_events(time_limit=0.2)
            except pika.exceptions.AMQPError as exc:
                logger.debug("rabbitmq tap: connection lost: %s", exc)
                if backoff.wait():
                    return
            finally:
                if conn.is_open:
                    try:
                        conn.close()
                    except pika.exceptions.AMQPError:
                        pass

    def _announced_at(self, host: str, ports: Mapping[str, int]) -> _Announced:
        return self._announced.setdefault((host, ports["amqp"]), _Announced())

    def snapshot(self, *, host: str, ports: Mapping[str, int]) -> dict[str, Any]:
        key = (host, ports["amqp"])
        if key not in self._versions:
            self._versions[key] = _api(host, ports, "/overview?columns=rabbitmq_version").get("rabbitmq_version")
        exchanges = _api(host, ports, "/exchanges?columns=name,vhost,type,durable,auto_delete,internal")
        # Asked of each queue now; the default listing would give the statistics' last fold, a second or more old.
        queues = _api(host, ports, "/queues?disable_stats=true&enable_queue_totals=true")
        consumers = _api(host, ports, "/consumers?columns=queue,consumer_tag")
        bindings = _api(host, ports, "/bindings?columns=source,vhost,destination,destination_type,routing_key,arguments")
        counted = {(c["queue"]["vhost"], c["queue"]["name"], c["consumer_tag"]) for c in consumers}
        counted |= self._announced_at(host, ports).not_yet_listed(counted)
        per_queue: dict[tuple[str, str], int] = {}
        for vhost, name, _tag in counted:
            per_queue[vhost, name] = per_queue.get((vhost, name), 0) + 1
        return {
            "broker": self.name,
            "version": self._versions[key],
            "exchanges": [x for x in exchanges if x["name"] and not x["name"].startswith("amq.")],
            "queues": [
                {
                    "name": q["name"],
                    "vhost": q["vhost"],
                    "type": q.get("type"),
                    "durable": q.get("durable"),
                    "auto_delete": q.get("auto_delete"),
                    "exclusive": q.get("exclusive"),
                    "arguments": q.get("arguments") or {},
                    **{k: q.get(k) or 0 for k in ("messages", "messages_ready", "messages_unacknowledged")},
                    "consumers": per_queue.get((q["vhost"], q["name"]), 0),
                }
                for q in queues
                if not q["name"].startswith(TAP_QUEUE_PREFIX)
            ],
            # The default exchange's implicit bindings and the tap's own are noise on the panel.
            "bindings": [b for b in bindings if b["source"] and b["source"] not in (TRACE_EXCHANGE, EVENT_EXCHANGE)],
        }


def _link_plugins(target: Path) -> None:
    """Fill ``target`` with links to the Erlang applications the broker needs, and no others.

    Every folder in the plugins directory is on the Erlang code path, and each
    module load searches the path in order: with the 26 applications the node
    and the management plugin need instead of all 70, the node starts about a
    second sooner (measured: 6.5 s -> 5.3 s to ready on 2 cores).
    """
    found = sorted(glob.glob(PLUGINS_GLOB))
    if not found:
        raise FileNotFoundError(f"no RabbitMQ plugins folder matches {PLUGINS_GLOB}")
    source = Path(found[-1])
    apps: dict[str, tuple[Path, set[str]]] = {}
    for folder in source.iterdir():
        app_files = list(folder.glob("ebin/*.app"))
        if folder.is_dir() and app_files:
            text = app_files[0].read_text(errors="replace")
            deps: set[str] = set()
            for key in (
                "applications",
                "included_applications",
                "optional_applications",
            ):
                match = re.search(r"\{\s*" + key + r"\s*,\s*\[(.*?)\]\s*\}", text, re.DOTALL)
                if match:
                    deps |= set(re.findall(r"[a-z][a-z_0-9]*", match.group(1)))
            apps[folder.name.rsplit("-", 1)[0]] = (folder, deps)
    needed: set[str] = set()
    todo = ["rabbit", "rabbitmq_prelaunch", *PLUGINS]
    while todo:
        app = todo.pop()
        if app in apps and app not in needed:
            needed.add(app)
            todo += apps[app][1]
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for app in needed:
        folder = apps[app][0]
        (target / folder.name).symlink_to(folder)


def _check_reachable(data_dir: Path, user: str) -> None:
    """Raise when ``user`` cannot reach ``data_dir`` (a 0700 parent such as a mkdtemp folder)."""
    for parent in data_dir.resolve().parents:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            raise PermissionError(
                f"{parent} is not searchable by others, so the {user} user cannot reach {data_dir}; chmod o+x it or use another folder"
            )


def _api(host: str, ports: Mapping[str, int], path: str, *, timeout: float = 1.0) -> Any:
    req = urllib.request.Request(f"http://{host}:{ports['management']}/api{path}")
    req.add_header(
        "Authorization",
        "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode(),
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())
    except OSError as exc:  # HTTPError and URLError are OSErrors
        raise BrokerUnavailable(f"RabbitMQ HTTP API {path}: {exc}") from exc


Consumer = tuple[str, str, str]  # vhost, queue, consumer tag


class _Announced:
    """Consumers the event exchange announced, kept until the HTTP API lists them (it folds new ones in a second later).

    Filled by the tap's thread, read by the snapshot's.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._since: dict[Consumer, float] = {}

    def created(self, consumer: Consumer) -> None:
        with self._lock:
            self._since[consumer] = time.monotonic()

    def deleted(self, consumer: Consumer) -> None:
        with self._lock:
            self._since.pop(consumer, None)

    def not_yet_listed(self, listed: set[Consumer]) -> set[Consumer]:
        """The announced consumers missing from ``listed``; those listed (or announced too long ago) are forgotten."""
        now = time.monotonic()
        with self._lock:
            for consumer, since in list(self._since.items()):
                if consumer in listed or now - since > NEW_CONSUMER_S:
                    del self._since[consumer]
            return set(self._since)


def _on_event(emit: Emit, announced: _Announced, key: str, headers: dict[str, Any]) -> None:
    """Note a consumer made or gone, and ask for a fresh snapshot on any change that is not the tap's own."""
    vhost = _str(headers.get("vhost", "/"))
    if key.startswith("consumer."):
        name = _str(headers.get("queue", ""))
    elif key.startswith("binding."):
        name = _str(headers.get("destination_name", ""))
    else:
        name = _str(headers.get("name", ""))
    if name.startswith(TAP_QUEUE_PREFIX):
        return
    if key.startswith("consumer."):
        consumer = (vhost, name, _str(headers.get("consumer_tag", "")))
        if key == "consumer.created":
            announced.created(consumer)
        else:
            announced.deleted(consumer)
    emit(None)


def _on_trace(emit: Emit, method: Any, props: Any, body: bytes) -> None:
    """Turn one firehose copy into an event: ``publish.<exchange>`` or ``deliver.<queue>``."""
    what, _, name = method.routing_key.partition(".")
    if what == "deliver" and name.startswith(TAP_QUEUE_PREFIX):
        return  # the event exchange's notices reaching the tap: the tap's own traffic
    trace = props.headers or {}
    original = trace.get("properties") or {}
    keys = trace.get("routing_keys") or []
    routing_key = keys[0] if keys else ""
    timestamp = original.get("timestamp")
    detail: dict[str, Any] = {
        "routing_key": routing_key,
        "exchange": trace.get("exchange_name") or "(default)",
    }
    if trace.get("vhost") and trace.get("vhost") != "/":
        detail["vhost"] = trace["vhost"]
    direction: Direction
    if what == "publish":
        direction = "produced"
        destination = name or "(default)"
        routed = trace.get("routed_queues")
        if routed is not None:
            detail["routed_queues"] = ",".join(_str(q) for q in routed)
    elif what == "deliver":
        direction = "consumed"
        destination = name
        detail["redelivered"] = "true" if trace.get("redelivered") else "false"
    else:
        return
    for prop in ("message_id", "correlation_id", "reply_to", "content_type", "type"):
        if original.get(prop):
            detail[prop] = _str(original[prop])
    emit(
        Event.build(
            broker="rabbitmq",
            direction=direction,
            destination=destination,
            payload=body,
            headers={k: _str(v) for k, v in (original.get("headers") or {}).items()},
            detail=detail,
            timestamp_ms=_millis(timestamp),
        )
    )


def _millis(stamp: Any) -> int | None:
    """AMQP timestamps are whole seconds; pika gives a datetime or an int."""
    if isinstance(stamp, int):
        return stamp * 1000
    if isinstance(stamp, datetime):
        return int(stamp.replace(tzinfo=stamp.tzinfo or UTC).timestamp() * 1000)
    return None


def _str(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value) if not isinstance(value, (dict, list)) else json.dumps(value, default=str)
