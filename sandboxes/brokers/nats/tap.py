"""The NATS tap: a ``>`` subscription for what is published, JetStream consumers' positions for what is consumed."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections import OrderedDict
from datetime import datetime
from typing import Any, ClassVar

from sandboxes.brokers.tap import ReconnectingTap, not_shown, tap_watching_mark
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


class NatsTap(ReconnectingTap):
    """The tap's state: positions of consumers and recently stored messages, on an event loop of its own."""

    broker: ClassVar[str] = "nats"
    watches_on_connect: ClassVar[bool] = False  # a subscription has no past: it marks itself once the server has it
    loop: asyncio.AbstractEventLoop | None = None
    nc: Any = None

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.positions: dict[tuple[str, str], int] = {}
        self.cache: OrderedDict[tuple[str, int], dict[str, Any]] = OrderedDict()

    def connect(self) -> None:
        import nats  # the client is imported here: the platform side never needs it

        self.loop = asyncio.new_event_loop()
        self.nc = self.loop.run_until_complete(
            nats.connect(
                f"nats://{self.host}:{self.ports['nats']}",
                name=TAP_NAME,
                inbox_prefix=TAP_INBOX,
                connect_timeout=1,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
                allow_reconnect=True,
                error_cb=self._on_error,
            )
        )

    def watch(self) -> None:
        assert self.loop is not None
        self.loop.run_until_complete(self._watch(self.nc))

    def close(self) -> None:
        if self.loop is None:
            return
        if self.nc is not None:
            # Closing a broken connection may fail; there is nothing left to do then.
            with contextlib.suppress(Exception):
                self.loop.run_until_complete(self.nc.close())
        self.loop.close()
        self.loop = self.nc = None

    async def _watch(self, nc: Any) -> None:
        sub = await nc.subscribe(
            ">",
            cb=self._on_message,
            pending_msgs_limit=65536,
            pending_bytes_limit=64 * 1024 * 1024,
        )
        await nc.flush(timeout=2)  # the server has the subscription: what is published from here on reaches it
        tap_watching_mark()
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
                not_shown(
                    broker="nats",
                    direction="consumed",
                    destination=subject_filter if subject_filter != ">" else stream,
                    count=rest,
                    detail={"stream": stream, "consumer": consumer, "up_to_seq": position},
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
