"""load.stream_*: every learner of the class produces 100 msg/s at once, and the live stream shows them.

Each learner runs, over their WebSocket, a cell of their own (the page lets a
learner edit a cell before running it) that publishes JSON messages carrying
their send time (``time.time()``) on ``load.stream`` at ``RATE`` per second for
``SECONDS``. Latency is produced to received on the learner's WebSocket (the
agent's tap -> the relay in the ASGI server -> the page). The reference, in the
same run and under the same load: a plain NATS client (nats-py) inside the
network namespace and the cells cgroup of ``DIRECT_CLIENTS`` of the learners' units
(where a learner's own consumer cell would run, at the units' CPU weight),
subscribed to the same subject, reading the same messages straight from the broker.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable

from sandboxes.models import Sandbox

from . import cpu_usage, harness
from .harness import say
from .learners import STREAM_SUBJECT, Learner, produced_count, producer_code
from .report import Results, percentile

RATE = 100
SECONDS = 10.0
QUICK_SECONDS = 4.0
DIRECT_CLIENTS = 10
DRAIN_QUIET_S = 5.0
#: Every producer cell waits until this long after the phase begins, so that all of them produce at once.
START_DELAY_S = 12.0
QUICK_START_DELAY_S = 3.0

DIRECT = r"""
import asyncio, json, sys, time
import nats

tag, subject, expected, limit = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])


async def main():
    nc = await nats.connect("nats://127.0.0.1:4222")
    latencies, last = [], [0.0]

    async def on_message(msg):
        now = time.time()
        try:
            body = json.loads(msg.data)
        except ValueError:
            return
        if isinstance(body, dict) and body.get("run") == tag:
            latencies.append(round((now - body["ts"]) * 1000, 3))
            last[0] = now

    await nc.subscribe(subject, cb=on_message)
    await nc.flush()
    print("ready", flush=True)
    started = time.time()
    while time.time() < started + limit and len(latencies) < expected:
        await asyncio.sleep(0.2)
        if latencies and time.time() - last[0] > 5:
            break
    await nc.close()
    print(json.dumps({"latencies": latencies}))


asyncio.run(main())
"""


async def run_stream(
    learners: list[Learner], target: dict[str, str], results: Results, *, quick: bool, cpu: Callable[[], dict[str, float]]
) -> None:
    """The stream phase for these (ready) learners; ``target`` is the cell whose code they replace."""
    seconds = QUICK_SECONDS if quick else SECONDS
    expected = int(RATE * seconds)
    tag = f"load-{time.time():.0f}"
    watched = learners[:DIRECT_CLIENTS]
    ids = [me.sandbox_id for me in watched if me.sandbox_id is not None]
    sandboxes = await asyncio.to_thread(lambda: {s.pk: s for s in Sandbox.objects.filter(pk__in=ids)})
    directs = []
    try:
        for me in watched:
            process = await harness.netns_python(
                sandboxes[me.sandbox_id or 0], DIRECT, tag, STREAM_SUBJECT, str(expected), str(seconds + 90), in_cells=True
            )
            directs.append(process)
        for process in directs:
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), 60)
            if line.strip() != b"ready":
                raise RuntimeError(f"a direct NATS client did not start: {line!r}")
        for me in learners:
            me.stream_tag, me.stream_latencies, me.stream_tap_latencies, me.stream_dropped = tag, [], [], 0
        say(f"load stream: {len(learners)} learners produce {RATE} msg/s for {seconds:g} s; {len(directs)} direct clients read")
        started, cpu_before = time.monotonic(), cpu()
        delay = QUICK_START_DELAY_S if quick else START_DELAY_S
        code = producer_code(rate=RATE, seconds=seconds, tag=tag, start_at=time.time() + delay)

        async def produce(me: Learner):
            await asyncio.sleep(me.rng.uniform(0, 1))  # not all in the same millisecond: a class, not a clock
            return await me.run(target, code=code, timeout=delay + seconds + 60)

        runs = await asyncio.gather(*(produce(me) for me in learners))
        produced_s, cpu_produced = time.monotonic() - started, cpu()
        # Drain: until each page shows (or is told it missed) all it produced, or its events go quiet.
        over = harness.bounded(60)
        while not over() and any(
            len(me.stream_latencies) + me.stream_dropped < expected and time.monotonic() - me.last_event < DRAIN_QUIET_S
            for me in learners
        ):
            await asyncio.sleep(0.2)
        outputs = [await harness.process_finish(process, timeout=seconds + 100) for process in directs]
    finally:
        for process in directs:
            await harness.process_reap(process)
        for me in learners:
            me.stream_tag = None
    failed = [r.error for r in runs if r.error]
    direct: list[float] = []
    for status, out, err in outputs:
        if status != 0:
            say(f"load stream: a direct client failed ({status}): {err[-300:]}")
            continue
        direct += harness.last_json_line(out)["latencies"]
    shown = [latency for me in learners for latency in me.stream_latencies]
    dropped = sum(me.stream_dropped for me in learners)
    produced = sum(produced_count(r) for r in runs)  # timed-out cells produced too: what each said it sent
    results.samples("load.stream_latency_ms", shown, p99=True)
    # Where the time goes: produced -> the unit's tap (the broker and the agent, in the unit) of the same messages.
    tapped = [latency for me in learners for latency in me.stream_tap_latencies]
    if tapped:
        results.samples("load.stream_tap_latency_ms", tapped, p99=True)
    results.samples("load.stream_direct_latency_ms", direct, p99=True)
    if produced:
        results.value("load.stream_accounted_ratio", (len(shown) + dropped) / produced)
    text = (
        f"load stream: {len(learners) - len(failed)} of {len(learners)} producer cells ran (in {produced_s:.1f} s)"
        + (f", failures: {sorted(set(failed))[:2]}" if failed else "")
        + f"; shown {len(shown)} of {produced}, reported not shown {dropped}; direct clients saw {len(direct)}"
        + (
            f"; p50/p99 shown {percentile(shown, 50):.0f}/{percentile(shown, 99):.0f} ms, direct {percentile(direct, 50):.0f}/{percentile(direct, 99):.0f} ms"
            if shown and direct
            else ""
        )
        + (f", at the tap {percentile(tapped, 50):.0f}/{percentile(tapped, 99):.0f} ms" if tapped else "")
    )
    text += f"; while producing, load average {os.getloadavg()[0]:.1f}, " + cpu_usage.cpu_share(cpu_before, cpu_produced)
    say(text)
    results.note(text)
