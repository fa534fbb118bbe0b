"""Sandboxes of the process backend: cold and warm start, idle memory, and many at once.

Everything goes through the platform's own path: ``sandbox_ensure`` (as the
page's WebSocket calls it) enqueues ``sandboxes.provision`` on the real Celery
worker (started as the Procfile starts it, ``-c 2``), which starts the unit;
the time is taken from the call to the moment the record says ``ready``.

* cold: nothing pre-started, no warm pool; one sandbox at a time, stopped after.
* warm: ``sandbox_pool_fill`` with a pool of N for one broker, wait until all
  pooled units are ready, then N learners call ``sandbox_ensure`` one after the
  other (each claims a ready unit).
* idle RSS: every process of one unit (``backend.processes``), after it has
  been idle at least 10 s.
* density: 30 sandboxes of mixed brokers requested at once, then a trivial
  produce/consume cell in each; total RSS of all units while idle.
"""

from __future__ import annotations

import asyncio
import time

import psutil
from django.conf import settings
from django.utils import timezone

from sandboxes import agent_client
from sandboxes.brokers import BROKERS as BROKER_ENTRIES
from sandboxes.models import Sandbox, State
from sandboxes.services.pool import sandbox_pool_fill
from tests.smoke_cells import PRODUCE_CONSUME

from . import harness
from .harness import Platform, say
from .report import Results, percentile

BROKERS = ("nats", "rabbitmq", "activemq", "kafka")
IDLE_S = 10.0


def run(platform: Platform, results: Results, *, quick: bool, backend: str = "process") -> None:
    cold_n = (
        {"nats": 3, "rabbitmq": 2, "activemq": 2, "kafka": 2} if quick else {"nats": 5, "rabbitmq": 3, "activemq": 3, "kafka": 3}
    )
    warm_n = 3 if quick else 5
    for broker in BROKERS:
        _cold(platform, results, broker, cold_n[broker], backend)
    for broker in BROKERS:
        _warm_and_idle(platform, results, broker, warm_n, backend)


DOCKER_BACKEND = "sandboxes.backends.docker.DockerBackend"


def run_docker(platform: Platform, results: Results, *, quick: bool) -> None:
    """The same start and memory figures with every sandbox a container (the production backend)."""
    import subprocess

    for argv in (["scripts/docker-engine.sh"], ["make", "-s", "images"]):
        subprocess.run(argv, cwd=harness.ROOT, check=True, stdout=subprocess.DEVNULL, timeout=1800)
    platform.switch_backend(DOCKER_BACKEND)
    try:
        run(platform, results, quick=quick, backend="docker")
    finally:
        platform.switch_backend(None)


def _cold(platform: Platform, results: Results, broker: str, count: int, backend: str) -> None:
    user = platform.user(f"cold-{broker}")
    samples = []
    for _ in range(count):
        try:
            sandbox, seconds = harness.sandbox_ready(user, broker)
        except harness.SandboxFailed as exc:
            say(f"cold {broker}: {exc}")
            results.note(f"cold {broker}: {exc}")
            _stop_user_sandboxes(user.pk)
            continue
        samples.append(seconds)
        harness.sandbox_stop(sandbox.pk)
    say(f"cold {broker}: " + ", ".join(f"{s:.2f}" for s in samples) + " s")
    results.samples(f"sandbox.{backend}.{broker}.cold_start_s", samples)


def _stop_user_sandboxes(user_id: int) -> None:
    harness.sandboxes_stop(
        list(Sandbox.objects.filter(user_id=user_id).exclude(state=State.STOPPED).values_list("pk", flat=True))
    )


def _warm_and_idle(platform: Platform, results: Results, broker: str, count: int, backend: str) -> None:
    previous = settings.SANDBOX_WARM_POOL
    settings.SANDBOX_WARM_POOL = {broker: count}
    try:
        pooled = sandbox_pool_fill()
    finally:
        settings.SANDBOX_WARM_POOL = previous  # refills queued by claims find an empty setting in the worker anyway
    try:
        over = harness.bounded(60 + 45 * count)
        while not over():
            states = list(Sandbox.objects.filter(pk__in=pooled).values_list("state", flat=True))
            if all(s not in (State.REQUESTED, State.PROVISIONING) for s in states):
                break
            time.sleep(0.2)
        ready = list(Sandbox.objects.filter(pk__in=pooled, state=State.READY, user__isnull=True))
        if len(ready) < len(pooled):
            results.note(f"warm {broker}: only {len(ready)} of {len(pooled)} pooled sandboxes became ready")
        samples = []
        claimed = []
        for _ in ready:
            user = platform.user(f"warm-{broker}")
            started = time.perf_counter()
            sandbox = harness.actions.sandbox_ensure(user_id=user.pk, broker=broker)
            if sandbox.state != State.READY:
                sandbox = harness.sandbox_wait(sandbox.pk, timeout=harness.provisioning.PROVISION_TIMEOUT_S)
            samples.append(time.perf_counter() - started)
            claimed.append(sandbox)
        say(f"warm {broker}: " + ", ".join(f"{s * 1000:.0f}" for s in samples) + " ms")
        results.samples(f"sandbox.{backend}.{broker}.warm_start_s", samples)
        if claimed:
            idle = Sandbox.objects.get(pk=claimed[0].pk)
            quiet = IDLE_S - (timezone.now() - idle.ready_at).total_seconds()
            if quiet > 0:
                time.sleep(quiet)
            mb = harness.unit_rss_mb(idle)
            say(f"idle {broker}: {mb:.0f} MB in {len(harness.unit_pids(idle))} processes")
            results.value(f"sandbox.{backend}.{broker}.idle_rss_mb", mb)
    finally:
        harness.sandboxes_stop(pooled)


# -- density -----------------------------------------------------------------------


def _mix(quick: bool) -> dict[str, int]:
    """12 NATS, 6 RabbitMQ, 6 ActiveMQ, 6 Kafka, fewer JVM brokers if the free memory says so."""
    mix = (
        {"nats": 4, "rabbitmq": 2, "activemq": 1, "kafka": 1} if quick else {"nats": 12, "rabbitmq": 6, "activemq": 6, "kafka": 6}
    )
    available = psutil.virtual_memory().available / 1024**2 - 4096  # what the others on this machine keep
    for broker in ("kafka", "activemq"):
        while mix[broker] > 1 and sum(BROKER_ENTRIES[b].idle_mb * n for b, n in mix.items()) > available:
            mix[broker] -= 1
    return mix


def run_density(platform: Platform, results: Results, *, quick: bool) -> None:
    mix = _mix(quick)
    total = sum(mix.values())
    say(f"density: {total} sandboxes at once: " + ", ".join(f"{n} {b}" for b, n in mix.items()))
    order = [b for i in range(max(mix.values())) for b in BROKERS if i < mix[b]]  # interleaved, as learners arrive
    pks = []
    try:
        started = time.perf_counter()
        for broker in order:
            user = platform.user(f"density-{broker}")
            pks.append(harness.actions.sandbox_ensure(user_id=user.pk, broker=broker).pk)
        over = harness.bounded(240 if quick else 480)
        while not over():
            states = list(Sandbox.objects.filter(pk__in=pks).values_list("state", flat=True))
            if all(s not in (State.REQUESTED, State.PROVISIONING) for s in states):
                break
            time.sleep(0.25)
        all_ready_s = time.perf_counter() - started
        sandboxes = list(Sandbox.objects.filter(pk__in=pks))
        ready = [s for s in sandboxes if s.state == State.READY]
        for failed in (s for s in sandboxes if s.state != State.READY):
            results.note(f"density: {failed.broker} sandbox {failed.pk} is {failed.state}: {failed.error or failed.stage}")
        say(f"density: {len(ready)} of {total} ready after {all_ready_s:.0f} s")
        # Idle for a while, then the memory of every process of every unit.
        time.sleep(IDLE_S)
        pids = sorted({pid for s in ready for pid in harness.unit_pids(s)})
        total_mb = harness.rss_mb(pids)
        say(f"density: {total_mb:.0f} MB RSS in {len(pids)} processes")
        answered = asyncio.run(_cells(ready))
        say(f"density: {answered} of {total} answered a produce/consume cell")
        results.value("sandbox.concurrent_started_count", total)
        results.value("sandbox.concurrent_ready_count", answered)
        results.value("sandbox.concurrent_total_rss_mb", total_mb)
        results.value("sandbox.concurrent_all_ready_s", all_ready_s)
        # Each learner's own wait, request to ready, while the others start too.
        waits = {s.pk: (s.ready_at - s.created_at).total_seconds() for s in ready if s.ready_at}
        results.samples("sandbox.concurrent_start_s", list(waits.values()))
        by_broker = {b: [w for pk, w in waits.items() if next(s.broker for s in ready if s.pk == pk) == b] for b in BROKERS}
        results.note(
            "density, request to ready with all requested at once (worker -c 2): "
            + ", ".join(f"{b} p50 {percentile(w, 50):.1f} s (max {max(w):.1f})" for b, w in by_broker.items() if w)
        )
    finally:
        harness.sandboxes_stop(pks, parallel=8)


async def _cells(sandboxes: list[Sandbox], parallel: int = 6) -> int:
    """Run each broker's produce/consume cell in its sandbox, a few at a time; count the ones that printed "got"."""
    gate = asyncio.Semaphore(parallel)
    sockets = {s.pk: harness.sandbox_socket(s) for s in sandboxes}

    async def one(sandbox: Sandbox) -> bool:
        output: list[str] = []

        async def collect(message: dict) -> None:
            output.append(message.get("text", ""))

        async with gate:
            try:
                result = await asyncio.wait_for(
                    agent_client.run(sockets[sandbox.pk], code=PRODUCE_CONSUME[sandbox.broker], timeout=90, on_message=collect),
                    120,
                )
            except (TimeoutError, agent_client.AgentUnavailable) as exc:
                say(f"density: {sandbox.broker} sandbox {sandbox.pk}: {exc!r}")
                return False
        ok = result.get("status") == 0 and "got hello-" in "".join(output)
        if not ok:
            say(f"density: {sandbox.broker} sandbox {sandbox.pk} cell failed: {result} {''.join(output)[-400:]}")
        return ok

    return sum(await asyncio.gather(*(one(s) for s in sandboxes)))
