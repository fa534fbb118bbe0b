"""load.*: a class of N learners (default 50) working a chapter's NATS cells over real WebSockets.

Every learner is a user of their own with a session cookie, opens the chapter's
live WebSocket as the page does (``/ws/live/``, same origin), asks for their NATS
sandbox (``sandbox.ensure``: each learner gets a unit of their own), and once it
is ready runs the NATS cells of chapter 6.1 in reading order, ``ROUNDS`` times,
with a person's think time (``THINK_S``, drawn from a fixed seed) before each
Shift+Enter. Every round trip is timed from the ``cell.run`` sent to its
``cell.exit`` received. The reference is one learner alone on the same platform
in the same run, before the class arrives, with the same cells and think times.
Then the stream phase (``bench.load_stream``): every learner's cell produces
100 msg/s while a plain NATS client reads the same messages for comparison.

Why NATS: 50 units of it fit this box (the registry counts 160 MB each against
the admission capacity; measured below), where RabbitMQ (384 MB each) would not
fit in three quarters of 24 GB and Kafka would be 50 JVMs. The platform's
admission (``SANDBOX_CAPACITY_MB``, the fair queue) and per-user limits are
checked first and anything queued is reported, with a bound on every wait.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import defaultdict

import redis
from django.conf import settings

from lessons.models import Cell
from sandboxes import ws_limits
from sandboxes.backends import get_backend
from sandboxes.models import Sandbox, State
from sandboxes.services import admission

from . import cpu_usage, harness, load_stream
from .harness import Platform, say
from .learners import Learner, Run, learners_close, learners_connect
from .report import Results, percentile

LEARNERS = 50
QUICK_LEARNERS = 3
BROKER = "nats"
SEED = 14
THINK_S = (3.0, 8.0)
QUICK_THINK_S = (0.5, 1.5)
ROUNDS = 2
READY_TIMEOUT_S = 300
QUICK_READY_TIMEOUT_S = 60


def _limit(name: str) -> int:
    """A per-user limit of the live WebSocket as the ASGI server reads it (settings, else ws_limits' default)."""
    return int(getattr(settings, name, getattr(ws_limits, name)))


def learners_count(*, quick: bool) -> int:
    """BENCH_LOAD_LEARNERS if set (python -m bench --learners N sets it), else 50, or 3 with --quick."""
    configured = os.environ.get("BENCH_LOAD_LEARNERS", "")
    return int(configured) if configured else (QUICK_LEARNERS if quick else LEARNERS)


def chapter_cells(broker: str = BROKER) -> list[Cell]:
    """The runnable cells of ``broker`` in the first bundled chapter that has any, in reading order."""
    cells = Cell.objects.filter(
        broker=broker, role="run", chapter__published=True, chapter__course__published=True, chapter__course__translation_of=""
    ).select_related("chapter__course")
    first = cells.order_by("chapter__order", "chapter__number", "position").first()
    if first is None:
        raise RuntimeError(f"the course has no {broker} cell to run")
    return list(cells.filter(chapter=first.chapter).order_by("position"))


def run(platform: Platform, results: Results, *, quick: bool) -> None:
    count = learners_count(quick=quick)
    cells = chapter_cells()
    chapter = cells[0].chapter
    _limits_check(count, results)
    say(f"load: {count} learners + 1 alone, {len(cells)} {BROKER} cells of {chapter.slug}: {', '.join(c.key for c in cells)}")
    users = [platform.user("load") for _ in range(count + 1)]
    cookies = [harness.session_cookie(user) for user in users]
    targets = [{"course": chapter.course.slug, "chapter": chapter.slug, "cell": c.key} for c in cells]
    try:
        asyncio.run(_measure(platform, cookies, targets, results, quick=quick))
    finally:
        # Places still in the admission queue first (as a waiting learner's Stop does): else the first
        # release below would start their sandboxes.
        for user in users:
            admission.admission_leave(user_id=user.pk, broker=BROKER)
        active = Sandbox.objects.filter(user__in=users).exclude(state__in=(State.STOPPED, State.FAILED))
        harness.sandboxes_stop(list(active.values_list("pk", flat=True)), parallel=8)
        _left_behind(list(Sandbox.objects.filter(user__in=users).values_list("pk", flat=True)), results)
        harness.units_stop_all()


def _left_behind(ids: list[int], results: Results) -> None:
    """What the class's stopped sandboxes left: units still listed, Redis keys naming one of them (readiness
    leases, the channel layer's group of a sandbox)."""
    units = get_backend().list_units()
    client = redis.Redis.from_url(settings.REDIS_URL)
    patterns = [f"*:{settings.SANDBOX_INSTANCE}:{pk}" for pk in ids] + [f"*group:sandbox-{pk}" for pk in ids]
    keys = [key for pattern in patterns for key in client.scan_iter(match=pattern)]
    results.value("load.left_behind_count", len(units) + len(keys))
    results.note(
        f"load: after the class's {len(ids)} sandboxes stopped: {len(units)} units left {units[:3]}, {len(keys)} Redis keys {keys[:3]}"
    )


def _limits_check(count: int, results: Results) -> None:
    """Say whether a class of ``count`` fits the platform's admission and per-user limits as configured."""
    capacity, used = admission.admission_capacity_mb(), admission.admission_used_mb()
    need = count * admission.broker_weight_mb(BROKER)
    fits = used + need <= capacity
    text = (
        f"load admission: SANDBOX_CAPACITY_MB={settings.SANDBOX_CAPACITY_MB} -> capacity {capacity} MB, in use {used} MB, "
        f"the class needs {count} x {admission.broker_weight_mb(BROKER)} = {need} MB: "
        + ("fits, nobody should queue" if fits else "does NOT fit: the rest wait in the fair queue (reported below)")
        + f"; per user: quota {settings.SANDBOX_QUOTA_PER_USER} sandboxes (1 used), {_limit('LIVE_RUNS_PER_USER')} runs at once (1 used), "
        f"{_limit('LIVE_FRAMES_PER_S')} frames/s (under 1 used), {_limit('LIVE_LIFECYCLE_PER_MINUTE')} lifecycle/min (1 used)"
    )
    say(text)
    results.note(text)


async def _measure(
    platform: Platform, cookies: list[str], targets: list[dict[str, str]], results: Results, *, quick: bool
) -> None:
    think = QUICK_THINK_S if quick else THINK_S
    rounds = 1 if quick else ROUNDS
    ready_timeout = QUICK_READY_TIMEOUT_S if quick else READY_TIMEOUT_S
    # The reference: one learner, alone on the platform.
    alone = await learners_connect(platform.ws_url, platform.http_url, cookies[:1], seed=SEED)
    try:
        await alone[0].ensure(BROKER)
        if not await alone[0].wait_ready(ready_timeout):
            raise RuntimeError(f"the single learner's sandbox is not ready: {alone[0].failed or 'timed out'}")
        single = await _work(alone[0], targets, rounds=rounds, think=think)
    finally:
        await learners_close(alone)
    if alone[0].sandbox_id is not None:
        await asyncio.to_thread(harness.sandboxes_stop, [alone[0].sandbox_id])
    say(f"load: alone, {len(single)} runs, p50 {_p([r.roundtrip_ms for r in single if not r.error], 50):.0f} ms")

    learners = await learners_connect(platform.ws_url, platform.http_url, cookies[1:], seed=SEED, first=1)
    try:
        ready = await _class_start(learners, results, timeout=ready_timeout)
        load_before, cpu_before = os.getloadavg(), cpu_usage.cpu_seconds(platform)
        say(f"load: {len(ready)} learners work the chapter, think {think[0]:g}-{think[1]:g} s, {rounds} round(s)")
        work = await asyncio.gather(*(_work(me, targets, rounds=rounds, think=think) for me in ready))
        results.note(
            f"load: load average {load_before[0]:.1f} as the class began working, {os.getloadavg()[0]:.1f} at its end; "
            + cpu_usage.cpu_share(cpu_before, cpu_usage.cpu_seconds(platform))
        )
        _report_cells(results, single, [run for runs in work for run in runs], len(ready))
        if ready:
            await load_stream.run_stream(ready, targets[0], results, quick=quick, cpu=lambda: cpu_usage.cpu_seconds(platform))
    finally:
        await learners_close(learners)


async def _class_start(learners: list[Learner], results: Results, *, timeout: float) -> list[Learner]:
    """Every learner asks for a sandbox in the same second; returns those that got one within ``timeout``."""
    started = time.perf_counter()
    await asyncio.gather(*(me.ensure(BROKER) for me in learners))
    await asyncio.gather(*(me.wait_ready(timeout) for me in learners))
    ready = [me for me in learners if me.ready_at is not None]
    waits = [me.ready_at - started for me in ready if me.ready_at is not None]
    queued = [me for me in learners if me.queue_places]
    results.value("load.learners_count", len(learners))
    results.value("load.learners_ready_count", len(ready))
    if waits:
        results.samples("load.class_ready_s", waits)
        if len(ready) == len(learners):
            results.value("load.class_all_ready_s", max(waits))
    missing = [
        f"{me.index}: {me.failed or ('still queued' if me.queue_places else 'not ready')} after {timeout:.0f} s"
        for me in learners
        if me.ready_at is None
    ]
    text = (
        f"load: {len(ready)} of {len(learners)} learners had a ready {BROKER} sandbox, the last after "
        f"{max(waits) if waits else float('nan'):.1f} s; {len(queued)} were queued by admission"
        + (f" (places up to {max(max(me.queue_places) for me in queued)})" if queued else "")
        + (f"; without one: {missing[:3]}" if missing else "")
    )
    say(text)
    results.note(text)
    ids = [me.sandbox_id for me in ready if me.sandbox_id is not None]
    memory = await asyncio.to_thread(lambda: sum(harness.unit_rss_mb(s) for s in Sandbox.objects.filter(pk__in=ids)))
    if ids:
        results.value("load.class_units_rss_mb", memory)
        results.note(f"load: the class's {len(ids)} {BROKER} units hold {memory:.0f} MB RSS ({memory / len(ids):.0f} MB each)")
    return ready


async def _work(me: Learner, targets: list[dict[str, str]], *, rounds: int, think: tuple[float, float]) -> list[Run]:
    """The chapter's cells in order, ``rounds`` times, a think time before each run."""
    runs = []
    for _ in range(rounds):
        for target in targets:
            await asyncio.sleep(me.rng.uniform(*think))
            runs.append(await me.run(target, timeout=90))
            if me.failed:
                return runs
    return runs


def _p(values: list[float], q: float) -> float:
    return percentile(values, q) if values else float("nan")


def _report_cells(results: Results, single: list[Run], crowd: list[Run], learners: int) -> None:
    for name, runs in (("load.cell_roundtrip_ms", crowd), ("load.cell_roundtrip_single_ms", single)):
        good = [r for r in runs if not r.error and r.exited is not None]
        results.samples(name, [r.roundtrip_ms for r in good], p99=True)
        # What the platform adds: the round trip less the run as the agent timed it.
        overhead = [r.roundtrip_ms - r.duration_ms for r in good if r.duration_ms is not None]
        results.samples(name.replace("roundtrip", "overhead"), overhead, p99=True)
    failed = [r for r in crowd if r.error]
    results.value("load.cell_failed_count", len(failed))
    for who, runs, bad in (("class", crowd, failed), ("single learner's", single, [r for r in single if r.error])):
        if bad:
            errors = sorted({f"{r.cell}: {r.error}" for r in bad})
            results.note(f"load: {len(bad)} of {len(runs)} {who} runs failed: {errors[:3]}")
    by_cell: dict[str, list[Run]] = defaultdict(list)
    for r in crowd:
        by_cell[r.cell].append(r)
    alone: dict[str, list[float]] = defaultdict(list)
    for r in single:
        if not r.error:
            alone[r.cell].append(r.roundtrip_ms)
    parts = []
    for cell, runs in by_cell.items():
        ok = [r for r in runs if not r.error]
        ms = [r.roundtrip_ms for r in ok]
        agent = [r.duration_ms for r in ok if r.duration_ms is not None]
        parts.append(
            f"{cell}: class p50 {_p(ms, 50):.0f} p99 {_p(ms, 99):.0f} (agent's run p50 {_p(agent, 50):.0f}) "
            f"vs alone p50 {_p(alone[cell], 50):.0f} ms"
        )
    text = f"load: {learners} learners, round trip by cell (send to cell.exit): " + "; ".join(parts)
    say(text)
    results.note(text)
