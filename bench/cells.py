"""cell.roundtrip_s and its reference cell.roundtrip_jupyter_s, measured in the same run.

Ours: a learner's WebSocket to the real uvicorn (session cookie, same origin),
``cell.run`` with ``print("hi")`` for a NATS cell of the course, timed from the
send to the ``cell.output`` that carries "hi". Jupyter: the same line through a
local IPython kernel with jupyter_client, timed from execute() to the stream
message. Both wait for the run to finish, then pause a little (as a learner
would between two Shift+Enter) before the next run.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time

from lessons.models import Cell
from sandboxes import agent_client

from . import harness
from .harness import Platform, say
from .report import Results, percentile

CODE = 'print("hi")'
PAUSE_S = 0.2


def run(platform: Platform, results: Results, *, quick: bool) -> None:
    count = 20 if quick else 50
    warmup = 3
    cell = (
        Cell.objects.filter(broker="nats", chapter__published=True)
        .exclude(role="check")
        .select_related("chapter__course")
        .first()
    )
    if cell is None:
        raise RuntimeError("the course has no NATS cell to run")
    user = platform.user("cells")
    sandbox, seconds = harness.sandbox_ready(user, cell.broker)
    say(f"cells: {cell.broker} sandbox {sandbox.pk} ready in {seconds:.1f} s; {count} runs over the WebSocket")
    cookie = harness.session_cookie(user)
    target = {"course": cell.chapter.course.slug, "chapter": cell.chapter.slug, "cell": cell.key}
    try:
        ours = asyncio.run(_websocket_runs(platform, cookie, target, warmup=warmup, count=count, notes=results.notes))
        # Where the time goes: the same cell straight on the agent's socket (no WebSocket, no Django).
        agent_only = asyncio.run(_agent_runs(harness.sandbox_socket(sandbox), count=min(count, 20)))
        results.note(
            f"cell print('hi') on the agent socket alone: p50 {percentile(agent_only, 50) * 1000:.1f} ms, p95 {percentile(agent_only, 95) * 1000:.1f} ms"
        )
        say(f"cells: {count} runs through a Jupyter kernel")
        theirs = _jupyter_runs(warmup=warmup, count=count)
    finally:
        harness.sandbox_stop(sandbox.pk)
    results.samples("cell.roundtrip_s", ours)
    results.samples("cell.roundtrip_jupyter_s", theirs)


async def _websocket_runs(
    platform: Platform, cookie: str, target: dict[str, str], *, warmup: int, count: int, notes: list[str]
) -> list[float]:
    ws = await harness.ws_open(platform, cookie)
    samples: list[float] = []
    ensured: list[float] = []
    try:
        hello = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if hello.get("type") != "hello":
            raise RuntimeError(f"expected hello, got {hello}")
        for i in range(warmup + count):
            run_id = f"bench-{i}"
            started = time.perf_counter()
            await ws.send(json.dumps({"type": "cell.run", "run": run_id, "code": CODE, **target}))
            output_at = state_at = None
            deadline = time.monotonic() + 30
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"run {run_id}: no cell.exit within 30 s")
                message = json.loads(await asyncio.wait_for(ws.recv(), left))
                if message.get("type") == "sandbox.state" and state_at is None:
                    state_at = time.perf_counter()  # the consumer answers sandbox_ensure before it runs the cell
                if message.get("run") != run_id:
                    continue  # sandbox states, snapshots
                kind = message.get("type")
                if kind == "cell.output" and output_at is None and "hi" in message.get("text", ""):
                    output_at = time.perf_counter()
                elif kind == "cell.exit":
                    if output_at is None or message.get("status") != 0:
                        raise RuntimeError(f"run {run_id} ended without its output: {message}")
                    break
                elif kind in ("cell.error", "error"):
                    raise RuntimeError(f"run {run_id}: {message}")
            if i >= warmup:
                samples.append(output_at - started)
                if state_at is not None:
                    ensured.append(state_at - started)
            await asyncio.sleep(PAUSE_S)
    finally:
        await ws.close()
    if ensured:
        say(
            f"cells: over the WebSocket, sandbox.state (sandbox_ensure done) came back after p50 {percentile(ensured, 50) * 1000:.1f} ms"
        )
        notes.append(
            f"cell over the WebSocket: its sandbox.state (sandbox_ensure done) arrives after p50 {percentile(ensured, 50) * 1000:.1f} ms"
        )
    return samples


async def _agent_runs(socket, *, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        output_at = None
        started = time.perf_counter()

        async def on_message(message: dict) -> None:
            nonlocal output_at
            if output_at is None and "hi" in message.get("text", ""):
                output_at = time.perf_counter()

        await agent_client.run(socket, code=CODE, timeout=30, on_message=on_message)
        if output_at is not None:
            samples.append(output_at - started)
        await asyncio.sleep(PAUSE_S)
    return samples


def _jupyter_runs(*, warmup: int, count: int) -> list[float]:
    from jupyter_client.manager import KernelManager

    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = manager.client()
    samples: list[float] = []
    try:
        client.start_channels()
        client.wait_for_ready(timeout=60)
        for i in range(warmup + count):
            started = time.perf_counter()
            msg_id = client.execute(CODE)
            output_at = None
            deadline = time.monotonic() + 30
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError("jupyter: the kernel did not finish within 30 s")
                message = client.get_iopub_msg(timeout=left)
                if message["parent_header"].get("msg_id") != msg_id:
                    continue
                kind = message["msg_type"]
                if kind == "stream" and output_at is None and "hi" in message["content"].get("text", ""):
                    output_at = time.perf_counter()
                elif kind == "status" and message["content"].get("execution_state") == "idle":
                    break
            if output_at is None:
                raise RuntimeError("jupyter: the run ended without its output")
            if i >= warmup:
                samples.append(output_at - started)
            time.sleep(PAUSE_S)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    return samples
