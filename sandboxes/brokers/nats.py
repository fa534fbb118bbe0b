"""NATS with JetStream: a nats-server built from its Go module, with a store and limits of its own.

The server (and the ``nats`` command-line tool) are built by scripts/build-nats.sh
with the machine's Go into the Broker Academy cache, found through ``NATS_SERVER``
or the cache; the versions are pinned in :mod:`sandboxes.brokers.versions`.

Produced messages are seen by a ``>`` subscription; consumed ones by following
JetStream consumers' positions (ack floor, or delivered for ``AckNone``),
because core NATS has no notion of "consumed" to observe. The same ``>``
subscription also sees JetStream deliveries (their reply subject is a
``$JS.ACK.`` token naming stream and sequence): those are kept in a small cache
so a work-queue message can still be shown after the stream has deleted it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import socket
import threading
import urllib.request
from collections import OrderedDict
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from sandboxes.brokers import versions
from sandboxes.brokers.base import (
    BASE_ENV,
    Backoff,
    BrokerKind,
    BrokerUnavailable,
    Emit,
    LaunchSpec,
    Site,
)
from sandboxes.events import Event

logger = logging.getLogger(__name__)

TAP_NAME = "broker-academy-tap"
TAP_INBOX = "_BA_TAP_INBOX"
# API chatter, replies and the tap's own requests; KV ($KV.) and object store ($O.) are learner data.
HIDDEN_PREFIXES = ("$JS.", "$SYS.", "_INBOX.", TAP_INBOX + ".")
POLL_S = 0.25  # how often consumer positions are read
# Records shown one by one when a position jumps; beyond, one summary event.
MAX_PER_STEP = 500
# Delivered messages kept by (stream, sequence) until a consumer's position passes them.
CACHE_SIZE = 5000


class Nats(BrokerKind):
    name = "nats"
    title = "NATS"
    default_ports: ClassVar[dict[str, int]] = {"nats": 4222, "monitor": 8222}

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
  max_file_store: {limits.disk_mb}MB
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
            return _http_json(host, ports["monitor"], "/healthz", timeout=0.5).get("status") == "ok"
        except (OSError, ValueError):
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
        asyncio.run(_Tap(f"nats://{host}:{ports['nats']}", emit, stop).run())

    def snapshot(self, *, host: str, ports: Mapping[str, int]) -> dict[str, Any]:
        port = ports["monitor"]
        try:
            varz = _http_json(host, port, "/varz")
            connz = _http_json(host, port, "/connz?subs=1&limit=256")
            jsz = _http_json(host, port, "/jsz?accounts=1&streams=1&consumers=1&config=1")
        except (OSError, ValueError) as exc:
            raise BrokerUnavailable(str(exc)) from exc
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


def _http_json(host: str, port: int, path: str, *, timeout: float = 1.0) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=timeout) as resp:
        return json.loads(resp.read())


def subject_matches(pattern: str, subject: str) -> bool:
    """True when ``subject`` is matched by the NATS ``pattern`` (``*`` one token, ``>`` the rest)."""
    p, s = pattern.split("."), subject.split(".")
    for i, token in enumerate(p):
        if token == ">":
            return len(s) > i
        if i >= len(s) or (token != "*" and token != s[i]):
            return False
    return len(p) == len(s)


def _ack_reply(reply: str) -> tuple[str, int, int | None] | None:
    """(stream, stream sequence, stored time in ms) from a JetStream ack subject, or None."""
    tokens = reply.split(".")
    # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ns>.<pending>, or the newer
    # form with domain and account hash after ACK (and an optional token at the end).
    base = 2 if len(tokens) == 9 else 4 if len(tokens) in (11, 12) else None
    if base is None:
        return None
    try:
        return tokens[base], int(tokens[base + 3]), int(tokens[base + 5]) // 1_000_000
    except ValueError:
        return None


def _parse_time_ms(value: str | None) -> int | None:
    if not value:
        return None
    # The server writes nanoseconds, which fromisoformat (3.11) refuses: keep microseconds.
    head, _, frac = value.rstrip("Z").partition(".")
    try:
        stamp = datetime.fromisoformat(head + ("." + frac[:6] if frac else "") + "+00:00")
    except ValueError:
        return None
    return int(stamp.timestamp() * 1000)


def _parse_headers(raw_b64: str | None) -> dict[str, str]:
    if not raw_b64:
        return {}
    lines = base64.b64decode(raw_b64).decode("utf-8", "replace").split("\r\n")[1:]  # first: NATS/1.0
    headers = {}
    for line in lines:
        key, sep, value = line.partition(":")
        if sep:
            headers[key.strip()] = value.strip()
    return headers


class _Tap:
    """The tap's state for one run: positions of consumers and recently stored messages."""

    def __init__(self, url: str, emit: Emit, stop: threading.Event) -> None:
        self.url, self.emit, self.stop = url, emit, stop
        self.positions: dict[tuple[str, str], int] = {}
        self.cache: OrderedDict[tuple[str, int], dict[str, Any]] = OrderedDict()

    async def run(self) -> None:
        import nats  # the client is imported here: the platform side never needs it

        backoff = Backoff(self.stop)
        while not self.stop.is_set():
            try:
                nc = await nats.connect(
                    self.url,
                    name=TAP_NAME,
                    inbox_prefix=TAP_INBOX,
                    connect_timeout=1,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                    allow_reconnect=True,
                    error_cb=self._on_error,
                )
            except Exception as exc:
                logger.debug("nats tap: cannot connect: %s", exc)
                if await asyncio.to_thread(backoff.wait):
                    return
                continue
            backoff.reset()
            try:
                sub = await nc.subscribe(
                    ">",
                    cb=self._on_message,
                    pending_msgs_limit=65536,
                    pending_bytes_limit=64 * 1024 * 1024,
                )
                self.positions.clear()
                first = True
                while not self.stop.is_set() and not nc.is_closed:
                    if nc.is_connected:
                        # Deliveries queued for _on_message must land in the cache before positions are read.
                        for _ in range(20):
                            if not sub.pending_msgs:
                                break
                            await asyncio.sleep(0.005)
                        try:
                            await self._poll(nc, baseline=first)
                            first = False
                        except Exception as exc:
                            logger.debug("nats tap: poll failed: %s", exc)
                    await asyncio.sleep(POLL_S)
            finally:
                # Closing a broken connection may fail; there is nothing left to do then.
                with contextlib.suppress(Exception):
                    await nc.close()

    async def _on_error(self, exc: Exception) -> None:
        logger.debug("nats tap: %s", exc)

    async def _on_message(self, msg: Any) -> None:
        if msg.subject.startswith(HIDDEN_PREFIXES):
            return
        if msg.reply and msg.reply.startswith("$JS.ACK."):
            # A JetStream delivery to some consumer, not a publish: remember it for _follow.
            where = _ack_reply(msg.reply)
            if where:
                self.cache[where[:2]] = {
                    "seq": where[1],
                    "subject": msg.subject,
                    "data": msg.data,
                    "headers": msg.headers or {},
                    "time_ms": where[2],
                }
                self.cache.move_to_end(where[:2])
                while len(self.cache) > CACHE_SIZE:
                    self.cache.popitem(last=False)
            return
        self.emit(
            Event.build(
                broker="nats",
                direction="produced",
                destination=msg.subject,
                payload=msg.data,
                headers=msg.headers or {},
                detail={"reply": msg.reply} if msg.reply and not msg.reply.startswith(HIDDEN_PREFIXES) else None,
            )
        )

    async def _api(self, nc: Any, subject: str, body: dict[str, Any]) -> dict[str, Any]:
        resp = await nc.request(subject, json.dumps(body).encode(), timeout=1.0)
        return json.loads(resp.data)

    async def _poll(self, nc: Any, *, baseline: bool) -> None:
        listing = await self._api(nc, "$JS.API.STREAM.LIST", {"offset": 0})
        if "error" in listing:
            return  # JetStream off or not ready: only core NATS traffic to show
        seen: set[tuple[str, str]] = set()
        for stream in listing.get("streams") or []:
            name = stream["config"]["name"]
            consumers = await self._api(nc, f"$JS.API.CONSUMER.LIST.{name}", {"offset": 0})
            for info in consumers.get("consumers") or []:
                key = (name, info["name"])
                seen.add(key)
                await self._follow(nc, key, info, baseline=baseline)
        for key in set(self.positions) - seen:
            del self.positions[key]

    async def _follow(self, nc: Any, key: tuple[str, str], info: dict[str, Any], *, baseline: bool) -> None:
        config = info.get("config") or {}
        mark = "delivered" if config.get("ack_policy") == "none" else "ack_floor"
        position = (info.get(mark) or {}).get("stream_seq", 0)
        if key not in self.positions:
            if baseline:
                self.positions[key] = position
                return
            # A consumer born since the last poll: what it took is at most its own count.
            taken = (info.get(mark) or {}).get("consumer_seq", 0)
            self.positions[key] = max(0, position - taken)
        before = self.positions[key]
        if position <= before:
            self.positions[key] = position  # moved back (stream purged, consumer reset)
            return
        self.positions[key] = position
        stream, consumer = key
        subject_filter = config.get("filter_subject") or ">"
        found = {
            seq: msg
            for (s, seq), msg in self.cache.items()
            if s == stream and before < seq <= position and subject_matches(subject_filter, msg["subject"])
        }
        if len(found) < min(position - before, MAX_PER_STEP):
            # Delivered before the tap connected, or cache overrun: ask the stream (limits retention keeps them).
            for msg in await self._fetch(nc, stream, before + 1, position, subject_filter):
                found.setdefault(msg["seq"], msg)
        shown = sorted(found)[:MAX_PER_STEP]
        for seq in shown:
            msg = found[seq]
            self.emit(
                Event.build(
                    broker="nats",
                    direction="consumed",
                    destination=msg["subject"],
                    payload=msg["data"],
                    headers=msg["headers"],
                    offset=seq,
                    timestamp_ms=msg["time_ms"],
                    detail={"stream": stream, "consumer": consumer},
                )
            )
        rest = (position - before) - len(shown) if subject_filter == ">" else len(found) - len(shown)
        if rest > 0 and len(shown) >= MAX_PER_STEP:
            self.emit(
                Event.build(
                    broker="nats",
                    direction="consumed",
                    destination=subject_filter if subject_filter != ">" else stream,
                    payload=None,
                    detail={
                        "stream": stream,
                        "consumer": consumer,
                        "not_shown": rest,
                        "up_to_seq": position,
                    },
                )
            )

    async def _fetch(self, nc: Any, stream: str, first: int, last: int, subject_filter: str) -> list[dict[str, Any]]:
        """Stored messages with sequence in [first, last] matching the filter, at most MAX_PER_STEP."""
        out: list[dict[str, Any]] = []
        seq = first
        while seq <= last and len(out) < MAX_PER_STEP:
            resp = await self._api(
                nc,
                f"$JS.API.STREAM.MSG.GET.{stream}",
                {"seq": seq, "next_by_subj": subject_filter},
            )
            raw = resp.get("message")
            if not raw or raw["seq"] > last:
                break
            out.append(
                {
                    "seq": raw["seq"],
                    "subject": raw["subject"],
                    "data": base64.b64decode(raw.get("data") or ""),
                    "headers": _parse_headers(raw.get("hdrs")),
                    "time_ms": _parse_time_ms(raw.get("time")),
                }
            )
            seq = raw["seq"] + 1
        return out
