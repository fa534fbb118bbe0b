"""The one shape of a broker event, shared by every tap, the agent and the browser.

Plain standard library only: this module runs inside sandbox units too.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from typing import Any, Literal

Direction = Literal["produced", "consumed"]

#: How many bytes of a payload travel to the browser; the size field keeps the truth.
PREVIEW_BYTES = 4096


@dataclass(frozen=True, slots=True)
class Preview:
    """A payload made safe to show: text when it is UTF-8, hex otherwise."""

    encoding: Literal["utf-8", "json", "hex", "empty"]
    text: str
    truncated: bool

    @classmethod
    def of(cls, payload: bytes | None, *, limit: int = PREVIEW_BYTES) -> Preview:
        """Return the preview of ``payload``; never raises, whatever the bytes are."""
        if not payload:
            return cls("empty", "", False)
        head = payload[:limit]
        truncated = len(payload) > limit
        try:
            text = head.decode("utf-8")
        except UnicodeDecodeError as exc:
            # A cut in the middle of a multi-byte character is still text.
            if truncated and exc.start >= len(head) - 3:
                text = head[: exc.start].decode("utf-8")
            else:
                return cls("hex", head.hex(" "), truncated)
        if not truncated and text[:1] in "{[" and text.rstrip()[-1:] in "}]":
            try:
                json.loads(text)
            except ValueError:
                pass
            else:
                # Pretty-printing is the browser's job: json.dumps with indent is pure Python and
                # would cap the tap at a few thousand messages a second.
                return cls("json", text, False)
        return cls("utf-8", text, truncated)


def _text(value: bytes | str | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(value).decode("ascii")


@dataclass(frozen=True, slots=True)
class Event:
    """One message seen produced to, or consumed from, a learner's broker.

    ``destination`` is the topic, queue, exchange or subject; ``detail`` holds
    what only some brokers have (routing key, consumer group, queue of a
    delivery, stream sequence) as short strings.
    """

    broker: str
    direction: Direction
    destination: str
    value: Preview
    size: int
    partition: int | None = None
    offset: int | None = None
    key: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    detail: dict[str, str] = field(default_factory=dict)
    timestamp_ms: int | None = None  # the broker's or producer's time, when it has one
    seen_ms: int = field(default_factory=lambda: int(time.time() * 1000))

    @classmethod
    def build(
        cls,
        *,
        broker: str,
        direction: Direction,
        destination: str,
        payload: bytes | None,
        key: bytes | str | None = None,
        headers: dict[str, Any] | list[tuple[str, Any]] | None = None,
        partition: int | None = None,
        offset: int | None = None,
        detail: dict[str, Any] | None = None,
        timestamp_ms: int | None = None,
    ) -> Event:
        """Normalise raw broker values; payloads and headers of any bytes are accepted."""
        items = headers.items() if isinstance(headers, dict) else (headers or [])
        return cls(
            broker=broker,
            direction=direction,
            destination=destination,
            value=Preview.of(payload),
            size=len(payload or b""),
            partition=partition,
            offset=offset,
            key=_text(key),
            headers={str(k): _text(v if isinstance(v, (bytes, str)) or v is None else str(v)) or "" for k, v in items},
            detail={str(k): str(v) for k, v in (detail or {}).items()},
            timestamp_ms=timestamp_ms,
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form sent to the platform and the browser (by hand: asdict deep-copies, slowly)."""
        value = self.value
        return {
            "broker": self.broker,
            "direction": self.direction,
            "destination": self.destination,
            "value": {"encoding": value.encoding, "text": value.text, "truncated": value.truncated},
            "size": self.size,
            "partition": self.partition,
            "offset": self.offset,
            "key": self.key,
            "headers": self.headers,
            "detail": self.detail,
            "timestamp_ms": self.timestamp_ms,
            "seen_ms": self.seen_ms,
        }
