"""The platform's side of the agent socket: status, run a cell, check, subscribe, shut down."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from sandboxes.agent import protocol


class AgentUnavailable(Exception):
    """The agent's socket does not answer (not started yet, or gone)."""


async def _open(socket_path: Path, timeout: float = 5.0) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    try:
        return await asyncio.wait_for(asyncio.open_unix_connection(str(socket_path), limit=protocol.MAX_LINE), timeout)
    except (TimeoutError, OSError) as exc:
        raise AgentUnavailable(f"agent at {socket_path} does not answer: {exc}") from exc


async def request(socket_path: Path, message: dict[str, Any], *, timeout: float = 5.0) -> dict[str, Any]:
    """One request, one reply."""
    reader, writer = await _open(socket_path, timeout)
    try:
        await protocol.send(writer, message)
        reply = await asyncio.wait_for(protocol.read_message(reader), timeout)
        if reply is None:
            raise AgentUnavailable("agent closed the connection without answering")
        return reply
    finally:
        writer.close()


async def status(socket_path: Path) -> dict[str, Any]:
    return await request(socket_path, {"op": "status"}, timeout=3.0)


async def shutdown(socket_path: Path) -> None:
    with contextlib.suppress(AgentUnavailable, ConnectionError):
        await request(socket_path, {"op": "shutdown"}, timeout=3.0)


async def run(
    socket_path: Path,
    *,
    code: str,
    timeout: float,
    on_message: Callable[[dict[str, Any]], Awaitable[None]],
    interrupt: asyncio.Event | None = None,
    op: str = "run",
) -> dict[str, Any]:
    """Run a cell; every output message goes to ``on_message``; returns the exit message."""
    reader, writer = await _open(socket_path)
    watcher = None
    try:
        await protocol.send(writer, {"op": op, "code": code, "timeout": timeout})
        if interrupt is not None:

            async def forward_interrupt() -> None:
                await interrupt.wait()
                with contextlib.suppress(ConnectionError):
                    await protocol.send(writer, {"op": "interrupt"})

            watcher = asyncio.create_task(forward_interrupt())
        while True:
            message = await protocol.read_message(reader)
            if message is None:
                raise AgentUnavailable("agent closed the connection during the run")
            if message.get("type") == "exit":
                return message
            await on_message(message)
    finally:
        if watcher is not None:
            watcher.cancel()
        writer.close()


async def check(socket_path: Path, *, code: str, timeout: float) -> dict[str, Any]:
    """Run an exercise check; returns {"status", "output", ...}."""

    async def ignore(_: dict[str, Any]) -> None:
        return None

    return await run(socket_path, code=code, timeout=timeout, on_message=ignore, op="check")


async def subscribe(socket_path: Path) -> AsyncIterator[dict[str, Any]]:
    """Broker events and snapshots, as the agent sends them, until the caller stops iterating."""
    reader, writer = await _open(socket_path)
    try:
        await protocol.send(writer, {"op": "subscribe"})
        while True:
            message = await protocol.read_message(reader)
            if message is None:
                return
            yield message
    finally:
        writer.close()
