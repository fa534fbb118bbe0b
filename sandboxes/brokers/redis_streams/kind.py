"""Redis Streams as a broker kind: install check, configuration, launch, probes, snapshot."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Mapping
from typing import Any, ClassVar

from sandboxes.brokers.base import BASE_ENV, BrokerKind, BrokerUnavailable, Emit, LaunchSpec, Site, missing_client

from .tap import TAP_NAME, _streams, _text

SERVER = "/usr/bin/redis-server"
#: Commands switched off: CONFIG SET dir/dbfilename would let a cell write files as the broker's
#: account, and the others stop, replicate or extend the broker behind the platform's back.
_DISABLED = ("CONFIG", "DEBUG", "SHUTDOWN", "MONITOR", "SLAVEOF", "REPLICAOF", "MODULE")


class Redis(BrokerKind):
    name = "redis"
    title = "Redis Streams"
    cell_preload = ("json", "redis")
    default_ports: ClassVar[dict[str, int]] = {"redis": 6379}

    def missing(self) -> list[str]:
        found = [] if os.access(SERVER, os.X_OK) else ["redis-server not found: install the Debian package redis-server"]
        return found + missing_client("redis", "redis")

    def prepare(self, *, site: Site) -> None:
        data_dir, ports, limits = site.data_dir, site.ports, site.limits
        (data_dir / "store").mkdir(parents=True, exist_ok=True)
        renames = "".join(f'rename-command {command} ""\n' for command in _DISABLED)
        # noeviction: a full broker refuses writes (OOM error in the cell) instead of dropping streams.
        conf = f"""# Written by Broker Academy; rewritten on every start.
bind {site.bind}
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

    def launch(self, *, site: Site) -> LaunchSpec:
        data_dir = site.data_dir
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
        from .tap import RedisTap

        RedisTap(host=host, ports=ports, emit=emit, stop=stop).run()

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


def _ask(host: str, port: int, command: bytes) -> bytes:
    """One inline command and the start of its answer, for probes without the client."""
    with socket.create_connection((host, port), timeout=1.0) as sock:
        sock.sendall(command)
        return sock.recv(64 * 1024)
