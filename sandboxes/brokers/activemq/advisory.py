"""ActiveMQ's advisory messages and statistics replies, as STOMP delivers them, turned into events and counters."""

from __future__ import annotations

import base64
import json
import struct
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Mapping
from typing import Any

from sandboxes.events import Direction, Event


def advisory_event(headers: Mapping[str, str], body: bytes) -> Event | None:
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


def map_xml(body: bytes) -> dict[str, Any]:
    """Parse the jms-map-xml rendering of a MapMessage: <map><entry><string>k</string><long>1</long></entry>..."""
    out: dict[str, Any] = {}
    for entry in ET.fromstring(body):
        key, value = list(entry)[:2]
        text = value.text or ""
        out[key.text or ""] = (
            int(text) if value.tag in ("long", "int", "short") else float(text) if value.tag == "double" else text
        )
    return out
