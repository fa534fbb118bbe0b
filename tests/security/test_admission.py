"""The door "admission": past the platform's capacity a learner is queued fairly, told their place and an
estimate, and started by themselves when room frees; the slots are what the database says runs.

Real uvicorn and Celery worker started with a capacity of two NATS units (SANDBOX_CAPACITY_MB), real
Redis, real NATS units, WebSocket clients of four learners (one of them with two tabs).
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import User

from lessons.course_io import course_import
from sandboxes.brokers import BROKERS
from sandboxes.models import QueuedRequest, Sandbox, State
from sandboxes.services import actions, admission, pool
from sandboxes.services.reconcile import sandboxes_reconcile
from tests.aio import run
from tests.courseplatform.test_realtime_roundtrip import session_cookie
from tests.security.flooder import Tab, opened
from tests.security.test_ws_flood import MINI
from tests.services import PYTHON, Service, celery_worker_start, free_port, port_open, wait_for, worker_in_place_of

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

#: Two NATS units fill the platform.
CAPACITY_MB = 2 * BROKERS["nats"].memory_mb
START_S = 120  # a sandbox starting under the load of other suites


def redis_forgets_admission() -> int:
    """What a Redis that restarts empty does to admission: every key of it gone. Returns how many there were."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    keys = list(client.scan_iter(f"{settings.SANDBOX_INSTANCE}:admission:*"))
    return client.delete(*keys) if keys else 0


@contextmanager
def platform_with_capacity(session_worker: Service, capacity_mb: int) -> Iterator[tuple[str, list[Service]]]:
    """A web server of its own and the only worker, both with ``capacity_mb`` of room; yields its address."""
    env = {"SANDBOX_CAPACITY_MB": str(capacity_mb)}
    port = free_port()
    web = Service(
        "asgi-admission",
        [
            *(PYTHON, "-m", "uvicorn", "courseplatform.asgi:application"),
            *("--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"),
        ],
        env=env,
    )
    try:
        wait_for(lambda: port_open(port), timeout=60, what="the admission ASGI server listening")
        with worker_in_place_of(session_worker, "admission", env=env) as worker:
            yield f"http://127.0.0.1:{port}", [worker]
    finally:
        web.stop()


@pytest.fixture(scope="module")
def small_platform(celery_worker) -> Iterator[tuple[str, list[Service]]]:
    """Room for two NATS units (the kill test runs last: it kills this worker)."""
    with platform_with_capacity(celery_worker, CAPACITY_MB) as platform:
        yield platform


@pytest.fixture(autouse=True)
def _empty_queue() -> Iterator[None]:
    """Each test starts with nobody waiting and leaves nobody waiting for the rest of the suite."""
    QueuedRequest.objects.all().delete()
    yield
    QueuedRequest.objects.all().delete()


def is_state(broker: str, *states: str):
    return lambda f: f["type"] == "sandbox.state" and f["sandbox"]["broker"] == broker and f["sandbox"]["state"] in states


def is_queue(place: int | None):
    return lambda f: f["type"] == "sandbox.queue" and f["broker"] == "nats" and f["place"] == place


async def ensure(tab: Tab, found, *, timeout: float = 60) -> dict:
    mark = len(tab.frames)
    await tab.ws.send(json.dumps({"type": "sandbox.ensure", "broker": "nats"}))
    return await tab.wait(found, timeout=timeout, start=mark)


async def cell(tab: Tab, run_id: str, *, timeout: float = START_S) -> dict:
    mark = len(tab.frames)
    frame = {"type": "cell.run", "run": run_id, "course": "mini", "chapter": "first", "cell": "publish"}
    await tab.ws.send(json.dumps({**frame, "code": "print('pong')"}))
    return await tab.wait(
        lambda f: f.get("run") == run_id and f["type"] in ("cell.exit", "cell.error"), timeout=timeout, start=mark
    )


def test_past_capacity_a_learner_is_queued_with_a_place_and_starts_by_itself_when_room_frees(small_platform, units_cleanup):
    url, _ = small_platform
    course_import(directory=MINI)
    cookies = {name: session_cookie(User.objects.create_user(name, password=f"{name}-pass-123")) for name in "abcd"}

    async def scenario() -> dict:
        async with (
            opened(url, cookies["a"]) as wa,
            opened(url, cookies["b"]) as wb,
            opened(url, cookies["c"]) as wc,
            opened(url, cookies["c"]) as wc2,
            opened(url, cookies["d"]) as wd,
        ):
            a, b, c, c2, d = (Tab(ws) for ws in (wa, wb, wc, wc2, wd))
            for tab in (a, b, c, c2, d):
                await tab.wait(lambda f: f["type"] == "hello", timeout=30)
            await ensure(a, is_state("nats", "requested", "provisioning", "ready"))
            await ensure(b, is_state("nats", "requested", "provisioning", "ready"))
            # The third learner is beyond capacity: a place and an estimate, at once (never a hang).
            third = await ensure(c, is_queue(1))
            # A second tab of the same learner: the same place, not a second one.
            await ensure(c2, is_queue(1))
            fourth = await ensure(d, is_queue(2))
            places = await sync_to_async(QueuedRequest.objects.count)()
            # Redis restarts empty (it keeps nothing on disk): nobody loses their place.
            forgotten = redis_forgets_admission()
            # A cell run while queued says so in the cell, at once.
            queued_run = await cell(c, "while-queued", timeout=60)
            # After a reload the page still knows its place (hello carries it).
            async with opened(url, cookies["c"]) as wc3:
                hello = await Tab(wc3).wait(lambda f: f["type"] == "hello", timeout=30)
            await a.wait(is_state("nats", "ready"), timeout=START_S)
            await a.ws.send(json.dumps({"type": "sandbox.stop", "broker": "nats"}))
            # The head of the queue starts by itself: both of C's tabs move on to provisioning, then ready.
            await c.wait(is_state("nats", "requested", "provisioning"), timeout=START_S)
            await c2.wait(is_state("nats", "ready"), timeout=START_S)
            answer = await cell(c, "after-admission")
            output = "".join(f["text"] for f in c.frames if f["type"] == "cell.output" and f.get("run") == "after-admission")
            moved_up = await d.wait(is_queue(1), timeout=60)
            await d.ws.send(json.dumps({"type": "sandbox.stop", "broker": "nats"}))
            left = await d.wait(is_queue(None), timeout=60)
            return {
                "third": third,
                "fourth": fourth,
                "places": places,
                "forgotten": forgotten,
                "queued_run": queued_run,
                "hello": hello,
                "answer": answer,
                "output": output,
                "moved_up": moved_up,
                "left": left,
            }

    seen = run(scenario())
    assert seen["third"]["estimate_s"] > 0 and seen["third"]["basis"] in ("releases", "idle", "timeout"), seen["third"]
    assert seen["fourth"]["estimate_s"] >= seen["third"]["estimate_s"]
    assert seen["places"] == 2  # C (two tabs) and D
    assert seen["queued_run"]["type"] == "cell.error" and "очереди" in seen["queued_run"]["message"], seen["queued_run"]
    assert [(p["broker"], p["place"]) for p in seen["hello"]["queue"]] == [("nats", 1)]
    assert seen["answer"]["type"] == "cell.exit" and seen["answer"]["status"] == 0, seen["answer"]
    assert "pong" in seen["output"]
    assert not QueuedRequest.objects.exists()
    learner_c = User.objects.get(username="c")
    assert Sandbox.objects.filter(user=learner_c, state=State.READY).count() == 1
    assert not Sandbox.objects.filter(user__username="d").exists()


def test_an_idle_pooled_unit_makes_room_for_a_waiting_learner_and_the_pool_never_takes_their_room(
    small_platform, units_cleanup, settings
):
    """Pooled units use memory and count, but never keep a learner waiting: a head that does not fit gets an
    idle pooled unit of another kind stopped, and pool fill starts nothing while the platform is full."""
    settings.SANDBOX_CAPACITY_MB = CAPACITY_MB  # this process's view, as the server's and worker's
    settings.SANDBOX_WARM_POOL = {"redis": 1}
    (pooled,) = pool.sandbox_pool_fill()
    wait_for(lambda: Sandbox.objects.get(pk=pooled).state == State.READY, timeout=START_S, what="the pooled unit ready")
    first, second = (User.objects.create_user(name, password=f"{name}-pass-123") for name in ("h", "i"))
    actions.sandbox_ensure(user_id=first.pk, broker="nats")  # with the pooled unit: the platform is full
    assert pool.sandbox_pool_fill() == []
    with pytest.raises(admission.SandboxQueued) as queued:
        actions.sandbox_ensure(user_id=second.pk, broker="nats")
    assert queued.value.place.place == 1
    # The idle pooled Redis is stopped for the head of the queue, who then starts by itself.
    wait_for(
        lambda: Sandbox.objects.filter(user=second, broker="nats", state=State.READY).exists(),
        timeout=START_S,
        what="the waiting learner's sandbox ready",
    )
    assert Sandbox.objects.get(pk=pooled).state == State.STOPPED
    assert pool.sandbox_pool_fill() == []  # full again: the pool waits for room


def test_a_worker_killed_mid_start_leaks_no_slot(celery_worker, small_platform, units_cleanup):
    """The slot of a start whose worker was killed is free again once the record ends (reconcile), with no
    counter to repair: the next learner in the queue then starts."""
    url, workers = small_platform
    cookies = {name: session_cookie(User.objects.create_user(name, password=f"{name}-pass-123")) for name in "efg"}

    async def scenario(step: str) -> dict:
        async with opened(url, cookies["e"]) as we, opened(url, cookies["f"]) as wf, opened(url, cookies["g"]) as wg:
            e, f, g = Tab(we), Tab(wf), Tab(wg)
            for tab in (e, f, g):
                await tab.wait(lambda fr: fr["type"] == "hello", timeout=30)
            if step == "fill":
                await ensure(e, is_state("nats", "requested", "provisioning", "ready"))
                await ensure(f, is_state("nats", "requested", "provisioning", "ready"))
                return await ensure(g, is_queue(1))
            return await g.wait(is_state("nats", "ready"), timeout=START_S)

    worker = workers[0]
    # The worker is held still while the platform fills, so the kill below finds E's start under way
    # (caught while provisioning, seconds before ready) and not already finished.
    os.killpg(worker.process.pid, signal.SIGSTOP)
    run(scenario("fill"))
    os.killpg(worker.process.pid, signal.SIGCONT)
    wait_for(
        lambda: Sandbox.objects.filter(user__username="e", state=State.PROVISIONING).exists(),
        timeout=60,
        what="E's sandbox provisioning",
        interval=0.02,
    )
    worker.stop(signal.SIGKILL)
    replacement = celery_worker_start(name="admission-2", concurrency=1, env={"SANDBOX_CAPACITY_MB": str(CAPACITY_MB)})
    try:
        # What reconcile does to a start left behind (here at once instead of after its stale period).
        stuck = sandboxes_reconcile(stale_after_s=0)["stuck"]
        assert Sandbox.objects.get(user__username="e").pk in stuck
        # Its weight is free again with nothing to repair: the head of the queue starts.
        ready = run(scenario("wait"))
        assert ready["sandbox"]["state"] == "ready"
    finally:
        replacement.stop()
