"""The Redis Streams tap: reads what XADD stored and XREADGROUP delivered, never reading as a group."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from sandboxes.brokers.tap import ReconnectingTap, broker_ready_at_ms, not_shown
from sandboxes.events import Event

TAP_NAME = "broker-academy-tap"
POLL_S = 0.1  # how often streams and groups are read
DISCOVER_S = 1.0  # how often new streams are looked for, when nothing else says so
MAX_PER_STEP = 500  # entries shown one by one per stream or group and poll; beyond, one summary event


class RedisTap(ReconnectingTap):
    """Reads each stream's new entries and each group's new deliveries; remembers what it showed across reconnects."""

    broker: ClassVar[str] = "redis"
    client: Any = None

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.streams: dict[bytes, bytes] = {}  # stream -> last entry id shown
        self.groups: dict[tuple[bytes, bytes], bytes] = {}  # (stream, group) -> last delivered id shown
        self.since_discover = 0.0
        self.started = False
        # Entry ids carry the broker's clock in ms: what was written after the tap was made is news even when
        # the first connection comes late (a busy machine), and data kept from an earlier run is not shown again.
        self.born = f"{broker_ready_at_ms()}-0".encode()

    def connect(self) -> None:
        import redis  # imported here: the platform side never needs it

        self.client = redis.Redis(host=self.host, port=self.ports["redis"], socket_timeout=2.0, client_name=TAP_NAME)
        self.start(self.client)

    def watch(self) -> None:
        while not self.stop.wait(POLL_S):
            self.step(self.client)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        self.client = None

    def start(self, client: Any) -> None:
        """Take the past as seen: a reconnected tap does not show it again; the first shows what came since it was made."""
        client.ping()
        for key in _streams(client):
            seen = _last_id(client, key) if self.started else _last_id(client, key, before=self.born)
            if key not in self.streams or not self.started:
                self.streams[key] = seen
            for group in client.xinfo_groups(key):
                delivered = group["last-delivered-id"]
                if not self.started and _id_tuple(delivered) > _id_tuple(seen):
                    delivered = seen
                self.groups.setdefault((key, group["name"]), delivered)
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
                not_shown(
                    broker="redis",
                    direction=direction,
                    destination=_text(key),
                    count=rest,
                    detail={**detail, "up_to_id": _text(up_to)},
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


def _last_id(client: Any, key: bytes, before: bytes | None = None) -> bytes:
    """The stream's last entry id, or its last one older than ``before``; 0-0 when there is none."""
    last = client.xrevrange(key, max=b"(" + before if before else b"+", count=1)
    return last[0][0] if last else b"0-0"


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
