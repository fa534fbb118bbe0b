"""A simulated learner: one chapter WebSocket (session cookie, same origin), its frames read in one loop.

The load benchmark (``bench.load``) drives many of these at once. Each keeps what a
page would know: its sandbox's state, its place in the admission queue if it was
queued, the runs it started (send, first output, exit) and, while a stream phase
has a tag, the latency of every produced event the relay shows it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import time
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import connect as ws_connect
from websockets.typing import Origin

#: The subject the stream phase's producers publish on (bench.load_stream).
STREAM_SUBJECT = "load.stream"

#: The stream phase's cell: JSON messages carrying their send time, at a fixed rate, on STREAM_SUBJECT.
PRODUCER = """
import asyncio
import json
import os
import time

import nats

RATE, SECONDS, TAG, SUBJECT, START_AT = {rate}, {seconds}, {tag!r}, {subject!r}, {start_at}


async def main():
    nc = await nats.connect(os.environ["NATS_URL"])
    await asyncio.sleep(max(0.0, START_AT - time.time()))  # the whole class produces at once
    total, sent, start = int(RATE * SECONDS), 0, time.time()
    while sent < total:
        due = min(total, int((time.time() - start) * RATE) + 1)
        while sent < due:
            body = {{"ts": time.time(), "seq": sent, "run": TAG}}
            await nc.publish(SUBJECT, json.dumps(body).encode())
            sent += 1
            if sent % int(RATE) == 0:
                print(f"sent {{sent}}", flush=True)  # what was produced, even if the run is cut short
        await asyncio.sleep(max(0.0, start + sent / RATE - time.time()))
    await nc.flush()
    await nc.close()
    print(f"sent {{sent}} in {{time.time() - start:.1f}} s")


asyncio.run(main())
"""


def produced_count(run: Run) -> int:
    """How many messages a producer cell said it had sent (its last ``sent N`` line), even if cut short."""
    found = re.findall(r"sent (\d+)", run.output)
    return int(found[-1]) if found else 0


def producer_code(*, rate: float, seconds: float, tag: str, start_at: float = 0.0) -> str:
    """A NATS cell that publishes ``rate`` messages a second for ``seconds``, each tagged ``tag``, from the
    wall-clock time ``start_at`` (at once if it has passed): cells started a little apart produce together."""
    return PRODUCER.format(rate=rate, seconds=seconds, tag=tag, subject=STREAM_SUBJECT, start_at=start_at)


@dataclass
class Run:
    """One cell.run: perf_counter times of the send, the first output frame and the exit frame."""

    cell: str
    sent: float
    first_output: float | None = None
    exited: float | None = None
    status: int | None = None
    duration_ms: float | None = None  # the agent's own measure of the cell's run
    error: str = ""
    output: str = ""  # the run's last output, kept to explain a failure
    done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def roundtrip_ms(self) -> float:
        assert self.exited is not None
        return (self.exited - self.sent) * 1000


class Learner:
    """A learner's page: connect(), then ensure()/run(); ``read`` must run as a task while it works."""

    def __init__(self, index: int, cookie: str, *, seed: int) -> None:
        self.index = index
        self.cookie = cookie
        self.rng = random.Random(seed * 1000 + index)
        self.ws: Any = None
        self.sandbox_id: int | None = None
        self.ready_at: float | None = None  # perf_counter when its sandbox.state said ready
        self.failed = ""
        self.queue_places: list[int] = []  # every place the admission queue told it
        self.runs: dict[str, Run] = {}
        self.changed = asyncio.Event()
        # The stream phase: produced events carrying this tag.
        self.stream_tag: str | None = None
        self.stream_latencies: list[float] = []
        self.stream_tap_latencies: list[float] = []  # produced -> seen by the unit's tap (the event's seen_ms)
        self.stream_dropped = 0
        self.last_event = time.monotonic()
        self._reader: asyncio.Task | None = None
        self._count = 0

    async def connect(self, url: str, origin: str) -> None:
        """Open the page's WebSocket as the browser does (same origin, the session cookie); read its hello."""
        self.ws = await ws_connect(
            url, origin=Origin(origin), additional_headers={"Cookie": f"sessionid={self.cookie}"}, max_size=None, open_timeout=30
        )
        hello = json.loads(await asyncio.wait_for(self.ws.recv(), 30))
        if hello.get("type") != "hello":
            raise RuntimeError(f"learner {self.index}: expected hello, got {hello}")
        self._reader = asyncio.ensure_future(self._read())

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close()

    # -- what the page sends ---------------------------------------------------

    async def ensure(self, broker: str) -> None:
        await self.ws.send(json.dumps({"type": "sandbox.ensure", "broker": broker}))

    async def wait_ready(self, timeout: float) -> bool:
        """Until the sandbox is ready, failed, or ``timeout`` passed (a queued learner keeps waiting)."""
        deadline = time.monotonic() + timeout
        while self.ready_at is None and not self.failed:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)
        return self.ready_at is not None

    async def run(self, target: dict[str, str], *, code: str | None = None, timeout: float = 60) -> Run:
        """Run a cell (its own code unless ``code``) and wait for its exit; errors are kept on the Run."""
        self._count += 1
        run_id = f"load-{self.index}-{self._count}"
        run = self.runs[run_id] = Run(cell=target["cell"], sent=time.perf_counter())
        frame: dict[str, Any] = {"type": "cell.run", "run": run_id, **target}
        if code is not None:
            frame["code"] = code
        await self.ws.send(json.dumps(frame))
        try:
            await asyncio.wait_for(run.done.wait(), timeout)
        except TimeoutError:
            run.error = run.error or f"no cell.exit within {timeout:.0f} s"
        return run

    # -- what the page hears -----------------------------------------------------

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                self._frame(json.loads(raw), time.perf_counter(), time.time())
        except Exception as exc:  # the connection closed under a run: every run still open ends with it
            for run in self.runs.values():
                if not run.done.is_set():
                    run.error = f"connection closed: {exc!r}"
                    run.done.set()
            self.failed = self.failed or f"connection closed: {exc!r}"
            self.changed.set()

    def _frame(self, message: dict[str, Any], now: float, wall: float) -> None:
        kind = message.get("type")
        if kind == "sandbox.event":
            self._events(message, wall)
            return
        if kind == "sandbox.state":
            sandbox = message.get("sandbox") or {}
            if sandbox.get("state") == "ready" and self.ready_at is None:
                self.sandbox_id, self.ready_at = sandbox.get("id"), now
            elif sandbox.get("state") == "failed" and self.ready_at is None:
                self.failed = f"failed: {sandbox.get('error')}"
            self.changed.set()
            return
        if kind == "sandbox.queue":
            if message.get("place") is not None:
                self.queue_places.append(int(message["place"]))
            if message.get("error"):
                self.failed = f"refused after queueing: {message['error']}"
            self.changed.set()
            return
        run = self.runs.get(str(message.get("run")))
        if run is None:
            if kind == "error":
                self.failed = self.failed or f"error frame: {message.get('message')}"
                self.changed.set()
            return
        if kind == "cell.output":
            run.first_output = now if run.first_output is None else run.first_output
            run.output = (run.output + str(message.get("text", "")))[-400:]
        elif kind == "cell.exit":
            run.exited, run.status, run.duration_ms = now, message.get("status"), message.get("duration_ms")
            if run.status != 0:
                run.error = f"exit status {run.status} ({message.get('reason')}): {run.output[-160:]!r}"
            run.done.set()
        elif kind in ("cell.error", "error"):
            run.error = str(message.get("message"))
            run.done.set()

    def _events(self, message: dict[str, Any], wall: float) -> None:
        if message.get("sandbox") != self.sandbox_id or self.stream_tag is None:
            return
        self.last_event = time.monotonic()
        self.stream_dropped += int(message.get("dropped") or 0)
        for event in message.get("events", ()):
            if event.get("direction") != "produced" or event.get("destination") != STREAM_SUBJECT:
                continue
            skipped = (event.get("detail") or {}).get("not_shown")
            if skipped:
                self.stream_dropped += int(skipped)
                continue
            try:
                body = json.loads(event["value"]["text"])
            except (KeyError, TypeError, ValueError):
                continue
            if isinstance(body, dict) and body.get("run") == self.stream_tag:
                self.stream_latencies.append((wall - body["ts"]) * 1000)
                seen = event.get("seen_ms")
                if isinstance(seen, int):
                    self.stream_tap_latencies.append(seen - body["ts"] * 1000)


async def learners_connect(url: str, origin: str, cookies: list[str], *, seed: int, first: int = 0) -> list[Learner]:
    """Open every learner's page at ``url`` at once (hello read); a failure closes those already open."""
    learners = [Learner(first + i, cookie, seed=seed) for i, cookie in enumerate(cookies)]
    outcomes = await asyncio.gather(*(me.connect(url, origin) for me in learners), return_exceptions=True)
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    if errors:
        await learners_close(learners)
        raise RuntimeError(f"{len(errors)} of {len(learners)} pages could not connect: {errors[0]!r}")
    return learners


async def learners_close(learners: list[Learner]) -> None:
    await asyncio.gather(*(me.close() for me in learners), return_exceptions=True)
