"""NATS as a broker kind: install check, configuration, launch, probes and snapshot over the monitoring port."""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from sandboxes.brokers import versions
from sandboxes.brokers.base import BASE_ENV, BrokerKind, BrokerUnavailable, Console, Emit, LaunchSpec, Site
from sandboxes.brokers.json_http import get_json

from .tap import HIDDEN_PREFIXES, TAP_NAME


class Nats(BrokerKind):
    name = "nats"
    title = "NATS"
    cell_preload = ("asyncio", "json", "nats", "nats.js", "nats.js.api", "nats.js.errors")
    default_ports: ClassVar[dict[str, int]] = {"nats": 4222, "monitor": 8222}
    # The monitoring endpoints (/varz, /connz, /jsz ...) and the server's own index of them, which links
    # relatively; the index styles itself inline, and loads nothing else worth allowing.
    console = Console(port="monitor", csp="default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")

    def missing(self) -> list[str]:
        server = nats_server()
        if not os.access(server, os.X_OK):
            return [
                f"nats-server {versions.version('nats')} not found at {server}: run scripts/build-nats.sh (needs go), "
                "or set NATS_SERVER to one"
            ]
        return []

    def prepare(self, *, site: Site) -> None:
        data_dir, ports, limits, bind = site.data_dir, site.ports, site.limits, site.bind
        (data_dir / "jetstream").mkdir(parents=True, exist_ok=True)
        # JetStream keeps its memory store inside the process budget; the rest is the server itself.
        memory_store = max(16, limits.memory_mb // 4)
        conf = f"""# Written by Broker Academy; rewritten on every start.
server_name: broker-academy
listen: "{bind}:{ports["nats"]}"
http: "{bind}:{ports["monitor"]}"
max_connections: {limits.max_connections}
max_payload: {limits.max_message_bytes}
jetstream {{
  store_dir: "{data_dir / "jetstream"}"
  max_memory_store: {memory_store}MB
  max_file_store: {limits.store_mb}MB
}}
"""
        (data_dir / "nats-server.conf").write_text(conf)

    def launch(self, *, site: Site) -> LaunchSpec:
        data_dir, limits = site.data_dir, site.limits
        env = {
            **BASE_ENV,
            "GOMEMLIMIT": f"{limits.memory_mb * 3 // 4}MiB",
        }  # Go collects before the cgroup kills
        argv = (
            str(nats_server()),
            "-c",
            str(data_dir / "nats-server.conf"),
        )
        return LaunchSpec(argv=argv, env=env, cwd=str(data_dir), stop_timeout=5.0)

    def probe_ready(self, *, host: str, ports: Mapping[str, int]) -> bool:
        # /healthz answers ok only once JetStream is up, which cells rely on.
        try:
            return _monitor(host, ports, "/healthz", timeout=0.5).get("status") == "ok"
        except BrokerUnavailable:
            return False

    def connection_env(self, *, host: str, ports: Mapping[str, int]) -> dict[str, str]:
        return {"NATS_URL": f"nats://{host}:{ports['nats']}"}

    def broker_version(self, *, host: str, ports: Mapping[str, int]) -> str | None:
        # The server greets every connection with INFO {...}, which carries its version.
        try:
            with socket.create_connection((host, ports["nats"]), timeout=1.0) as sock:
                line = sock.makefile("rb").readline(64 * 1024)
        except OSError:
            return None
        verb, _, info = line.partition(b" ")
        try:
            said = json.loads(info).get("version") if verb == b"INFO" else None
        except ValueError:
            return None
        return said if isinstance(said, str) and said else None

    def tap(self, *, host: str, ports: Mapping[str, int], emit: Emit, stop: threading.Event) -> None:
        from .tap import NatsTap

        NatsTap(host=host, ports=ports, emit=emit, stop=stop).run()

    def snapshot(self, *, host: str, ports: Mapping[str, int]) -> dict[str, Any]:
        varz = _monitor(host, ports, "/varz")
        connz = _monitor(host, ports, "/connz?subs=1&limit=256")
        jsz = _monitor(host, ports, "/jsz?accounts=1&streams=1&consumers=1&config=1")
        subjects: dict[str, int] = {}
        connections = 0
        for conn in connz.get("connections") or []:
            if conn.get("name") == TAP_NAME:
                continue
            connections += 1
            for subject in conn.get("subscriptions_list") or []:
                if not subject.startswith(HIDDEN_PREFIXES):
                    subjects[subject] = subjects.get(subject, 0) + 1
        streams = []
        for account in jsz.get("account_details") or []:
            for stream in account.get("stream_detail") or []:
                state, config = stream.get("state") or {}, stream.get("config") or {}
                streams.append(
                    {
                        "name": stream.get("name"),
                        "subjects": config.get("subjects") or [],
                        "retention": config.get("retention"),
                        "storage": config.get("storage"),
                        "messages": state.get("messages", 0),
                        "bytes": state.get("bytes", 0),
                        "first_seq": state.get("first_seq", 0),
                        "last_seq": state.get("last_seq", 0),
                        "consumers": [_consumer_view(c) for c in stream.get("consumer_detail") or []],
                    }
                )
        return {
            "broker": self.name,
            "version": varz.get("version"),
            "connections": connections,
            "subscriptions": [{"subject": s, "count": n} for s, n in sorted(subjects.items())],
            "streams": sorted(streams, key=lambda s: s["name"] or ""),
            "jetstream": {
                "memory": jsz.get("memory", 0),
                "storage": jsz.get("storage", 0),
                "max_memory": (jsz.get("config") or {}).get("max_memory"),
                "max_storage": (jsz.get("config") or {}).get("max_storage"),
            },
        }


def nats_server() -> Path:
    """The nats-server to run: ``NATS_SERVER``, else the one scripts/build-nats.sh built into the cache."""
    if os.environ.get("NATS_SERVER"):
        return Path(os.environ["NATS_SERVER"])
    return versions.home("nats") / "nats-server"


def nats_cli() -> Path:
    """The ``nats`` command-line tool (natscli): ``NATS_CLI``, else the one scripts/build-nats.sh built into the cache."""
    if os.environ.get("NATS_CLI"):
        return Path(os.environ["NATS_CLI"])
    return versions.home("natscli") / "nats"


def _consumer_view(c: dict[str, Any]) -> dict[str, Any]:
    config = c.get("config") or {}
    return {
        "name": c.get("name"),
        "durable": bool(config.get("durable_name")),
        "filter_subject": config.get("filter_subject") or "",
        "ack_policy": config.get("ack_policy"),
        "delivered_stream_seq": (c.get("delivered") or {}).get("stream_seq", 0),
        "ack_floor_stream_seq": (c.get("ack_floor") or {}).get("stream_seq", 0),
        "num_pending": c.get("num_pending", 0),
        "num_ack_pending": c.get("num_ack_pending", 0),
        "num_redelivered": c.get("num_redelivered", 0),
        "num_waiting": c.get("num_waiting", 0),
    }


def _monitor(host: str, ports: Mapping[str, int], path: str, *, timeout: float = 1.0) -> dict[str, Any]:
    answer: dict[str, Any] = get_json(f"http://{host}:{ports['monitor']}{path}", timeout=timeout)
    return answer


def image_files() -> dict[str, Path]:
    """What the kind's image holds besides the agent (sandboxes/images/build.py): nats-server and natscli,
    built with Go on the host by scripts/build-nats.sh (static, so they run in Debian)."""
    for binary in (nats_server(), nats_cli()):
        if not binary.is_file():
            raise FileNotFoundError(f"{binary} is missing: run scripts/build-nats.sh")
    return {f"nats-bin/{binary.name}": binary for binary in (nats_server(), nats_cli())}
