"""sandbox.burst30_all_ready_s: a class presses Shift+Enter on the first cell in the same second.

The platform is cold but for its warm pool at the size ``make run`` keeps
(one ready broker of each kind: the worker is restarted with that
SANDBOX_WARM_POOL and fills it as it starts; growth with demand is off, so the
pool stays that size through both bursts). Thirty learners open the first
chapter's live WebSocket (session cookie, same origin, as the page does); once
every page is connected, all send ``cell.run`` for the chapter's first cell at
the same instant. Each learner's time is from that send to the ``sandbox.state``
frame saying its broker is ready; the metric is the last of them.

Then the same class books its session first (sandboxes/services/bookings.py, as an instructor does on
the class view): the pool warms thirty of the first cell's broker, ``sandbox.burst30_booked_warmup_s``
after the booking, and the burst runs again on them (``sandbox.burst30_booked_all_ready_s``).

Where the time goes, from the same run: every ``sandbox.state`` frame carries the
stage the agent reported, so each learner's wait splits into queued (until the
worker starts the unit), the agent's own stages, and the broker's boot; and the
machine's CPU is sampled meanwhile (busy share, and the CPU seconds spent by the
units, the worker, the ASGI server and the database).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from datetime import timedelta

import psutil
from django.utils import timezone

from lessons.models import Cell
from sandboxes.models import Sandbox, State, WarmBooking
from sandboxes.services.bookings import booking_create

from . import harness
from .harness import Platform, say
from .report import Results, percentile

LEARNERS = 30
#: The warm pool of ``make run`` (scripts/run.sh), one ready broker of each kind.
DEFAULT_POOL = "kafka=1;rabbitmq=1;nats=1;activemq=1"
POOL_KINDS = len(DEFAULT_POOL.split(";"))
POOL_READY_S = 240
#: Thirty brokers booting together on a small machine: the booking's lead time is 15 minutes.
BOOKED_READY_S = 900
BOOKING_LABEL = "bench: burst30"
BURST_TIMEOUT_S = 240
#: The stages a starting sandbox passes, in order, as its page sees them (the agent's, then ready).
STAGES = ("requested", "starting agent", "preparing", "starting", "waiting", "ready")


def run(platform: Platform, results: Results, *, quick: bool) -> None:
    first = _first_cell()
    # The same burst on the lightest broker, as the reference: what the platform costs apart from the broker's boot.
    reference = _first_cell(broker="nats")
    # The pool stays at that size: grown by the first burst's demand it would boot brokers during the second.
    platform.restart_worker(env={"SANDBOX_WARM_POOL": DEFAULT_POOL, "SANDBOX_WARM_POOL_MEMORY_MB": "0"})
    users = [platform.user("burst") for _ in range(LEARNERS)]
    try:
        for cell, prefix in ((first, "sandbox.burst30"), (reference, "sandbox.burst30_nats")):
            if cell is None or (cell is reference and reference.broker == first.broker):
                continue
            say(f"burst: {LEARNERS} learners run {cell.chapter.slug}/{cell.key} ({cell.broker}) at once; pool {DEFAULT_POOL}")
            # Cold platform, pool at its default size.
            ready = _pool_ready(POOL_KINDS, within_s=POOL_READY_S)
            say(
                f"burst: warm pool ready ({ready} brokers)"
                if ready >= POOL_KINDS
                else "burst: the pool did not fill in time; bursting anyway"
            )
            cookies = [harness.session_cookie(user) for user in users]
            target = {"course": cell.chapter.course.slug, "chapter": cell.chapter.slug, "cell": cell.key}
            learners, cpu = asyncio.run(_burst(platform, cookies, target))
            _report(results, prefix, learners, cpu, cell.broker)
            # The class's brokers go; the pool stays (and refills behind the claim) for the next burst.
            _class_stop(users)
        if first is not None:
            # A class of its own: the first one's learners have kept data now, which they resume on units of
            # their own rather than take a pooled (empty) broker.
            _booked_burst(platform, results, [platform.user("booked") for _ in range(LEARNERS)], first)
    finally:
        WarmBooking.objects.filter(label__startswith=BOOKING_LABEL).delete()
        # The worker without a pool first, so that nothing refills what is stopped next.
        platform.restart_worker(env={"SANDBOX_WARM_POOL": ""})
        harness.sandboxes_stop(
            list(Sandbox.objects.exclude(state__in=(State.STOPPED, State.FAILED)).values_list("pk", flat=True)), parallel=8
        )
        harness.units_stop_all()


def _booked_burst(platform: Platform, results: Results, users: list, cell: Cell) -> None:
    """The class books its session a minute ahead; once the pool holds its brokers, the same burst."""
    say(f"burst: a booking of {LEARNERS} learners for {cell.chapter.slug} ({cell.broker}); waiting for the pool to warm them")
    started = time.monotonic()
    booking_create(
        course_slug=cell.chapter.course.slug,
        label=f"{BOOKING_LABEL} {cell.chapter.number}",
        brokers=[cell.broker],
        learners=LEARNERS,
        starts_at=timezone.now() + timedelta(minutes=1),
        user_id=users[0].pk,
    )
    ready = _pool_ready(LEARNERS, within_s=BOOKED_READY_S, broker=cell.broker)
    warmup = time.monotonic() - started
    say(f"burst: {ready} pooled {cell.broker} ready {warmup:.0f} s after the booking")
    results.value("sandbox.burst30_booked_warmup_s", round(warmup, 1))
    if ready < LEARNERS:
        results.note(f"sandbox.burst30_booked_warmup_s: only {ready} of {LEARNERS} were ready after {BOOKED_READY_S} s")
    # The class comes at its start, a quarter of an hour after the booking: brokers that have just booted are
    # still settling (thirty RabbitMQs kept both cores busy for seconds after their last "ready").
    settled, busy = _settle()
    results.note(
        f"sandbox.burst30_booked: the pool settled {settled:.0f} s after its last broker was ready "
        f"(machine {busy:.0f}% busy over the last 5 s before the class came)"
    )
    cookies = [harness.session_cookie(user) for user in users]
    target = {"course": cell.chapter.course.slug, "chapter": cell.chapter.slug, "cell": cell.key}
    learners, cpu = asyncio.run(_burst(platform, cookies, target))
    _report(results, "sandbox.burst30_booked", learners, cpu, cell.broker)
    _class_stop(users)


def _class_stop(users: list) -> None:
    """Stop the class's sandboxes (the pool's stay)."""
    active = Sandbox.objects.filter(user__in=users).exclude(state__in=(State.STOPPED, State.FAILED))
    harness.sandboxes_stop(list(active.values_list("pk", flat=True)), parallel=8)


def _settle(*, quiet_pct: float = 50.0, most_s: float = 120.0) -> tuple[float, float]:
    """Wait until the machine is less than ``quiet_pct`` busy over 5 s (at most ``most_s``); (seconds, busy %)."""
    started = time.monotonic()
    busy = psutil.cpu_percent(interval=5)
    while busy >= quiet_pct and time.monotonic() - started < most_s:
        busy = psutil.cpu_percent(interval=5)
    return time.monotonic() - started, busy


def _first_cell(broker: str | None = None) -> Cell | None:
    """The first runnable cell of the bundled course (of ``broker``, if given), in reading order."""
    cells = Cell.objects.filter(chapter__published=True, chapter__course__published=True, chapter__course__translation_of="")
    if broker is not None:
        cells = cells.filter(broker=broker)
    return (
        cells.exclude(role="check")
        .select_related("chapter__course")
        .order_by("chapter__order", "chapter__number", "position")
        .first()
    )


def _pool_ready(wanted: int, *, within_s: float, broker: str | None = None) -> int:
    """Wait until the warm pool holds ``wanted`` ready brokers (of ``broker``, if given); how many it holds then."""
    pooled = Sandbox.objects.filter(purpose="pool", state=State.READY)
    if broker is not None:
        pooled = pooled.filter(broker=broker)
    over = harness.bounded(within_s)
    ready = pooled.count()
    while ready < wanted and not over():
        time.sleep(0.5)
        ready = pooled.count()
    return ready


class Learner:
    def __init__(self) -> None:
        self.stages: dict[str, float] = {}  # stage -> seconds after the send, first seen
        self.ready_s: float | None = None
        self.exit_s: float | None = None
        self.error = ""
        self.sandbox_id: int | None = None


async def _burst(platform: Platform, cookies: list[str], target: dict[str, str]) -> tuple[list[Learner], dict[str, float]]:
    sockets = await asyncio.gather(*(harness.ws_open(platform, cookie) for cookie in cookies))
    learners = [Learner() for _ in sockets]
    try:
        for ws in sockets:
            hello = json.loads(await asyncio.wait_for(ws.recv(), 20))
            if hello.get("type") != "hello":
                raise RuntimeError(f"expected hello, got {hello}")
        go = asyncio.Event()
        everyone_ready = asyncio.Event()
        started = 0.0

        async def learner(ws, me: Learner) -> None:
            await go.wait()
            await ws.send(json.dumps({"type": "cell.run", "run": "burst-1", **target}))
            deadline = time.monotonic() + BURST_TIMEOUT_S
            while me.exit_s is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    me.error = me.error or "no cell.exit in time"
                    return
                try:
                    message = json.loads(await asyncio.wait_for(ws.recv(), left))
                except TimeoutError:
                    continue
                now = time.perf_counter() - started
                kind = message.get("type")
                if kind == "sandbox.state":
                    sandbox = message.get("sandbox") or {}
                    me.sandbox_id = sandbox.get("id", me.sandbox_id)
                    stage = "ready" if sandbox.get("state") == State.READY else sandbox.get("stage") or sandbox.get("state")
                    me.stages.setdefault(stage, now)
                    if sandbox.get("state") == State.READY and me.ready_s is None:
                        me.ready_s = now
                    elif sandbox.get("state") == State.FAILED:
                        me.error = f"failed: {sandbox.get('error')}"
                    if all(other.ready_s is not None or other.error for other in learners):
                        everyone_ready.set()
                elif message.get("run") == "burst-1" and kind == "cell.exit":
                    me.exit_s = now
                elif message.get("run") == "burst-1" and kind in ("cell.error", "error"):
                    me.error = str(message.get("message"))
                    return

        runners = [asyncio.ensure_future(learner(ws, me)) for ws, me in zip(sockets, learners, strict=True)]
        await asyncio.sleep(0.5)  # every learner waits on the event
        psutil.cpu_percent(interval=None)
        cpu_before = _cpu_seconds(platform)
        busy: list[float] = []

        async def sample() -> None:
            while True:
                await asyncio.sleep(0.5)
                busy.append(psutil.cpu_percent(interval=None))

        sampler = asyncio.ensure_future(sample())
        started = time.perf_counter()
        go.set()
        finished = asyncio.ensure_future(asyncio.gather(*runners))
        await asyncio.wait({finished, asyncio.ensure_future(everyone_ready.wait())}, return_when=asyncio.FIRST_COMPLETED)
        # CPU until the last broker was ready (or until the learners gave up): the cells' runs are not the start's.
        sampler.cancel()
        after = _cpu_seconds(platform)
        cpu = {"busy_pct": sum(busy) / len(busy) if busy else 0.0}
        cpu.update({role: after[role] - cpu_before[role] for role in after})
        # Every process of the class's units started in the burst: all their CPU time is the burst's.
        ids = [me.sandbox_id for me in learners if me.sandbox_id is not None and "starting agent" in me.stages]
        units = await asyncio.to_thread(lambda: list(Sandbox.objects.filter(pk__in=ids)))
        by_kind: dict[str, float] = {}
        for pid in {pid for s in units for pid in harness.unit_pids(s)}:
            with contextlib.suppress(psutil.Error):
                name = psutil.Process(pid).name()
                by_kind[name] = by_kind.get(name, 0.0) + _tree_cpu(pid, children=False)
        cpu["units"] = sum(by_kind.values())
        cpu.update({f"unit:{name}": seconds for name, seconds in by_kind.items()})
        await finished
    finally:
        for ws in sockets:
            await ws.close()
    return learners, cpu


def _tree_cpu(pid: int, *, children: bool = True) -> float:
    """User and system CPU seconds of a process (and, by default, of its children)."""
    try:
        process = psutil.Process(pid)
        tree = [process, *process.children(recursive=True)] if children else [process]
    except psutil.Error:
        return 0.0
    total = 0.0
    for member in tree:
        try:
            times = member.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def _cpu_seconds(platform: Platform) -> dict[str, float]:
    """CPU seconds so far: the machine's (every core, every user of it) and the platform's own services'."""
    times = psutil.cpu_times()
    seconds = {"machine": sum(times) - times.idle - getattr(times, "iowait", 0.0)}
    for role in ("worker", "asgi", "postgres", "redis"):
        service = getattr(platform, role)
        seconds[role] = _tree_cpu(service.process.pid) if service is not None else 0.0
    return seconds


def _report(results: Results, prefix: str, learners: list[Learner], cpu: dict[str, float], broker: str) -> None:
    ready = [me.ready_s for me in learners if me.ready_s is not None]
    failed = [me.error for me in learners if me.ready_s is None]
    if not ready:
        results.note(f"{prefix}: no learner got a ready broker: {sorted(set(failed))[:3]}")
        return
    say(f"burst {broker}: {len(ready)} of {len(learners)} ready; the last after {max(ready):.1f} s")
    if failed:
        # The figure is then the last of those that did get one: the note must be read with it.
        results.note(f"{prefix}_all_ready_s: {len(failed)} of {len(learners)} got no ready broker: {sorted(set(failed))[:3]}")
    results.value(f"{prefix}_all_ready_s", max(ready))
    results.samples(f"{prefix}_ready_s", ready)
    exits = [me.exit_s for me in learners if me.exit_s is not None]
    if exits:
        results.samples(f"{prefix}_first_cell_exit_s", exits)
    # Where the time goes: how long learners spent reaching each stage from the one before it.
    phases = []
    for before, after in itertools.pairwise(STAGES):
        spans = [me.stages[after] - me.stages[before] for me in learners if after in me.stages and before in me.stages]
        if spans:
            phases.append(f"{before} -> {after} p50 {percentile(spans, 50):.1f} s, max {max(spans):.1f} s")
    pooled = sum(1 for me in learners if "starting agent" not in me.stages and me.ready_s is not None)
    results.note(f"{prefix} ({broker}, {pooled} from the warm pool), each learner's wait by stage: " + "; ".join(phases))
    say(results.notes[-1])
    kinds = sorted(((k.removeprefix("unit:"), v) for k, v in cpu.items() if k.startswith("unit:")), key=lambda kv: -kv[1])
    results.note(
        f"{prefix} CPU until all ready: machine {cpu['busy_pct']:.0f}% busy ({psutil.cpu_count()} cores, shared with others); CPU s:"
        + ", ".join(f" {role} {cpu[role]:.1f}" for role in ("machine", "units", "worker", "asgi", "postgres", "redis"))
        + "; in the units by process: "
        + ", ".join(f"{name} {seconds:.1f}" for name, seconds in kinds[:5])
    )
    say(results.notes[-1])
