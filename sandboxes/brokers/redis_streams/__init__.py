"""Redis Streams: Debian's redis-server, and a tap that reads what XADD stored and XREADGROUP delivered.

The tap only reads (SCAN, XINFO, XRANGE), so it never takes an entry from a
group or acknowledges one. Entries added are read from each stream's end as
they come; entries delivered to a consumer group are the ones between the
group's previous and current ``last-delivered-id``. A plain XREAD (no group)
leaves no trace in the broker, so it is not shown. The image's Dockerfile is
beside this file (sandboxes/images/build.py finds it).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from sandboxes.brokers.base import (
    BASE_ENV,
    Backoff,
    BrokerKind,
    BrokerLimits,
    BrokerUnavailable,
    Emit,
    LaunchSpec,
    missing_client,
)
from sandboxes.events import Event

log = logging.getLogger(__name__)

SERVER = "/usr/bin/redis-server"
TAP_NAME = "broker-academy-tap"
POLL_S = 0.1  # how often streams and groups are read
DISCOVER_S = 1.0  # how often new streams are looked for, when nothing else says so
MAX_PER_STEP = 500  # entries shown one by one per stream or group and poll; beyond, one summary event
#: Commands switched off: CONFIG SET dir/dbfilename would let a cell write files as the broker's
#: account, and the others stop, replicate or extend the broker behind the platform's back.
_DISABLED = ("CONFIG", "DEBUG", "SHUTDOWN", "MONITOR", "SLAVEOF", "REPLICAOF", "MODULE")


class Redis(BrokerKind):
    name = "redis"
    title = "Redis Streams"
    default_ports: ClassVar[dict[str, int]] = {"redis": 6379}

    def missing(self) -> list[str]:
        found = [] if os.access(SERVER, os.X_OK) else ["redis-server not found: install the Debian package redis-server"]
        return found + missing_client("redis", "redis")

    def prepare(
        self,
        *,
        data_dir: Path,
        ports: Mapping[str, int],
        limits: BrokerLimits,
        host: str = "localhost",
        bind: str = "127.0.0.1",
    ) -> None:
        (data_dir / "store").mkdir(parents=True, exist_ok=True)
        renames = "".join(f'rename-command {command} ""\n' for command in _DISABLED)
        # noeviction: a full broker refuses writes (OOM error in the cell) instead of dropping streams.
        conf = f"""# Written by Broker Academy; rewritten on every start.
bind {bind}
port {ports["redis"]}
daemonize no
logfile ""
dir {data_dir / "store"}
save ""
appendonly yes
appendfsync everysec
maxmemory {max(32, limits.memory_mb // 2)}mb
maxmemory-policy noeviction
maxclients {limits.max_connections}
proto-max-bulk-len {max(1024 * 1024, limits.max_message_bytes)}
{renames}"""
        (data_dir / "redis.conf").write_text(conf)

    def launch(
        self,
        *,
        data_dir: Path,
        ports: Mapping[str, int],
        limits: BrokerLimits,
        host: str = "localhost",
        bind: str = "127.0.0.1",
    ) -> LaunchSpec:
        return LaunchSpec(argv=(SERVER, str(data_dir / "redis.conf")), env=dict(BASE_ENV), cwd=str(data_dir), stop_timeout=5.0)

    def probe_ready(self, *, host: str, ports: Mapping[str, int]) -> bool:
        try:
            return _ask(host, ports["redis"], b"PING\r\n").startswith(b"+PONG")
        except OSError:
            return False

    def connection_env(self, *, host: str, ports: Mapping[str, int]) -> dict[str, str]:
        return {"REDIS_URL": f"redis://{host}:{ports['redis']}/0"}

    def broker_version(self, *, host: str, ports: Mapping[str, int]) -> str | None:
        try:
            info = _ask(host, ports["redis"], b"INFO server\r\n")
        except OSError:
            return None
        for line in info.decode("utf-8", "replace").splitlines():
            if line.startswith("redis_version:"):
                return line.partition(":")[2].strip() or None
        return None

    def tap(self, *, host: str, ports: Mapping[str, int], emit: Emit, stop: threading.Event) -> None:
        import redis

        backoff = Backoff(stop)
        tap = _Tap(emit)
        while not stop.is_set():
            client: Any = redis.Redis(host=host, port=ports["redis"], socket_timeout=2.0, client_name=TAP_NAME)
            try:
                tap.start(client)
                backoff.reset()
                while not stop.wait(POLL_S):
                    tap.step(client)
            except redis.RedisError as exc:
                log.debug("redis tap: %s", exc)
                if backoff.wait():
                    return
            finally:
                client.close()

    def snapshot(self, *, host: str, ports: Mapping[str, int]) -> dict[str, Any]:
        import redis

        client: Any = redis.Redis(host=host, port=ports["redis"], socket_timeout=1.0, client_name=TAP_NAME)
        try:
            info = client.info()
            clients = client.client_list()
            streams = []
            for key in sorted(_streams(client)):
                try:
                    stream = client.xinfo_stream(key)
                    groups = client.xinfo_groups(key)
                except redis.ResponseError:
                    continue  # deleted or retyped since the scan
                streams.append(
                    {
                        "name": _text(key),
                        "length": stream.get("length", 0),
                        "first_id": _entry_id(stream.get("first-entry")),
                        "last_id": _text(stream.get("last-generated-id")),
                        "groups": [_group_view(client, key, g) for g in groups],
                    }
                )
        except redis.RedisError as exc:
            raise BrokerUnavailable(str(exc)) from exc
        finally:
            client.close()
        return {
            "broker": self.name,
            "version": info.get("redis_version"),
            "connections": sum(1 for c in clients if c.get("name") != TAP_NAME),
            "used_memory": info.get("used_memory"),
            "max_memory": info.get("maxmemory"),
            "streams": streams,
        }


class _Tap:
    """Positions the tap has shown: each stream's last entry and each group's last delivery."""

    def __init__(self, emit: Emit) -> None:
        self.emit = emit
        self.streams: dict[bytes, bytes] = {}  # stream -> last entry id shown
        self.groups: dict[tuple[bytes, bytes], bytes] = {}  # (stream, group) -> last delivered id shown
        self.since_discover = 0.0
        self.started = False

    def start(self, client: Any) -> None:
        """Take the current ends as seen: a (re)connected tap does not show the past again."""
        client.ping()
        for key in _streams(client):
            if key not in self.streams or not self.started:
                self.streams[key] = _last_id(client, key)
            for group in client.xinfo_groups(key):
                self.groups.setdefault((key, group["name"]), group["last-delivered-id"])
        self.started = True

    def step(self, client: Any) -> None:
        import redis

        self.since_discover += POLL_S
        if self.since_discover >= DISCOVER_S:
            self.since_discover = 0.0
            changed = False
            for key in _streams(client):
                if key not in self.streams:
                    self.streams[key] = b"0-0"  # new since the tap started: everything in it is news
                    changed = True
            if changed:
                self.emit(None)
        for key in list(self.streams):
            try:
                self._added(client, key)
                self._delivered(client, key)
            except redis.ResponseError:
                self.streams.pop(key, None)  # deleted, or no longer a stream
                self.emit(None)

    def _added(self, client: Any, key: bytes) -> None:
        entries = client.xrange(key, min=b"(" + self.streams[key], count=MAX_PER_STEP + 1)
        for entry_id, fields in entries[:MAX_PER_STEP]:
            self.emit(_event("produced", key, entry_id, fields, {}))
        if len(entries) > MAX_PER_STEP:
            # A burst: the rest is counted, not shown, and the tap goes on from the stream's end.
            last = _last_id(client, key)
            rest = len(client.xrange(key, min=b"(" + entries[MAX_PER_STEP - 1][0], max=last))
            self._summary("produced", key, rest, last, {})
            self.streams[key] = last
        elif entries:
            self.streams[key] = entries[-1][0]

    def _delivered(self, client: Any, key: bytes) -> None:
        for group in client.xinfo_groups(key):
            name, now = group["name"], group["last-delivered-id"]
            before = self.groups.get((key, name))
            self.groups[(key, name)] = now
            if before is None:
                before = b"0-0"  # a group made since the last look: what it got so far is news
                self.emit(None)
            if now == before or _id_tuple(now) < _id_tuple(before):
                continue  # nothing delivered, or the group was set back (XGROUP SETID)
            entries = client.xrange(key, min=b"(" + before, max=now, count=MAX_PER_STEP + 1)
            detail = {"group": _text(name)}
            for entry_id, fields in entries[:MAX_PER_STEP]:
                self.emit(_event("consumed", key, entry_id, fields, detail))
            if len(entries) > MAX_PER_STEP:
                self._summary("consumed", key, len(client.xrange(key, min=b"(" + before, max=now)) - MAX_PER_STEP, now, detail)

    def _summary(self, direction: Any, key: bytes, rest: int, up_to: bytes, detail: dict[str, str]) -> None:
        if rest > 0:
            self.emit(
                Event.build(
                    broker="redis",
                    direction=direction,
                    destination=_text(key),
                    payload=None,
                    detail={**detail, "not_shown": rest, "up_to_id": _text(up_to)},
                )
            )


def _event(direction: Any, key: bytes, entry_id: bytes, fields: dict[bytes, bytes], detail: dict[str, str]) -> Event:
    # An entry is field/value pairs; the panel shows them as one JSON object.
    payload = json.dumps({_text(k): _text(v) for k, v in fields.items()}, ensure_ascii=False).encode()
    return Event.build(
        broker="redis",
        direction=direction,
        destination=_text(key),
        payload=payload,
        timestamp_ms=_id_tuple(entry_id)[0],
        detail={**detail, "id": _text(entry_id)},
    )


def _streams(client: Any) -> list[bytes]:
    return list(client.scan_iter(count=1000, _type="stream"))


def _last_id(client: Any, key: bytes) -> bytes:
    last = client.xrevrange(key, count=1)
    return last[0][0] if last else b"0-0"


def _group_view(client: Any, key: bytes, group: dict[Any, Any]) -> dict[str, Any]:
    consumers = client.xinfo_consumers(key, group["name"])
    return {
        "name": _text(group["name"]),
        "last_delivered_id": _text(group.get("last-delivered-id")),
        "pending": group.get("pending", 0),
        "lag": group.get("lag"),
        "consumers": [{"name": _text(c["name"]), "pending": c.get("pending", 0), "idle_ms": c.get("idle")} for c in consumers],
    }


def _entry_id(entry: Any) -> str | None:
    return _text(entry[0]) if entry else None


def _id_tuple(entry_id: bytes | str) -> tuple[int, int]:
    text = _text(entry_id) or "0-0"
    ms, _, seq = text.partition("-")
    try:
        return int(ms), int(seq or 0)
    except ValueError:
        return 0, 0


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return "" if value is None else str(value)


def _ask(host: str, port: int, command: bytes) -> bytes:
    """One inline command and the start of its answer, for probes without the client."""
    with socket.create_connection((host, port), timeout=1.0) as sock:
        sock.sendall(command)
        return sock.recv(64 * 1024)
