"""An agent with no page watching does not ask its broker for anything; the first page to watch gets a fresh view.

The agent's fan-out used to wake 20 times a second and ask the broker for a snapshot every
second whether or not anyone listened: with a class of idle sandboxes that was a third of an idle
RabbitMQ's CPU (docs/bench.md, "Idle cost of a unit"). The broker here is a stand-in that counts
the snapshots asked of it and says which view it gives; what is under test is when the fan-out asks.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import threading
from pathlib import Path
from typing import Any

from sandboxes.agent import fanout, protocol
from tests.aio import run


class CountingBroker:
    """A broker kind whose snapshots are counted and numbered by ``view``."""

    def __init__(self) -> None:
        self.asked = 0
        self.view = 0

    def tap(self, *, host: str, ports: dict[str, int], emit: Any, stop: threading.Event) -> None:
        stop.wait()

    def snapshot(self, *, host: str, ports: dict[str, int]) -> dict[str, Any]:
        self.asked += 1
        return {"view": self.view}


async def _snapshot_from(reader: asyncio.StreamReader, timeout: float) -> dict[str, Any]:
    while True:
        message = await asyncio.wait_for(protocol.read_message(reader), timeout=timeout)
        assert message is not None, "the agent hung up"
        if message["type"] == "snapshot":
            return message["data"]


async def scenario() -> dict[str, Any]:
    broker = CountingBroker()
    done = asyncio.Event()
    events = fanout.EventFanout(kind=broker, ports={}, done=done)  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    threading.Thread(target=events.tap_thread, args=(loop,), daemon=True).start()
    tasks = [asyncio.create_task(events.fanout()), asyncio.create_task(events.snapshots())]
    seen: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "agent.sock")
        server = await asyncio.start_unix_server(lambda r, w: events.serve_subscribe(w, r), path=path)
        try:
            await asyncio.sleep(2.5)
            seen["idle"] = broker.asked
            # A cell ends (cell_ops sets this): one snapshot follows, watched or not.
            events.snapshot_wanted.set()
            await asyncio.sleep(0.5)
            seen["after a change"] = broker.asked
            # The broker moves on while nobody watches; a page subscribes.
            broker.view = 1
            reader, writer = await asyncio.open_unix_connection(path)
            seen["first view"] = (await _snapshot_from(reader, timeout=5))["view"]
            asked = broker.asked
            await asyncio.sleep(3.5)
            seen["while watched"] = broker.asked - asked
            writer.close()
            # The fan-out sees the hang-up; the one-second wait it was in when the page left may still end in one.
            await asyncio.sleep(1.5)
            asked = broker.asked
            await asyncio.sleep(2.5)
            seen["after the page left"] = broker.asked - asked
        finally:
            done.set()
            events.stop_tap.set()
            server.close()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    return seen


def test_an_unwatched_agent_asks_its_broker_only_after_a_change_and_a_new_page_gets_a_fresh_view():
    seen = run(scenario())
    print(f"snapshots asked of the broker: {seen}")
    assert seen["idle"] == 0, seen
    assert seen["after a change"] == 1, seen
    assert seen["first view"] == 1, seen  # not the view of before the page came
    assert seen["while watched"] >= 2, seen  # at least once a second while a page watches
    assert seen["after the page left"] == 0, seen
