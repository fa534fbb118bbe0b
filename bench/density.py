"""A whole class's worth of sandboxes at once: how many of mixed brokers this machine holds alive and answering.

Issue #14 asks for at least 100. MIX (100 sandboxes, the course's five kinds, lighter ones more often, as
a class spreads over chapters) is requested in waves of WAVE through the platform's own path (``sandbox_ensure``
→ the worker, ``-c 2`` → the unit launcher), each learner a user of their own. Once every one has
settled, the machine idles for a while, memory is read, and each sandbox runs its broker's
produce/consume cell; ``sandbox.density_ready_count`` counts the ones that printed what they consumed.

Memory is given three ways: PSS per broker kind (``/proc/<pid>/smaps_rollup``: a page shared by
several processes, such as the cell template's copy-on-write pages or the JVM's class archive,
counted once across them), the RSS sum (which counts those pages again in every process), and the
fall of the host's available memory from before the first request (everything, the kernel's share
included).

Admission would hold most of them back at its default capacity (three quarters of the machine's
memory, each kind counted at its ``memory_mb``, what a busy unit may grow to, not what an idle one
holds; the mix's weights add up to more than the machine has): for this area admission's capacity is
their sum, and the note says how many the default would have admitted at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import psutil
from django.conf import settings

from sandboxes.brokers import BROKERS as BROKER_ENTRIES
from sandboxes.models import Sandbox, State
from sandboxes.services.admission import admission_capacity_mb, broker_weight_mb

from . import harness
from .harness import Platform, say
from .report import Results, percentile
from .sandboxes import IDLE_S, cells_answering

MIX = {"nats": 40, "redis": 20, "rabbitmq": 20, "activemq": 10, "kafka": 10}
QUICK_MIX = {"nats": 4, "redis": 2, "rabbitmq": 2, "activemq": 1, "kafka": 1}
#: Requested this many at a time, the next wave once these have settled: all 100 in the same second on two
#: cores left five Kafka brokers still booting at the agent's 120 s limit (95 of 100; run of 2026-12-02).
WAVE = 25
#: What the rest of the machine keeps free (the platform itself, the benchmark, the page cache).
RESERVE_MB = 3072


def _mix(quick: bool) -> dict[str, int]:
    """MIX, with fewer JVM brokers if this machine's free memory (at their idle size) says so."""
    mix = dict(QUICK_MIX if quick else MIX)
    available = psutil.virtual_memory().available / 2**20 - RESERVE_MB
    for broker in ("kafka", "activemq"):
        while mix[broker] > 1 and sum(BROKER_ENTRIES[b].idle_mb * n for b, n in mix.items()) > available:
            mix[broker] -= 1
    return mix


def pss_mb(pids: list[int]) -> float:
    """Proportional set size of these processes, summed, in MiB (gone meanwhile: 0)."""
    total_kb = 0
    for pid in pids:
        with contextlib.suppress(OSError, StopIteration, ValueError):
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
            total_kb += int(next(line.split()[1] for line in rollup if line.startswith("Pss:")))
    return total_kb / 1024


def _admitted_by_default(mix: dict[str, int]) -> int:
    """How many of the mix admission's default capacity lets run at once, in the order they were asked."""
    room, admitted = admission_capacity_mb(), 0
    for broker in _order(mix):
        if broker_weight_mb(broker) > room:
            break
        room -= broker_weight_mb(broker)
        admitted += 1
    return admitted


def _order(mix: dict[str, int]) -> list[str]:
    """Interleaved by kind, as learners of several chapters arrive."""
    return [b for i in range(max(mix.values())) for b in mix if i < mix[b]]


def run(platform: Platform, results: Results, *, quick: bool) -> None:
    mix = _mix(quick)
    total = sum(mix.values())
    weights_mb = sum(broker_weight_mb(b) * n for b, n in mix.items())
    say(f"density: {total} sandboxes in waves of {WAVE}: " + ", ".join(f"{n} {b}" for b, n in mix.items()))
    results.note(
        f"density: admission at its default capacity ({admission_capacity_mb()} MB) would run {_admitted_by_default(mix)} of "
        f"these {total} at once and queue the rest; here admission's capacity was their weights' sum, {weights_mb} MB"
    )
    # Admission decides where the request is made (here, as the page's consumer does) and again in the worker.
    configured_mb = settings.SANDBOX_CAPACITY_MB
    settings.SANDBOX_CAPACITY_MB = weights_mb
    platform.restart_worker(env={"SANDBOX_CAPACITY_MB": str(weights_mb)})
    available_before = psutil.virtual_memory().available / 2**20
    pks: list[int] = []
    try:
        started = time.perf_counter()
        order = _order(mix)
        for wave in range(0, total, WAVE):
            for broker in order[wave : wave + WAVE]:
                user = platform.user(f"density-{broker}")
                pks.append(harness.actions.sandbox_ensure(user_id=user.pk, broker=broker).pk)
            harness.sandboxes_settle(pks, timeout=180 if quick else 600, interval=0.5)
            say(f"density: {len(pks)} requested, {Sandbox.objects.filter(pk__in=pks, state=State.READY).count()} ready")
        all_ready_s = time.perf_counter() - started
        sandboxes = list(Sandbox.objects.filter(pk__in=pks))
        ready = [s for s in sandboxes if s.state == State.READY]
        for failed in (s for s in sandboxes if s.state != State.READY):
            results.note(f"density: {failed.broker} sandbox {failed.pk} is {failed.state}: {failed.error or failed.stage}")
        say(f"density: {len(ready)} of {total} ready after {all_ready_s:.0f} s")
        time.sleep(IDLE_S)
        host_used_mb = available_before - psutil.virtual_memory().available / 2**20
        per_unit: dict[str, list[float]] = {b: [] for b in mix}
        all_pids: list[int] = []
        for sandbox in ready:
            pids = harness.unit_pids(sandbox)
            all_pids += pids
            per_unit[sandbox.broker].append(pss_mb(pids))
        total_pss, total_rss = sum(sum(v) for v in per_unit.values()), harness.rss_mb(all_pids)
        say(f"density: PSS {total_pss:.0f} MB, RSS {total_rss:.0f} MB in {len(all_pids)} processes; host {host_used_mb:.0f} MB")
        answered = asyncio.run(cells_answering(ready))
        say(f"density: {answered} of {total} answered a produce/consume cell")
        results.value("sandbox.density_started_count", total)
        results.value("sandbox.density_ready_count", answered)
        results.value("sandbox.density_all_ready_s", all_ready_s)
        results.value("sandbox.density_total_pss_mb", total_pss)
        results.value("sandbox.density_total_rss_mb", total_rss)
        results.value("sandbox.density_host_used_mb", host_used_mb)
        for broker, values in per_unit.items():
            if values:
                results.samples(f"sandbox.density.{broker}.pss_mb", values)
        waits = {s.broker: [] for s in ready}
        for s in ready:
            if s.ready_at:
                waits[s.broker].append((s.ready_at - s.created_at).total_seconds())
        results.note(
            f"density, request to ready in waves of {WAVE} (worker -c 2): "
            + ", ".join(f"{b} p50 {percentile(w, 50):.1f} s (max {max(w):.1f})" for b, w in waits.items() if w)
        )
    finally:
        harness.sandboxes_stop(pks, parallel=8)
        settings.SANDBOX_CAPACITY_MB = configured_mb
        left = harness.get_backend().list_units()
        over = harness.bounded(30)  # a stop still in flight (a start it overtook) may take a moment
        while left and not over():
            time.sleep(1)
            left = harness.get_backend().list_units()
        if left:
            results.note(f"density: left behind after the stops: {', '.join(left)}")
        results.value("sandbox.density_left_behind_count", len(left))
        platform.restart_worker(env={})
