"""The flooding learner of tests/security/test_ws_flood.py, run in a process of its own.

Apart from the test's process, so that the client-side work of 10,000 frames (encoding, sending,
reading the answers) takes nothing from the bystander's measurements there: only the server's
work can slow the bystander. No Django here; the test hands in the address and a session cookie.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

from websockets.asyncio.client import connect as ws_connect

FLOOD = 10_000
#: Every NATS cell of the mini course: A's runs are of different cells, so the per-user limit is met too.
A_CELLS = [("first", "publish"), ("first", "first-task-starter"), ("live", "on-nats")]
FLOOD_DEADLINE_S = 180
ROUND = 1000  # frames a tab sends before it waits for the server to catch up


def flood_message(i: int) -> str:
    """The i-th frame of the flood: runs, lifecycle requests and garbage, mixed."""
    kind = i % 8
    if kind in (0, 1):
        chapter, cell = A_CELLS[i % len(A_CELLS)]
        frame = {"type": "cell.run", "run": f"a{i}", "course": "mini", "chapter": chapter, "cell": cell}
        return json.dumps({**frame, "code": "import time; time.sleep(20)"})
    if kind == 2:
        return json.dumps({"type": "sandbox.stop", "broker": "nats"})
    if kind == 3:
        return json.dumps({"type": "sandbox.ensure", "broker": "nats"})
    if kind == 4:
        return json.dumps({"type": "sandbox.reset", "broker": "nats"})
    if kind == 5:
        return "this is not json {"
    if kind == 6:
        return json.dumps({"type": "exercise.check", "course": "mini", "chapter": "first", "exercise": "first-task"})
    return json.dumps([i, "garbage"])


class Tab:
    """One open page: its socket and every frame it has received, read as they come."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.frames: list[dict] = []
        self.arrived = asyncio.Event()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.ws:
            self.frames.append(json.loads(raw))
            self.arrived.set()

    async def wait(self, found: Callable[[dict], bool], *, timeout: float, start: int = 0) -> dict:
        deadline = time.monotonic() + timeout
        seen = start
        while True:
            for frame in self.frames[seen:]:
                if found(frame):
                    return frame
            seen = len(self.frames)
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), deadline - time.monotonic())
            except TimeoutError:
                seen_here = [(f["type"], f.get("run"), str(f.get("message", ""))[:50]) for f in self.frames[start:]]
                raise TimeoutError(f"no such frame within {timeout} s; since the wait began: {seen_here}") from None


def opened(url: str, cookie: str):
    ws = url.replace("http://", "ws://") + "/ws/live/"
    return ws_connect(ws, origin=url, additional_headers={"Cookie": f"sessionid={cookie}"}, max_size=None)


async def flooder(url: str, cookie: str, b_done, flooding) -> tuple[int, list[str], list[dict]]:
    """Flood from two tabs of the learner whose session ``cookie`` is given; returns the frames handled
    (whole rounds the server got through), the markers it did not answer in time, and the frames back."""
    async with opened(url, cookie) as ws_a1, opened(url, cookie) as ws_a2:
        a_tabs = [Tab(ws_a1), Tab(ws_a2)]
        handled = [0, 0]
        stalled: list[str] = []

        async def flood(index: int, tab: Tab) -> None:
            # Two tabs of the same learner, each as fast as its socket takes frames, in rounds that end
            # with a marker: once the marker is answered, the server has handled the whole round. Past
            # FLOOD in all, rounds go on until the bystander has finished, so every measurement is
            # taken while the server works through a flood.
            i, rounds = index, 0
            deadline = time.monotonic() + FLOOD_DEADLINE_S
            while (sum(handled) < FLOOD or not b_done.is_set()) and time.monotonic() < deadline:
                for _ in range(ROUND):
                    await tab.ws.send(flood_message(i))
                    i += 2
                    flooding.set()
                    # send() returns without yielding while the socket's buffer has room: yield, or this
                    # client's own pings and reads would starve in its event loop.
                    await asyncio.sleep(0)
                marker, rounds = f"mark-{index}-{rounds}", rounds + 1
                await tab.ws.send(json.dumps({"type": "cell.run", "run": marker, "course": "-", "chapter": "-", "cell": "-"}))
                try:
                    await tab.wait(lambda f, m=marker: f.get("run") == m, timeout=max(1, deadline - time.monotonic()))
                except TimeoutError:
                    stalled.append(marker)  # the server did not get through the round: said below
                    return
                handled[index] += ROUND + 1

        await asyncio.gather(flood(0, a_tabs[0]), flood(1, a_tabs[1]))
        await asyncio.sleep(1)  # the last refusals of the flood arrive
        return sum(handled), stalled, [f for tab in a_tabs for f in tab.frames]


def flood_in_process(url: str, cookie: str, b_done, flooding, results) -> None:
    """multiprocessing target: flood, then put the flooder's result on ``results``."""
    results.put(asyncio.run(flooder(url, cookie, b_done, flooding)))
