"""The agent's ops that serve the broker itself: ``watch`` its stage, and ``node`` (stop or start one of its nodes).

The platform waits on ``watch`` while the broker boots (it is told of ready or failed, it
does not ask); the topology panel's buttons send ``node`` for a kind that runs several.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sandboxes.brokers.base import BrokerUnavailable, NodeActionRefused

from . import protocol
from .broker_supervisor import BrokerSupervisor
from .fanout import EventFanout

log = logging.getLogger("sandboxes.agent")


async def serve_watch(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, broker: BrokerSupervisor, done: asyncio.Event
) -> None:
    """The status now and at every change of stage, until the platform hangs up or the agent ends (``done``)."""
    changes: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    broker.watchers.add(changes)
    closed = asyncio.create_task(reader.read())  # completes when the platform hangs up
    ending = asyncio.create_task(done.wait())  # a shutdown must not wait for a watcher to hang up
    try:
        await protocol.send(writer, broker.status())
        while True:
            change = asyncio.create_task(changes.get())
            await asyncio.wait({change, closed, ending}, return_when=asyncio.FIRST_COMPLETED)
            if not change.done():
                change.cancel()
                return
            await protocol.send(writer, change.result())
    finally:
        broker.watchers.discard(changes)
        closed.cancel()
        ending.cancel()


async def serve_node(
    request: dict[str, Any], writer: asyncio.StreamWriter, *, broker: BrokerSupervisor, events: EventFanout
) -> None:
    """Stop or start one node of the unit's broker (the topology panel's buttons), answering once it is done."""
    if not broker.ready:
        await protocol.send(writer, {"type": "error", "code": "not-ready", "message": broker.not_ready()})
        return
    node, action = int(request.get("node", 0)), str(request.get("action", ""))

    def act() -> dict[str, Any]:
        return broker.kind.node_action(host="localhost", ports=broker.ports, node=node, action=action)

    try:
        result = await asyncio.get_running_loop().run_in_executor(None, act)
    except NodeActionRefused as refused:
        await protocol.send(writer, {"type": "error", "code": "refused", "message": str(refused)})
        return
    except BrokerUnavailable as exc:
        await protocol.send(writer, {"type": "error", "code": "unavailable", "message": str(exc)})
        return
    finally:
        events.snapshot_wanted.set()  # the panel shows the node go or come without waiting for the timer
    log.info("node %s %s", node, action)
    await protocol.send(writer, {"ok": True, **result})
