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
#: What else of a message is kept, in characters: a key, a destination, a header's name and value, a
#: detail's value, and how many headers and details. A broker lets each be about a megabyte; an event
#: stays small enough that buffers of them can be bounded (see :func:`json_weight`).
KEY_CHARS = 1024
DESTINATION_CHARS = 1024
NAME_CHARS = 256
HEADER_CHARS = 1024
DETAIL_CHARS = 256
HEADERS_KEPT = 16
#: JSON of an event beyond its strings (field names, numbers, punctuation), at most.
JSON_OVERHEAD = 512
#: Bytes a character may take in JSON: a control character is escaped as \u00XX.
JSON_CHAR_BYTES = 6
ELLIPSIS = "…"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + ELLIPSIS


def _clip_items(items: Any, *, value_chars: int) -> dict[str, str]:
    """At most HEADERS_KEPT names with their values, each clipped; the rest counted under "…"."""
    kept: dict[str, str] = {}
    left = 0
    for name, value in items:
        if len(kept) < HEADERS_KEPT:
            kept[_clip(str(name), NAME_CHARS)] = _clip(value, value_chars)
        else:
            left += 1
    if left:
        kept[ELLIPSIS] = f"+{left}"
    return kept


def json_weight(event: dict[str, Any]) -> int:
    """An upper bound of the bytes ``event`` (an :meth:`Event.to_dict`) takes in the agent's JSON lines.

    Cheap (no encoding): the buffers of live events count by it, so that they hold a bounded
    number of bytes whatever the messages carry.
    """
    chars = len(event["value"]["text"]) + len(event["destination"]) + len(event["key"] or "")
    for mapping in (event["headers"], event["detail"]):
        chars += sum(len(name) + len(value) + 6 for name, value in mapping.items())
    return JSON_OVERHEAD + JSON_CHAR_BYTES * chars


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
        """Normalise raw broker values; payloads and headers of any bytes are accepted.

        What may be large is clipped (the payload to its preview, the rest to the *_CHARS above),
        so an event is at most a few hundred kilobytes in JSON whatever the message was.
        """
        items = headers.items() if isinstance(headers, dict) else (headers or [])
        return cls(
            broker=broker,
            direction=direction,
            destination=_clip(destination, DESTINATION_CHARS),
            value=Preview.of(payload),
            size=len(payload or b""),
            partition=partition,
            offset=offset,
            key=None if key is None else _clip(_text(key) or "", KEY_CHARS),
            headers=_clip_items(
                ((k, _text(v if isinstance(v, (bytes, str)) or v is None else str(v)) or "") for k, v in items),
                value_chars=HEADER_CHARS,
            ),
            detail=_clip_items(((k, str(v)) for k, v in (detail or {}).items()), value_chars=DETAIL_CHARS),
            timestamp_ms=timestamp_ms,
        )

    def weight(self) -> int:
        """An upper bound of this event's bytes in JSON (:func:`json_weight`)."""
        return json_weight(self.to_dict())

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
