"""The door "WebSocket floods": one learner's flood of the live socket neither fills the worker's queue
nor slows another learner, and the flooder is told what was refused.

Real uvicorn, Celery worker, Redis, NATS units and WebSocket clients. Tasks enqueued are counted by
the worker's own totals per task name plus what still waits in its Redis queue.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.contrib.auth.models import User
from django.utils import translation

from courseplatform.celery import app
from lessons.course_io import course_import
from sandboxes.models import Sandbox, State
from sandboxes.services import actions
from sandboxes.ws_limits import ALREADY_RUNNING, TOO_MANY_FRAMES, TOO_MANY_LIFECYCLE, TOO_MANY_RUNS
from tests.aio import run
from tests.courseplatform.test_realtime_roundtrip import session_cookie
from tests.security.flooder import FLOOD, FLOOD_DEADLINE_S, Tab, flood_in_process, opened

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

MINI = Path(__file__).resolve().parents[1] / "fixtures" / "course-mini"
B_RUNS = 12
LIFECYCLE_TASKS = ("sandboxes.provision", "sandboxes.stop", "sandboxes.reset")
RUN_FOR = 2  # seconds a run of the runs-at-once test lasts


def lifecycle_tasks_enqueued() -> int:
    """Lifecycle tasks the worker has started, holds or has yet to take from its queue, since it began."""
    inspect = app.control.inspect(timeout=5)
    stats, reserved = inspect.stats() or {}, inspect.reserved() or {}
    started = sum(worker["total"].get(name, 0) for worker in stats.values() for name in LIFECYCLE_TASKS)
    held = sum(1 for tasks in reserved.values() for task in tasks if task["name"] in LIFECYCLE_TASKS)
    queue = redis.Redis.from_url(settings.REDIS_URL)
    waiting = sum(1 for raw in queue.lrange("celery", 0, -1) if json.loads(raw)["headers"]["task"] in LIFECYCLE_TASKS)
    return started + held + waiting


def str_ru(text) -> str:
    with translation.override("ru"):
        return str(text)


@pytest.mark.alone  # the bystander's round trip is measured against 1 s: not beside the other worker's tests
def test_a_flood_of_10000_messages_enqueues_little_is_refused_clearly_and_leaves_another_learner_served(
    celery_worker, live_server_url, learner, units_cleanup
):
    course_import(directory=MINI)
    flooder = learner
    bystander = User.objects.create_user("bystander", password="bystander-pass-123")
    enqueued_before = lifecycle_tasks_enqueued()
    url = live_server_url
    flooder_cookie, bystander_cookie = session_cookie(flooder), session_cookie(bystander)

    processes = multiprocessing.get_context("spawn")
    b_done, flooding, results = processes.Event(), processes.Event(), processes.Queue()

    async def bystander() -> tuple[float, BaseException | None, list[float], list[float]]:
        round_trips: list[float] = []
        async with opened(url, bystander_cookie) as ws_b:
            b = Tab(ws_b)
            await b.wait(lambda f: f["type"] == "hello", timeout=10)
            await asyncio.to_thread(flooding.wait, 30)

            async def round_trip(run_id: str) -> float:
                mark, began = len(b.frames), time.monotonic()
                frame = {"type": "cell.run", "run": run_id, "course": "mini", "chapter": "first", "cell": "publish"}
                await ws_b.send(json.dumps({**frame, "code": "print('pong')"}))
                answer = await b.wait(
                    lambda f: f.get("run") == run_id and f["type"] in ("cell.exit", "cell.error"), timeout=30, start=mark
                )
                assert answer["type"] == "cell.exit" and answer["status"] == 0, answer
                return time.monotonic() - began

            try:
                asked = time.monotonic()
                await ws_b.send(json.dumps({"type": "sandbox.ensure", "broker": "nats"}))
                await b.wait(
                    lambda f: (
                        f["type"] == "sandbox.state" and f["sandbox"]["broker"] == "nats" and f["sandbox"]["state"] == "ready"
                    ),
                    timeout=120,
                )
                started_in = time.monotonic() - asked
                for n in range(B_RUNS):
                    round_trips.append(await round_trip(f"b{n}"))
            except (TimeoutError, AssertionError) as exc:
                return -1.0, exc, round_trips, []
            finally:
                b_done.set()
            # The flood's end: its result (read before joining: a process with a full queue never ends).
            flood_result.append(await asyncio.to_thread(results.get, True, FLOOD_DEADLINE_S + 60))
            # The quiet after: the same cell with nobody flooding, for comparison.
            quiet = [await round_trip(f"q{n}") for n in range(5)]
            return started_in, None, round_trips, quiet

    flood_result: list = []
    flood_process = processes.Process(target=flood_in_process, args=(url, flooder_cookie, b_done, flooding, results))
    began = time.monotonic()
    flood_process.start()
    try:
        started_in, b_failed, round_trips, quiet = run(bystander())
        sent, stalled, a_frames = flood_result[0] if flood_result else results.get(timeout=FLOOD_DEADLINE_S + 60)
    finally:
        flood_process.join(timeout=10)
        flood_process.kill()
    flood_ended = time.monotonic()
    enqueued = lifecycle_tasks_enqueued() - enqueued_before
    with translation.override("ru"):
        refusals = {str(text): 0 for text in (TOO_MANY_FRAMES, TOO_MANY_LIFECYCLE, TOO_MANY_RUNS, ALREADY_RUNNING)}
    for frame in a_frames:
        text = frame.get("message") or frame.get("reason")
        if text in refusals:
            refusals[text] += 1
    print(
        f"\nflood: {sent} frames handled from 2 tabs in {flood_ended - began:.1f} s (with the quiet runs); lifecycle tasks enqueued {enqueued};"
        f" refusals {sorted(refusals.values(), reverse=True)} of {len(a_frames)} frames back;"
        f" server stalled at {stalled}; bystander's sandbox ready in {started_in:.1f} s, failed: {b_failed!r};"
        f" round trips {[round(t, 3) for t in round_trips]} (quiet after: {[round(t, 3) for t in quiet]})"
    )
    # The worker's queue got a handful, not one task per request.
    assert enqueued < 100, enqueued
    # The flooder was told, in words, what was refused: too many frames, too many lifecycle requests.
    told = refusals[str_ru(TOO_MANY_FRAMES)] > 0 and refusals[str_ru(TOO_MANY_LIFECYCLE)] > 0
    assert told, refusals
    # Each run refused for the rate was answered by name, so its cell on a page would say why.
    runs_told = [f for f in a_frames if f["type"] == "cell.error" and f.get("message") == str_ru(TOO_MANY_FRAMES)]
    assert len(runs_told) > sent / 8, len(runs_told)
    # The bystander's cell answered within 1 s (median of the runs mid-flood).
    assert b_failed is None
    assert statistics.median(round_trips) < 1.0, round_trips
    # Every frame of the flood was handled (answered or done) while the bystander was served.
    assert sent >= FLOOD and not stalled, (sent, stalled)


@pytest.mark.django_db
def test_a_stop_while_stopping_is_a_no_op_and_an_ensure_while_starting_enqueues_nothing(
    learner, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as started:
        sandbox = actions.sandbox_ensure(user_id=learner.pk, broker="nats")
        again = actions.sandbox_ensure(user_id=learner.pk, broker="nats")
    assert again.pk == sandbox.pk and len(started) == 1
    Sandbox.objects.filter(pk=sandbox.pk).update(state=State.PROVISIONING)
    with django_capture_on_commit_callbacks() as stops:
        for _ in range(5):
            actions.sandbox_stop(user_id=learner.pk, broker="nats")
    assert len(stops) == 1
    assert Sandbox.objects.get(pk=sandbox.pk).state == State.STOPPING


def test_runs_at_once_are_limited_per_user_across_tabs_and_a_running_cell_is_not_started_twice(
    celery_worker, live_server_url, learner, units_cleanup
):
    course_import(directory=MINI)
    cookie = session_cookie(learner)
    url = live_server_url
    sleeper = f"print('started', flush=True); import time; time.sleep({RUN_FOR})"

    def run_frame(run_id: str, chapter: str, cell: str) -> str:
        return json.dumps(
            {"type": "cell.run", "run": run_id, "course": "mini", "chapter": chapter, "cell": cell, "code": sleeper}
        )

    def ended(run_id: str) -> Callable[[dict], bool]:
        return lambda f: f.get("run") == run_id and f["type"] in ("cell.exit", "cell.error")

    def answer_to(run_id: str) -> Callable[[dict], bool]:
        return lambda f: f.get("run") == run_id and f["type"] in ("cell.output", "cell.exit", "cell.error")

    async def scenario():
        async with opened(url, cookie) as ws1, opened(url, cookie) as ws2:
            one, two = Tab(ws1), Tab(ws2)
            # Three runs in flight over two tabs, sent before the sandbox exists: each waits for it to
            # start (seconds), holding its slot as it holds a task and, later, a socket to the agent.
            await ws1.send(run_frame("r1", "first", "publish"))
            await ws1.send(run_frame("r2", "first", "first-task-starter"))
            await ws1.send(json.dumps({"type": "mark.one"}))
            await ws2.send(run_frame("r3", "live", "on-nats"))
            await one.wait(lambda f: "mark.one" in f.get("message", ""), timeout=10)  # r1 and r2 are in flight
            # A fourth, from the second tab (after r3 on that tab), is one too many for the user.
            await ws2.send(run_frame("r4", "first", "publish"))
            fourth = await two.wait(answer_to("r4"), timeout=10)
            # The same cell again in the tab where it runs: refused, the running one goes on.
            await ws1.send(run_frame("r5", "first", "publish"))
            again = await one.wait(answer_to("r5"), timeout=10)
            exits = [await tab.wait(ended(r), timeout=120) for tab, r in ((one, "r1"), (one, "r2"), (two, "r3"))]
            # All three over, their slots are free: the fourth may start now.
            await ws2.send(run_frame("r6", "first", "publish"))
            sixth = await two.wait(answer_to("r6"), timeout=60)
            return fourth, again, exits, sixth

    fourth, again, exits, sixth = run(scenario())
    assert fourth == {**fourth, "type": "cell.error", "message": str_ru(TOO_MANY_RUNS).format(n=3)}, fourth
    assert again == {**again, "type": "cell.error", "message": str_ru(ALREADY_RUNNING)}, again
    # Each ran to its end: the refused second run of r1's cell did not touch r1.
    assert [f["type"] for f in exits] == ["cell.exit"] * 3 and all(f["status"] == 0 for f in exits), exits
    assert sixth["type"] == "cell.output" and "started" in sixth["text"], sixth


def test_ensures_of_a_running_sandbox_are_free_and_other_lifecycle_requests_are_limited_per_minute(live_server_url, learner):
    # A page asks for its chapter's brokers on every load: those must not use up the minute's allowance.
    Sandbox.objects.create(user=learner, broker="nats", state=State.READY, stage="ready", unit="no-unit")
    cookie = session_cookie(learner)

    async def scenario() -> list[dict]:
        async with opened(live_server_url, cookie) as ws:
            tab = Tab(ws)
            await tab.wait(lambda f: f["type"] == "hello", timeout=10)
            for _ in range(25):
                await ws.send(json.dumps({"type": "sandbox.ensure", "broker": "nats"}))
            # A broker that does not exist: each request counts, and is answered, refused past the allowance.
            for _ in range(25):
                await ws.send(json.dumps({"type": "sandbox.ensure", "broker": "no-such-broker"}))
            await ws.send(json.dumps({"type": "the.end"}))
            await tab.wait(lambda f: "the.end" in f.get("message", ""), timeout=20)
            return tab.frames

    frames = run(scenario())
    states = [f for f in frames if f["type"] == "sandbox.state" and f["sandbox"]["broker"] == "nats"]
    refused = [f for f in frames if f.get("message") == str_ru(TOO_MANY_LIFECYCLE)]
    assert len(states) == 25
    assert len(refused) == 25 - 20, [f.get("message") for f in frames if f["type"] == "error"]
