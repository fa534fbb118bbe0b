"""Newline-delimited JSON over a stream socket: the one channel between platform and agent."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from typing import Any

log = logging.getLogger("sandboxes.agent")

SOCKET_NAME = "agent.sock"
STATUS_NAME = "status.json"
#: A line longer than this is refused (a cell's code is the largest thing sent).
MAX_LINE = 4 * 1024 * 1024
#: The field of a connection's first message that carries the unit's credential (agents on TCP).
TOKEN_FIELD = "token"
#: The ``code`` of the error an agent answers a missing or wrong credential with, before closing.
REFUSED = "unauthorized"
#: A connection to an agent on TCP must send its first message within this time.
FIRST_MESSAGE_S = 10.0


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


async def read_message(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    """The next message, or None when the other side closed the connection."""
    line = await reader.readline()
    if not line:
        return None
    return json.loads(line)


async def send(writer: asyncio.StreamWriter, message: dict[str, Any]) -> None:
    writer.write(encode(message))
    await writer.drain()


def admits(request: dict[str, Any], token: bytes) -> bool:
    """Whether a connection's first message carries ``token`` (always, when there is none); the field is taken out."""
    if not token:
        return True
    supplied = request.pop(TOKEN_FIELD, None)
    # Compared in constant time: the time taken tells nothing of how much of a guess was right.
    return isinstance(supplied, str) and hmac.compare_digest(supplied.encode(), token)


async def first_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, token: bytes) -> dict[str, Any] | None:
    """A connection's first message, once it showed ``token``; None when the peer closed, or was refused (then told
    so). With a token (a server on the network) a peer that connects and says nothing is not kept waiting on."""
    if token:
        request = await asyncio.wait_for(read_message(reader), FIRST_MESSAGE_S)
    else:
        request = await read_message(reader)
    if request is None:
        return None
    if not admits(request, token):
        log.warning("connection refused: missing or wrong token, from %s", writer.get_extra_info("peername"))
        await send(writer, {"type": "error", "code": REFUSED, "message": "unauthorized"})
        return None
    return request
