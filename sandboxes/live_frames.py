"""Frames of the live page made from the agent's messages: cell output, setup cells' runs, the broker's events.

The consumer sends what these build; nothing here knows the WebSocket.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

from channels.db import database_sync_to_async

from . import agent_client, cell_runs
from .models import Sandbox
from .services.actions import sandbox_touch
from .services.provisioning import sandbox_socket

#: Messages moving count as activity at most this often (a database write each time).
ACTIVITY_EVERY_S = 60

Send = Callable[[dict[str, Any]], Awaitable[None]]


def output_frame(run: str | None, message: dict[str, Any]) -> dict[str, Any]:
    """The ``cell.output`` frame of an agent's output message; past the head of a long output it carries
    the tail's fields too (``tail``, and ``skipped`` lines and characters left out before its text)."""
    frame = {"type": "cell.output", "run": run, "stream": message.get("stream"), "text": message.get("text", "")}
    frame.update({k: message[k] for k in ("tail", "skipped", "skipped_chars") if k in message})
    return frame


def setup_relay(send: Send, **about: Any) -> cell_runs.OnSetup:
    """Frames for the setup cells run before a cell or check: ``cell.setup`` names the cell and its own
    run id, then its output and exit come as ``cell.output``/``cell.exit`` of that id."""
    setup_runs: dict[str, str] = {}

    async def relay(setup: cell_runs.Setup, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "start":
            setup_runs[setup.key] = f"setup-{uuid.uuid4().hex}"
            await send({"type": "cell.setup", **about, "cell": setup.key, "setup_run": setup_runs[setup.key]})
        elif kind == "exit":
            await send(
                {
                    "type": "cell.exit",
                    "run": setup_runs.get(setup.key),
                    **{k: message.get(k) for k in ("status", "reason", "duration_ms", "truncated")},
                }
            )
        else:
            await send(output_frame(setup_runs.get(setup.key), message))

    return relay


async def sandbox_frames(*, sandbox: Sandbox) -> AsyncGenerator[dict[str, Any], None]:
    """The sandbox's ``sandbox.event`` and ``sandbox.snapshot`` frames, straight from its agent, until it goes.

    The agent is read only as fast as the frames are taken, so a slow page makes
    the agent count what it could not deliver (``dropped``) instead of queueing it.
    """
    touched = 0.0
    with contextlib.suppress(agent_client.AgentUnavailable, ConnectionError):
        async for message in agent_client.subscribe(sandbox_socket(sandbox=sandbox)):
            if message.get("type") == "events" and message.get("events") and time.monotonic() - touched > ACTIVITY_EVERY_S:
                # Messages moving are activity too: the idle clock starts again (at most once a minute).
                touched = time.monotonic()
                await database_sync_to_async(sandbox_touch)(sandbox=sandbox)
            if message.get("type") == "events":
                yield {
                    "type": "sandbox.event",
                    "sandbox": sandbox.pk,
                    "broker": sandbox.broker,
                    "events": message["events"],
                    "dropped": message.get("dropped", 0),
                }
            elif message.get("type") == "snapshot":
                yield {"type": "sandbox.snapshot", "sandbox": sandbox.pk, "broker": sandbox.broker, "data": message["data"]}
