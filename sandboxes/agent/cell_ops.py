"""The agent's ``run`` and ``check`` ops: one cell on the unit's cell runner, its output streamed or collected.

``run`` streams each output line as it comes and ends with the exit; ``check`` (an
exercise's check) sends only the exit, with the whole output in it. While a cell runs,
the same connection may send {"op": "interrupt"}; hanging up interrupts it too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from . import protocol
from .broker_supervisor import BrokerSupervisor
from .cells import CellRunner
from .fanout import EventFanout


async def serve_run(
    request: dict[str, Any],
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    broker: BrokerSupervisor,
    events: EventFanout,
) -> None:
    runner = broker.runner
    if not broker.ready or runner is None:
        refusal = {
            "type": "exit",
            "status": -1,
            "reason": "not-ready",
            "duration_ms": 0,
            "truncated": False,
            "error": broker.not_ready(),
        }
        disk = broker.disk_hint() if broker.stage == "failed" else None
        if disk is not None:
            refusal["hint"] = disk
        await protocol.send(writer, refusal)
        return
    try:
        await run_and_reply(request, reader, writer, runner=runner, disk_hint=broker.disk_hint)
    finally:
        # What the cell did (a consumer gone with its connection, a group left) shows without waiting for the timer.
        events.snapshot_wanted.set()


async def run_and_reply(
    request: dict[str, Any],
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    runner: CellRunner,
    disk_hint: Callable[[], dict[str, Any] | None] | None = None,
) -> None:
    """``request`` (a run or a check) on ``runner``, answered on ``writer``; ``disk_hint``: the unit's full disk, if
    it is, which explains a blocked producer better than the client library's error (the unit's agent; a pod's
    checker container does not see the unit's disk)."""
    collected: list[str] = []
    check = request["op"] == "check"

    async def on_output(message: dict[str, Any]) -> None:
        if check:
            collected.append(message["text"])
        else:
            await protocol.send(writer, {"type": "output", **message})

    stop = asyncio.Event()

    async def watch_interrupt() -> None:
        while True:
            message = await protocol.read_message(reader)
            if message is None or message.get("op") == "interrupt":
                stop.set()  # this run only, started or still waiting to start
                return

    watcher = asyncio.create_task(watch_interrupt())
    try:
        result = await runner.run(
            code=str(request.get("code", "")),
            timeout=float(request.get("timeout", 30)),
            on_output=on_output,
            stop=stop,
            check=check,
        )
    finally:
        watcher.cancel()
    reply = {
        "type": "exit",
        "status": result.status,
        "reason": result.reason,
        "duration_ms": result.duration_ms,
        "truncated": result.truncated,
    }
    if result.hint is not None:
        reply["hint"] = result.hint
    # A full disk explains a blocked or refused producer better than the error the client library saw.
    disk = await asyncio.get_running_loop().run_in_executor(None, disk_hint) if disk_hint is not None else None
    if disk is not None:
        reply["hint"] = disk
    if check:
        reply["output"] = "".join(collected)
    await protocol.send(writer, reply)
