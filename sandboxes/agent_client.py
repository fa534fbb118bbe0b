"""The platform's side of the agent socket: status, run a cell, check, subscribe, shut down.

An agent is reached at an :class:`~sandboxes.backends.base.AgentAddress`: a Unix socket
(process and docker backends) or ``host:port`` (kubernetes). The first message of every
connection carries the address's token when it has one; the agent checks it before
anything else. A bare Path still means a Unix socket without a token.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from sandboxes.agent import protocol
from sandboxes.backends.base import AgentAddress

#: Where an agent is: an address, or (as before addresses) the path of its Unix socket.
Address = AgentAddress | Path

#: How long a run may take beyond its own limit before the agent counts as gone: time to wait its turn
#: behind the unit's other runs (at most a few, sandboxes/ws_limits.py), start its process and report.
RUN_DEADLINE_SLACK_S = 120.0


class AgentUnavailable(Exception):
    """The agent's socket does not answer (not started yet, or gone)."""


class AgentRefused(AgentUnavailable):
    """The agent answered but refused the connection's credential."""


def _address(where: Address) -> AgentAddress:
    return where if isinstance(where, AgentAddress) else AgentAddress(path=where)


async def _open(where: Address, timeout: float = 5.0) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    address = _address(where)
    try:
        if address.path is not None:
            opening = asyncio.open_unix_connection(str(address.path), limit=protocol.MAX_LINE)
        else:
            opening = asyncio.open_connection(address.host, address.port, limit=protocol.MAX_LINE)
        async with asyncio.timeout(timeout):  # not wait_for: no task of its own, no turn of the loop more per run
            return await opening
    except (TimeoutError, OSError) as exc:
        raise AgentUnavailable(f"agent at {address} does not answer: {exc}") from exc


#: A connection to an agent, opened and not yet used.
Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def connect(where: Address) -> Connection:
    """A connection to the agent for a ``run`` to come (its first message, the credential with it, not sent yet)."""
    return await _open(where)


async def _send_first(writer: asyncio.StreamWriter, where: Address, message: dict[str, Any]) -> None:
    """The connection's first message, with the credential the agent checks before reading it."""
    token = _address(where).token
    await protocol.send(writer, {**message, protocol.TOKEN_FIELD: token} if token else message)


def _refusal(message: dict[str, Any]) -> None:
    if message.get("type") == "error" and message.get("code") == protocol.REFUSED:
        raise AgentRefused(message.get("message") or "the agent refused the credential")


async def request(where: Address, message: dict[str, Any], *, timeout: float = 5.0) -> dict[str, Any]:
    """One request, one reply."""
    reader, writer = await _open(where, timeout)
    try:
        await _send_first(writer, where, message)
        reply = await asyncio.wait_for(protocol.read_message(reader), timeout)
        if reply is None:
            raise AgentUnavailable("agent closed the connection without answering")
        _refusal(reply)
        return reply
    finally:
        writer.close()


async def status(where: Address) -> dict[str, Any]:
    return await request(where, {"op": "status"}, timeout=3.0)


#: An agent older than the ``watch`` op is asked for its status this often instead.
WATCH_FALLBACK_EVERY_S = 0.5


async def watch(where: Address) -> AsyncGenerator[dict[str, Any]]:
    """The agent's status now and at every change of its stage, until the caller stops iterating.

    Raises AgentUnavailable when the agent does not answer or hangs up (it exited).
    """
    reader, writer = await _open(where)
    try:
        await _send_first(writer, where, {"op": "watch"})
        while True:
            message = await protocol.read_message(reader)
            if message is None:
                raise AgentUnavailable("agent closed the watch")
            _refusal(message)
            if message.get("type") == "error":
                break  # an agent from before ``watch``: ask it instead, below
            yield message
    finally:
        writer.close()
    while True:
        yield await status(where)
        await asyncio.sleep(WATCH_FALLBACK_EVERY_S)


async def node(where: Address, *, node: int, action: str) -> dict[str, Any]:
    """Stop or start one node of the unit's broker; the agent's answer ({"ok", "brokers"} or an error frame).

    A clean stop of a Kafka node hands its leaderships over first: allow it most of a minute.
    """
    return await request(where, {"op": "node", "node": node, "action": action}, timeout=60.0)


async def shutdown(where: Address) -> None:
    with contextlib.suppress(AgentUnavailable, ConnectionError):
        await request(where, {"op": "shutdown"}, timeout=3.0)


async def run(
    where: Address,
    *,
    code: str,
    timeout: float,
    on_message: Callable[[dict[str, Any]], Awaitable[None]],
    interrupt: asyncio.Event | None = None,
    op: str = "run",
    opened: Connection | None = None,
) -> dict[str, Any]:
    """Run a cell; every output message goes to ``on_message``; returns the exit message.

    ``opened``: a connection to ``where`` opened ahead (``connect``), used instead of a new one.
    A check goes to ``where.checker`` when the unit has one (AgentAddress.checker), never to the agent.
    Raises AgentUnavailable when the agent is gone, or has not ended the run by ``timeout`` plus
    RUN_DEADLINE_SLACK_S: a wedged agent must not hold a web task, a socket and a run slot forever.
    """
    if op == "check" and isinstance(where, AgentAddress) and where.checker is not None:
        where = where.checker
        if opened is not None:
            opened[1].close()
            opened = None
    reader, writer = opened if opened is not None else await _open(where)
    watcher = None
    deadline = asyncio.timeout(timeout + RUN_DEADLINE_SLACK_S)
    try:
        await _send_first(writer, where, {"op": op, "code": code, "timeout": timeout})
        if interrupt is not None:

            async def forward_interrupt() -> None:
                await interrupt.wait()
                with contextlib.suppress(ConnectionError):
                    await protocol.send(writer, {"op": "interrupt"})

            watcher = asyncio.create_task(forward_interrupt())
        async with deadline:
            while True:
                message = await protocol.read_message(reader)
                if message is None:
                    raise AgentUnavailable("agent closed the connection during the run")
                _refusal(message)
                if message.get("type") == "exit":
                    return message
                await on_message(message)
    except TimeoutError:
        if not deadline.expired():
            raise
        raise AgentUnavailable(f"agent did not end the run within {timeout + RUN_DEADLINE_SLACK_S:.0f} s") from None
    finally:
        if watcher is not None:
            watcher.cancel()
        writer.close()


async def check(where: Address, *, code: str, timeout: float) -> dict[str, Any]:
    """Run an exercise check; returns {"status", "output", ...}."""

    async def ignore(_: dict[str, Any]) -> None:
        return None

    return await run(where, code=code, timeout=timeout, on_message=ignore, op="check")


async def subscribe(where: Address) -> AsyncIterator[dict[str, Any]]:
    """Broker events and snapshots, as the agent sends them, until the caller stops iterating."""
    reader, writer = await _open(where)
    try:
        await _send_first(writer, where, {"op": "subscribe"})
        while True:
            message = await protocol.read_message(reader)
            if message is None:
                return
            _refusal(message)
            yield message
    finally:
        writer.close()


async def terminal(where: Address, *, rows: int, cols: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Attach to the unit's terminal (agent/terminal.py): the open connection, for the caller to relay and close."""
    reader, writer = await _open(where)
    await _send_first(writer, where, {"op": "terminal", "rows": rows, "cols": cols})
    return reader, writer


async def console(
    where: Address, *, method: str, target: str, headers: list[list[str]], body: bytes, timeout: float = 40.0
) -> tuple[int, list[tuple[str, str]], bytes]:
    """One request to the unit's broker console (agent/console.py); returns (status, headers, body).

    Raises AgentUnavailable when the agent is gone or the console does not answer, ValueError when the
    agent refuses the request.
    """
    reader, writer = await _open(where)
    try:
        await _send_first(
            writer,
            where,
            {"op": "console", "method": method, "target": target, "headers": headers, "body": base64.b64encode(body).decode()},
        )
        async with asyncio.timeout(timeout):
            head = await protocol.read_message(reader)
            if head is None:
                raise AgentUnavailable("agent closed the connection without answering")
            _refusal(head)
            if head.get("type") != "response":
                if head.get("code") == "unavailable":
                    raise AgentUnavailable(head.get("message") or "the console does not answer")
                raise ValueError(head.get("message") or "the agent refused the console request")
            chunks = []
            while (message := await protocol.read_message(reader)) is not None and message.get("type") == "body":
                chunks.append(base64.b64decode(message["data"]))
            if message is None or message.get("type") != "end":
                raise AgentUnavailable("agent closed the connection during the console's answer")
        return int(head["status"]), [(str(k), str(v)) for k, v in head["headers"]], b"".join(chunks)
    except TimeoutError:
        raise AgentUnavailable(f"the console did not answer within {timeout:.0f} s") from None
    finally:
        writer.close()


#: How long an export (the broker's clean stop, then its data) or a restore may take in all.
KEPT_DATA_WITHIN_S = 300.0


async def export_data(where: Address, *, into: Path, timeout: float = KEPT_DATA_WITHIN_S) -> int:
    """Stop the unit's broker and write its data folder, a gzipped tar (agent/kept_data.py), to ``into``;
    returns its size. The archive is read through to its end before the size is returned: an agent that
    goes away half way leaves a truncated file, which :func:`sandboxes.backends.kept_archives.verified`
    refuses. Raises AgentUnavailable when the agent is gone or refuses."""
    reader, writer = await _open(where)
    try:
        async with asyncio.timeout(timeout):
            await _send_first(writer, where, {"op": "export"})
            head = await protocol.read_message(reader)
            if head is None:
                raise AgentUnavailable("agent closed the connection without answering")
            _refusal(head)
            if head.get("type") != "archive":
                raise AgentUnavailable(head.get("message") or "the agent did not send its data")
            size = 0
            with into.open("wb") as sink:
                while chunk := await reader.read(256 * 1024):
                    sink.write(chunk)
                    size += len(chunk)
            return size
    except TimeoutError:
        raise AgentUnavailable(f"the agent did not send its data within {timeout:.0f} s") from None
    finally:
        writer.close()


async def restore_data(where: Address, *, archive: Path, timeout: float = KEPT_DATA_WITHIN_S) -> None:
    """Send ``archive`` to an agent started with --restore, which unpacks it before its broker starts.
    Raises AgentUnavailable when the agent is gone, ValueError when it could not unpack the archive."""
    reader, writer = await _open(where)
    try:
        async with asyncio.timeout(timeout):
            await _send_first(writer, where, {"op": "restore", "bytes": archive.stat().st_size})
            with archive.open("rb") as source:
                while chunk := source.read(256 * 1024):
                    writer.write(chunk)
                    await writer.drain()
            reply = await protocol.read_message(reader)
        if reply is None:
            raise AgentUnavailable("agent closed the connection without answering")
        _refusal(reply)
        if not reply.get("ok"):
            raise ValueError(reply.get("message") or "the agent did not take the kept data")
    except TimeoutError:
        raise AgentUnavailable(f"the agent did not take the kept data within {timeout:.0f} s") from None
    finally:
        writer.close()
