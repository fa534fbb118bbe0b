"""Faults, with nothing lost: each part of the platform killed with SIGKILL while a learner works.

One learner keeps a page open (a real WebSocket to the real uvicorn, reconnecting with backoff the
way static/js/live.js does), has a ready NATS sandbox, has marked a chapter read and saved a draft,
and streams messages from a producer cell. Then, in turn, the Celery worker, Redis, the sandbox's
agent, its broker and the web server are killed with SIGKILL and restarted the way the supervisor
(Procfile) would. After each fault, within 60 s:

- the sandbox is ready again (its agent answers) or failed/stopped with a message that says why;
- no unit runs without an active record, and no ready record lacks its unit;
- the chapter read and the draft saved before the fault are still there;
- the page's socket, reconnected if it dropped, shows the sandbox's state as the database has it
  (Redis' death drops no socket: the page is told live updates are paused, then resumed);
- the producer interrupted by the fault is reported as ended (an exit or an error with a message),
  never left "running".

The run's own beat (``celery beat``, as in the Procfile) reconciles every few seconds here; in
production every SANDBOX_RECONCILE_EVERY_S (30 s by default).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
import requests
from django.contrib.auth.models import User
from django.utils import translation

from courseplatform.celery import app
from lessons.course_io import course_import
from lessons.models import CellDraft, ChapterRead, Course
from sandboxes import agent_client
from sandboxes.backends import get_backend
from sandboxes.models import ACTIVE_STATES, Sandbox, State
from sandboxes.ws_limits import LIMITS_UNAVAILABLE
from tests.aio import run
from tests.courseplatform.test_realtime_roundtrip import session_cookie
from tests.services import PYTHON, REDIS_PORT, RUN_DIR, Service, port_open, redis_start, wait_for

# Not transactional on purpose: the stage's records are made once for the module (outside any test's
# transaction, so the worker and the web server see them), and a test itself writes nothing to roll back.
pytestmark = [pytest.mark.integration, pytest.mark.django_db]

MINI = Path(__file__).resolve().parents[1] / "fixtures" / "course-mini"
CONVERGE_S = 60
RECONCILE_EVERY_S = 3
DRAFT = "print('my own draft, kept through every fault')\n"
#: A producer that streams for ~10 s: the fault lands in the middle of it.
PRODUCER = """
import asyncio, os, nats
async def main():
    nc = await nats.connect(os.environ["NATS_URL"], allow_reconnect=False)
    for i in range(100):
        await nc.publish("faults.stream", str(i).encode())
        await nc.flush(timeout=2)
        print("sent", i, flush=True)
        await asyncio.sleep(0.1)
    await nc.close()
asyncio.run(main())
"""
#: Seconds from the restart (or the kill, for parts the platform itself replaces) to a converged state.
CONVERGED_AFTER: dict[str, float] = {}


class Page:
    """A chapter page's live socket in a thread of its own: reconnects with backoff, keeps every frame
    and the latest state of each sandbox (from ``hello`` and ``sandbox.state``), as live.js does."""

    def __init__(self, url: str, cookie: str) -> None:
        self.url, self.cookie = url, cookie
        self.frames: list[dict] = []
        self.sandboxes: dict[str, dict] = {}
        self.connections = 0
        self.closed = threading.Event()
        self.loop = asyncio.new_event_loop()
        self.ws = None
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._live(),), daemon=True)
        self.thread.start()

    async def _live(self) -> None:
        from websockets.asyncio.client import connect

        backoff = [0.5, 1, 2]
        attempt = 0
        address = self.url.replace("http://", "ws://") + "/ws/live/"
        while not self.closed.is_set():
            try:
                async with connect(
                    address, origin=self.url, additional_headers={"Cookie": f"sessionid={self.cookie}"}, max_size=None
                ) as ws:
                    self.ws, attempt = ws, 0
                    self.connections += 1
                    async for raw in ws:
                        self._take(json.loads(raw))
            except (OSError, Exception):  # refused while the server is down, or dropped by the kill
                pass
            self.ws = None
            self.frames.append({"type": "connection.lost"})
            await asyncio.sleep(backoff[min(attempt, len(backoff) - 1)])
            attempt += 1

    def _take(self, frame: dict) -> None:
        if frame.get("type") == "hello":
            self.sandboxes = {s["broker"]: s for s in frame.get("sandboxes", [])}
        elif frame.get("type") == "sandbox.state":
            self.sandboxes[frame["sandbox"]["broker"]] = frame["sandbox"]
        self.frames.append(frame)

    def send(self, frame: dict) -> None:
        wait_for(lambda: self.ws is not None, timeout=CONVERGE_S, what="the page's socket open")
        asyncio.run_coroutine_threadsafe(self.ws.send(json.dumps(frame)), self.loop).result(timeout=10)

    def wait(self, found: Callable[[dict], bool], *, timeout: float, start: int = 0, what: str) -> dict:
        hit: list[dict] = []

        def seen() -> bool:
            hit.extend(f for f in self.frames[start:] if found(f))
            return bool(hit)

        try:
            wait_for(seen, timeout=timeout, what=what, interval=0.05)
        except TimeoutError as exc:
            tail = [(f.get("type"), f.get("run"), str(f.get("message", ""))[:60]) for f in self.frames[start:]][-15:]
            raise TimeoutError(f"{exc}; frames since: {tail}") from None
        return hit[0]

    def close(self) -> None:
        self.closed.set()
        if self.ws is not None:
            asyncio.run_coroutine_threadsafe(self.ws.close(), self.loop)
        self.thread.join(timeout=10)


class Stage:
    """What the fault cases share: the learner, their page, the services to kill, and the beat."""

    def __init__(self, learner: User, page: Page, worker: Service, web: Service, beat: Service) -> None:
        self.learner, self.page, self.worker, self.web, self.beat = learner, page, worker, web, beat
        self.redis: Service | None = None
        self.runs = 0
        self.run_began = 0  # the page's frame count when the latest producer started

    def sandbox(self) -> Sandbox:
        return Sandbox.objects.filter(user=self.learner, broker="nats").order_by("-pk").first()

    def ready(self) -> Sandbox:
        """The learner's NATS sandbox, asked for from the page as the chapter does, once it is ready."""
        mark = len(self.page.frames)
        self.page.send({"type": "sandbox.ensure", "broker": "nats"})
        self.page.wait(
            lambda f: f.get("type") == "sandbox.state" and f["sandbox"].get("state") in ("ready", "failed"),
            timeout=120,
            start=mark,
            what="the sandbox ready",
        )
        sandbox = self.sandbox()
        assert sandbox.state == State.READY, sandbox.error
        return sandbox

    def stream(self) -> str:
        """Start the producer from the page and return its run id once messages flow."""
        self.runs += 1
        run_id = f"producer-{self.runs}"
        mark = self.run_began = len(self.page.frames)
        frame = {"type": "cell.run", "run": run_id, "course": "mini", "chapter": "first", "cell": "publish"}
        self.page.send({**frame, "code": PRODUCER})
        self.page.wait(
            lambda f: f.get("run") == run_id and "sent 3" in f.get("text", ""),
            timeout=60,
            start=mark,
            what="the producer streaming",
        )
        return run_id


def kill(process: psutil.Process | int) -> None:
    pid = process.pid if isinstance(process, psutil.Process) else process
    os.kill(pid, signal.SIGKILL)


def restart(service: Service) -> None:
    """What the supervisor does for a dead process: start the same command again."""
    service.process.wait(timeout=10)
    service.restart()  # the same address: the session's fixtures hand it to later modules


def worker_answers() -> bool:
    """A worker answers a ping; False while this process's Redis connections still belong to a dead Redis."""
    import redis

    try:
        return any(app.control.ping(timeout=0.5))
    except (redis.exceptions.ConnectionError, OSError):
        return False


def beat_start() -> Service:
    return Service(
        "beat",
        [PYTHON, "-m", "celery", "-A", "courseplatform", "beat", "-l", "INFO", "-s", str(RUN_DIR / "celerybeat-schedule")],
        env={"SANDBOX_RECONCILE_EVERY_S": str(RECONCILE_EVERY_S)},
    )


@pytest.fixture(scope="module")
def stage(request, celery_worker, asgi_server, django_db_blocker):
    with django_db_blocker.unblock():
        course_import(directory=MINI)
        learner = User.objects.create_user("faulty", password="faulty-pass-123")
        # Progress and a draft, saved through the pages' own endpoints before anything breaks.
        http = requests.Session()
        http.cookies.set("sessionid", session_cookie(learner))
        chapter_url = asgi_server.url + "/courses/mini/first/"
        assert http.get(chapter_url, timeout=30).status_code == 200
        headers = {"X-CSRFToken": http.cookies["csrftoken"], "Referer": chapter_url, "Accept": "application/json"}
        assert http.post(chapter_url + "read", data={"read": "1"}, headers=headers, timeout=30).json() == {"read": True}
        saved = http.post(chapter_url + "cells/publish/draft", data=json.dumps({"code": DRAFT}), headers=headers, timeout=30)
        assert saved.json() == {"saved": True}
        beat = beat_start()
        page = Page(asgi_server.url, session_cookie(learner))
        shared = Stage(learner, page, celery_worker, asgi_server, beat)
        try:
            yield shared
        finally:
            page.close()
            beat.stop()
            backend = get_backend()
            for name in backend.list_units():
                backend.stop(name)
            Sandbox.objects.all().delete()
            CellDraft.objects.all().delete()
            ChapterRead.objects.all().delete()
            User.objects.filter(pk=learner.pk).delete()
            Course.objects.filter(slug="mini").delete()  # later modules expect an empty catalogue
            # A worker that lived through Redis' death has its reconnection errors in its console, which
            # later modules read: they get a worker as fresh as the one this module found.
            celery_worker.stop()
            restart(celery_worker)
            wait_for(worker_answers, timeout=60, what="the worker back", interval=0.2)
            if shared.redis is not None:
                # The session's Redis now: later modules need it, so it stops when the session does.
                request.config.add_cleanup(shared.redis.stop)


def converged(stage: Stage) -> str | None:
    """None once the platform agrees with itself and with the page; else what still disagrees."""
    sandbox = stage.sandbox()
    if sandbox.state == State.READY:
        try:
            if not run(agent_client.status(get_backend().agent_address(sandbox.unit)))["ready"]:
                return "ready in the database, but its agent says the broker is not"
        except agent_client.AgentUnavailable:
            return "ready in the database, but its agent does not answer"
    elif sandbox.state in (State.FAILED, State.STOPPED):
        if not sandbox.error:
            return f"{sandbox.state} without a word of why"
    else:
        return f"still {sandbox.state}"
    backend = get_backend()
    active = {s.unit: s for s in Sandbox.objects.filter(state__in=ACTIVE_STATES)}
    orphans = sorted(set(backend.list_units()) - set(active))
    if orphans:
        return f"units without an active record: {orphans}"
    lost = [name for name, s in active.items() if s.state == State.READY and backend.poll(name) is not None]
    if lost:
        return f"ready records without their unit: {lost}"
    shown = stage.page.sandboxes.get("nats", {})
    if stage.page.ws is None or shown.get("id") != sandbox.pk or shown.get("state") != sandbox.state:
        return f"the page shows {shown.get('id')}:{shown.get('state')}, the database {sandbox.pk}:{sandbox.state}"
    return None


def assert_converges(stage: Stage, fault: str, since: float, states: tuple[str, ...] = tuple(State)) -> None:
    """Within CONVERGE_S the platform agrees with itself and the page, with the sandbox in one of ``states``
    (after a fault that takes the sandbox's insides, a passing "ready" is only the moment before it is noticed)."""
    last: list[str | None] = [None]

    def agreed() -> bool:
        last[0] = converged(stage)
        if last[0] is None and stage.sandbox().state not in states:
            last[0] = f"{stage.sandbox().state}, expected one of {states}"
        return last[0] is None

    try:
        wait_for(agreed, timeout=CONVERGE_S, what=f"convergence after the {fault} fault", interval=0.25)
    except TimeoutError:
        pytest.fail(f"not converged {CONVERGE_S} s after the {fault} fault: {last[0]}")
    CONVERGED_AFTER[fault] = round(time.monotonic() - since, 1)
    print(f"\n{fault}: converged {CONVERGED_AFTER[fault]} s after the restart")


def assert_work_kept(stage: Stage) -> None:
    assert ChapterRead.objects.filter(user=stage.learner, chapter_slug="first").exists(), "the chapter read was lost"
    draft = CellDraft.objects.get(user=stage.learner, chapter_slug="first", cell_key="publish")
    assert draft.code == DRAFT, "the draft was changed"


def run_end(stage: Stage, run_id: str, what: str) -> dict:
    """The producer's last word: an exit, an error with a message, or the page's socket dropping under
    it (on ``connection.lost`` static/js/cells.js shows every run in flight as lost); never silence."""
    return stage.page.wait(
        lambda f: (f.get("run") == run_id and f.get("type") in ("cell.exit", "cell.error")) or f["type"] == "connection.lost",
        timeout=CONVERGE_S,
        start=stage.run_began,
        what=f"the producer's end after the {what} fault",
    )


def test_a_worker_killed_while_it_provisions_is_restarted_and_the_sandbox_converges(stage):
    # The page asks for the sandbox; the worker dies while the unit's broker boots, its task in hand.
    stage.page.send({"type": "sandbox.ensure", "broker": "nats"})
    wait_for(lambda: stage.sandbox() is not None and stage.sandbox().unit, timeout=60, what="provisioning begun")
    unit = stage.sandbox().unit
    wait_for(lambda: get_backend().processes(unit), timeout=60, what="the unit's processes")
    os.killpg(stage.worker.process.pid, signal.SIGKILL)
    restart(stage.worker)
    since = time.monotonic()
    wait_for(worker_answers, timeout=CONVERGE_S, what="the worker back", interval=0.2)
    assert_converges(stage, "worker", since)
    print(f"worker: the sandbox is {stage.sandbox().state} {stage.sandbox().error!r}")
    assert_work_kept(stage)
    # Whatever it converged to, the learner gets a working sandbox and the producer runs to its end.
    stage.ready()
    run_id = stage.stream()
    end = run_end(stage, run_id, "worker")
    assert end["type"] == "cell.exit" and end["status"] == 0, end


def test_a_killed_redis_is_restarted_and_the_page_keeps_its_socket_and_its_run(stage):
    sandbox = stage.ready()
    run_id = stage.stream()
    connections = stage.page.connections
    # Redis names itself by its address once it runs: this run's is the one on this run's port.
    (redis,) = [p for p in psutil.process_iter(["cmdline"]) if f":{REDIS_PORT}" in " ".join(p.info["cmdline"] or [])]
    kill(redis)
    redis.wait(timeout=10)
    try:
        # The channel layer notices at once (its blocking receive breaks); the page is told on its own socket.
        told = stage.page.wait(
            lambda f: f["type"] in ("live.paused", "connection.lost"),
            timeout=CONVERGE_S,
            start=stage.run_began,
            what="the page told",
        )
        if told["type"] == "live.paused":
            # What needs Redis meanwhile (a check takes a run slot there) is refused in words; the socket stays.
            mark = len(stage.page.frames)
            stage.page.send({"type": "exercise.check", "course": "mini", "chapter": "first", "exercise": "first-task"})
            refused = stage.page.wait(
                lambda f: f["type"] in ("exercise.result", "connection.lost"),
                timeout=CONVERGE_S,
                start=mark,
                what="the run asked for while Redis is away answered",
            )
    finally:
        resumed_from = len(stage.page.frames)
        stage.redis = redis_start()  # the run's Redis keeps nothing on disk, as configured: it comes back empty
    assert told["type"] == "live.paused", "the page's socket dropped with Redis"
    with translation.override("ru"):
        assert refused == {
            "type": "exercise.result",
            "exercise": "first-task",
            "passed": False,
            "reason": str(LIMITS_UNAVAILABLE),
        }
    wait_for(lambda: port_open(REDIS_PORT), timeout=10, what="Redis back")
    since = time.monotonic()
    # Back in its group: a fresh hello, then live.resumed.
    stage.page.wait(
        lambda f: f["type"] in ("live.resumed", "connection.lost"),
        timeout=CONVERGE_S,
        start=resumed_from,
        what="the page resumed",
    )
    assert_converges(stage, "Redis", since, (State.READY,))
    # Cell output comes straight from the agent: the producer, started before the fault, runs to its end.
    end = run_end(stage, run_id, "Redis")
    print(f"\nRedis: the producer's end: {end}")
    assert end["type"] == "cell.exit" and end["status"] == 0, end
    # A broadcast to the user's group (the consumer joined it before Redis died, and Redis forgot it)
    # reaches the same socket: sandbox.extend is answered only through the group.
    mark = len(stage.page.frames)
    stage.page.send({"type": "sandbox.extend", "broker": "nats"})
    stage.page.wait(
        lambda f: (
            (f["type"] == "sandbox.state" and f["sandbox"]["id"] == sandbox.pk) or f["type"] in ("error", "connection.lost")
        ),
        timeout=CONVERGE_S,
        start=mark,
        what="a state broadcast after the restart",
    )
    since_run = stage.page.frames[stage.run_began :]
    notices = [f["type"] for f in since_run if f["type"] in ("live.paused", "live.resumed", "connection.lost", "error")]
    assert notices == ["live.paused", "live.resumed"], notices
    assert stage.page.connections == connections, "the page's socket was opened again"
    assert stage.sandbox().pk == sandbox.pk and stage.sandbox().state == State.READY
    assert_work_kept(stage)


def test_a_killed_agent_stops_its_sandbox_with_a_reason_the_page_hears(stage):
    sandbox = stage.ready()
    run_id = stage.stream()
    backend = get_backend()
    kill(backend._agent_pid(sandbox.unit))
    since = time.monotonic()
    end = run_end(stage, run_id, "agent")
    # Nothing is left to run the cell: it is reported lost, with words, not left running.
    assert end["type"] == "cell.error" and end["message"], end
    assert_converges(stage, "agent", since, (State.STOPPED, State.FAILED))
    assert_work_kept(stage)


def test_a_killed_broker_fails_its_sandbox_with_a_reason_the_page_hears(stage):
    sandbox = stage.ready()
    run_id = stage.stream()
    backend = get_backend()
    (broker,) = [p for p in map(psutil.Process, backend.processes(sandbox.unit)) if "nats-server" in " ".join(p.cmdline())]
    kill(broker)
    since = time.monotonic()
    end = run_end(stage, run_id, "broker")
    # The producer's own client says the connection is gone: the run ends with a failure, not silence.
    assert end["type"] == "cell.error" or end["status"] != 0, end
    assert_converges(stage, "broker", since, (State.STOPPED, State.FAILED))
    assert_work_kept(stage)


def test_a_killed_web_server_is_restarted_and_the_page_reconnects_to_the_same_sandbox(stage):
    sandbox = stage.ready()
    run_id = stage.stream()
    connections = stage.page.connections
    os.killpg(stage.web.process.pid, signal.SIGKILL)
    restart(stage.web)
    since = time.monotonic()
    wait_for(lambda: stage.page.connections > connections, timeout=CONVERGE_S, what="the page reconnected")
    assert_converges(stage, "web", since, (State.READY,))
    assert run_end(stage, run_id, "web")["type"] == "connection.lost"  # the page shows the run lost
    assert stage.sandbox().pk == sandbox.pk and stage.sandbox().state == State.READY
    assert_work_kept(stage)
    # The sandbox still serves: the producer runs to its end on the new connection.
    run_id = stage.stream()
    end = run_end(stage, run_id, "web")
    assert end["type"] == "cell.exit" and end["status"] == 0, end
    print(f"\nconverged after (s): {CONVERGED_AFTER}")
