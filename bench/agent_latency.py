"""sandbox.<backend>.nats.agent_roundtrip_s and .event_relay_ms: the agent reached where its backend puts it.

The process and docker backends reach a unit's agent on a Unix socket; the kubernetes backend over
the pod network (TCP to the pod's address, the unit's token first on every connection). Whether
that costs the learner anything is measured the same way on each, in the same run:

- ``agent_roundtrip_s``: ``print("hi")`` run straight on the agent's address, from the send to the
  output's arrival (bench/cells.py's agent-only figure), after a few runs to warm up;
- ``event_relay_ms``: a cell publishes NATS messages carrying their send time (``time.time()``;
  a pod on a lab node shares this machine's clock) at 200 a second, while this process
  subscribes to the agent's events: the time from the publish to the event's arrival here,
  through the broker, the agent's tap, its fan-out and the connection.

The WebSocket and the ASGI relay on top are the same code for every backend (bench/stream.py and
bench/cells.py measure them on the process backend).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from sandboxes import agent_client

from . import harness
from .cells import _agent_runs
from .harness import Platform, say
from .report import Results

BROKER = "nats"
RATE = 200
SUBJECT = "bench.relay"

PUBLISHER = """
import asyncio, json, os, time, nats
async def main():
    nc = await nats.connect(os.environ["NATS_URL"])
    for i in range({count}):
        await nc.publish("{subject}", json.dumps({{"i": i, "sent": time.time()}}).encode())
        await nc.flush()
        await asyncio.sleep(1 / {rate})
    await nc.close()
    print("published", {count})
asyncio.run(main())
"""


def run(platform: Platform, results: Results, *, backend: str, quick: bool) -> None:
    """Both figures for the backend the platform's worker runs now; ``backend`` names it in the metrics."""
    user = platform.user(f"agent-{backend}")
    sandbox, seconds = harness.sandbox_ready(user, BROKER)
    address = harness.sandbox_socket(sandbox)
    say(f"agent latency ({backend}): {BROKER} sandbox {sandbox.pk} ready in {seconds:.1f} s at {address}")
    count = 20 if quick else 50
    messages = 400 if quick else 1000
    try:
        asyncio.run(_agent_runs(address, count=3))  # warm-up: the agent's first run pays its imports
        roundtrips = asyncio.run(_agent_runs(address, count=count))
        latencies = asyncio.run(_relay(address, messages))
    finally:
        harness.sandbox_stop(sandbox.pk)
    if len(latencies) < messages * 0.95:
        results.note(f"agent latency ({backend}): {len(latencies)} of {messages} published messages came back as events")
    results.samples(f"sandbox.{backend}.{BROKER}.agent_roundtrip_s", roundtrips)
    results.samples(f"sandbox.{backend}.{BROKER}.event_relay_ms", latencies)


async def _relay(address: Any, messages: int) -> list[float]:
    """Publish from a cell while subscribed to the agent's events; the milliseconds each took to arrive here."""
    latencies: list[float] = []
    seen: set[int] = set()

    async def listen() -> None:
        async for message in agent_client.subscribe(address):
            if message.get("type") != "events":
                continue
            arrived = time.time()
            for event in message["events"]:
                if event.get("direction") != "produced" or event.get("destination") != SUBJECT:
                    continue
                value = json.loads(event["value"]["text"])
                if value["i"] not in seen:
                    seen.add(value["i"])
                    latencies.append((arrived - value["sent"]) * 1000)
            if len(seen) >= messages:
                return

    listener = asyncio.create_task(listen())
    await asyncio.sleep(1.0)  # subscribed before the first publish
    code = PUBLISHER.format(count=messages, subject=SUBJECT, rate=RATE)
    printed: list[str] = []

    async def collect(message: dict[str, Any]) -> None:
        printed.append(message.get("text", ""))

    result = await agent_client.run(address, code=code, timeout=messages / RATE + 60, on_message=collect)
    if result.get("status") != 0:
        listener.cancel()
        raise RuntimeError(f"the publishing cell failed: {result}: {''.join(printed)[-2000:]}")
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(listener, timeout=10)
    listener.cancel()
    return latencies
