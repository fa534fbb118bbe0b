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
* many at once: bench/density.py.
"""

from __future__ import annotations

import asyncio
import time

from django.conf import settings
from django.utils import timezone

from sandboxes import agent_client
from sandboxes.models import Sandbox, State
from sandboxes.services.pool import sandbox_pool_fill
from tests.smoke_cells import PRODUCE_CONSUME

from . import harness
from .harness import Platform, say
from .report import Results

BROKERS = ("nats", "rabbitmq", "activemq", "kafka")
IDLE_S = 10.0
#: Pooled pods the Kubernetes lab surely schedules (scripts/k8s-lab.sh: two nodes of this machine's CPUs, a CPU a pod).
K8S_LAB_PODS = 3


def run(platform: Platform, results: Results, *, quick: bool, backend: str = "process") -> None:
    cold_n = (
        {"nats": 3, "rabbitmq": 2, "activemq": 2, "kafka": 2} if quick else {"nats": 5, "rabbitmq": 3, "activemq": 3, "kafka": 3}
    )
    warm_n = 3 if quick else 5
    if backend == "kubernetes":
        # The lab's two nodes have this machine's two CPUs each and a sandbox pod asks for one: four fit, fewer while
        # the last broker's pods are still ending, and one more waits unscheduled until the pool's timeout
        # (60 + 45 s a pod; seen: five minutes a broker with a pool of five).
        warm_n = min(warm_n, K8S_LAB_PODS)
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
        harness.sandboxes_settle(pooled, timeout=60 + 45 * count, interval=0.2)
        ready = list(Sandbox.objects.filter(pk__in=pooled, state=State.READY, user__isnull=True))
        if len(ready) < len(pooled):
            results.note(f"warm {broker}: only {len(ready)} of {len(pooled)} pooled sandboxes became ready")
        samples = []
        served = []
        missed = 0
        for _ in ready:
            user = platform.user(f"warm-{broker}")
            started = time.perf_counter()
            sandbox = harness.actions.sandbox_ensure(user_id=user.pk, broker=broker)
            if sandbox.pk not in pooled:
                # The worker's own pool upkeep (its size, not this run's) stopped the pooled one first:
                # this learner got a cold start, which is not a warm start's figure.
                missed += 1
                continue
            if sandbox.state != State.READY:
                sandbox = harness.sandbox_wait(sandbox.pk, timeout=harness.provisioning.PROVISION_TIMEOUT_S)
            samples.append(time.perf_counter() - started)
            served.append(sandbox)
        say(f"warm {broker}: " + ", ".join(f"{s * 1000:.0f}" for s in samples) + " ms")
        if missed:
            results.note(
                f"warm {broker}: {missed} of {len(ready)} claims found the pooled sandbox gone (the worker's pool upkeep); left out"
            )
        if samples:
            results.samples(f"sandbox.{backend}.{broker}.warm_start_s", samples)
        if served:
            idle = Sandbox.objects.get(pk=served[0].pk)
            quiet = IDLE_S - (timezone.now() - idle.ready_at).total_seconds()
            if quiet > 0:
                time.sleep(quiet)
            mb = harness.unit_rss_mb(idle)
            say(f"idle {broker}: {mb:.0f} MB in {len(harness.unit_pids(idle))} processes")
            results.value(f"sandbox.{backend}.{broker}.idle_rss_mb", mb)
    finally:
        # Every sandbox of this measurement, pooled or not: one left running holds the admission's capacity
        # for the areas after it (a run of make bench once queued four learners of the class burst so).
        mine = set(pooled) | set(
            Sandbox.objects.filter(user__username__startswith=f"bench-warm-{broker}-")
            .exclude(state=State.STOPPED)
            .values_list("pk", flat=True)
        )
        harness.sandboxes_stop(sorted(mine))


# -- many at once (bench/density.py) ------------------------------------------------


async def cells_answering(sandboxes: list[Sandbox], parallel: int = 6) -> int:
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
                say(f"cell: {sandbox.broker} sandbox {sandbox.pk}: {exc!r}")
                return False
        ok = result.get("status") == 0 and "got hello-" in "".join(output)
        if not ok:
            say(f"cell: {sandbox.broker} sandbox {sandbox.pk} cell failed: {result} {''.join(output)[-400:]}")
        return ok

    return sum(await asyncio.gather(*(one(s) for s in sandboxes)))
