"""The live page's WebSocket end to end: cells run in the learner's own broker, their output
streams back, and the messages they produce and consume arrive as events, for every broker."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.db import connections
from django.test import Client
from websockets.asyncio.client import connect

from lessons.course_io import course_import
from lessons.models import ExerciseAttempt
from sandboxes.live_frames import BAD_RUN_ID, UNKNOWN_TYPE
from tests.aio import run

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

MINI = Path(__file__).resolve().parents[1] / "fixtures" / "course-mini"

PRODUCER_CONSUMER = {
    "kafka": (
        """
import json, os
from kafka import KafkaProducer, KafkaConsumer
p = KafkaProducer(bootstrap_servers=os.environ["BOOTSTRAP_SERVERS"])
for i in range(3):
    p.send("orders", key=f"o-{i}".encode(), value=json.dumps({"n": i}).encode(), headers=[("src", b"test")])
p.flush(); p.close()
c = KafkaConsumer("orders", bootstrap_servers=os.environ["BOOTSTRAP_SERVERS"], group_id="billing",
                  auto_offset_reset="earliest", consumer_timeout_ms=8000)
got = [m for _, m in zip(range(3), c)]
c.commit(); c.close()
print("consumed", len(got))
""",
        "orders",
    ),
    "rabbitmq": (
        """
import os, pika
conn = pika.BlockingConnection(pika.URLParameters(os.environ["AMQP_URL"]))
ch = conn.channel()
ch.queue_declare("orders")
for i in range(3):
    ch.basic_publish("", "orders", f'{{"n": {i}}}'.encode(), pika.BasicProperties(headers={"src": "test"}))
got = 0
for method, props, body in ch.consume("orders", inactivity_timeout=3):
    if method is None: break
    ch.basic_ack(method.delivery_tag); got += 1
    if got == 3: break
conn.close()
print("consumed", got)
""",
        "orders",
    ),
    "nats": (
        """
import asyncio, os, nats
async def main():
    nc = await nats.connect(os.environ["NATS_URL"])
    js = nc.jetstream()
    await js.add_stream(name="ORDERS", subjects=["orders"])
    for i in range(3):
        await js.publish("orders", f'{{"n": {i}}}'.encode(), headers={"src": "test"})
    sub = await js.pull_subscribe("orders", durable="billing")
    msgs = await sub.fetch(3, timeout=5)
    for m in msgs: await m.ack()
    print("consumed", len(msgs))
    await asyncio.sleep(1)
    await nc.close()
asyncio.run(main())
""",
        "orders",
    ),
    "activemq": (
        """
import os, time, stomp
got = []
class L(stomp.ConnectionListener):
    def on_message(self, frame): got.append(frame.body)
c = stomp.Connection([(os.environ["STOMP_HOST"], int(os.environ["STOMP_PORT"]))])
c.set_listener("", L())
c.connect(os.environ["STOMP_USER"], os.environ["STOMP_PASSWORD"], wait=True)
c.subscribe("/queue/orders", id=1, ack="auto")
for i in range(3):
    c.send("/queue/orders", f'{{"n": {i}}}', headers={"src": "test"})
deadline = time.time() + 10
while len(got) < 3 and time.time() < deadline: time.sleep(0.05)
time.sleep(1)
c.disconnect()
print("consumed", len(got))
""",
        "orders",
    ),
}


def cookie_of(user: User) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


class Live:
    """A logged-in page's WebSocket, collecting every frame it receives."""

    def __init__(self, url: str, cookie: str) -> None:
        self.url = url.replace("http://", "ws://") + "/ws/live/"
        self.origin = url
        self.cookie = cookie

    async def session(
        self, send: list[dict], until, timeout: float, frames: list[dict] | None = None, opened: asyncio.Event | None = None
    ) -> list[dict]:
        """Send ``send``, then collect frames (into ``frames`` if given) until ``until(frames)`` or the timeout."""
        frames = [] if frames is None else frames
        async with connect(
            self.url, origin=self.origin, additional_headers={"Cookie": f"sessionid={self.cookie}"}, max_size=None
        ) as ws:
            if opened is not None:
                opened.set()
            for message in send:
                await ws.send(json.dumps(message))
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and not until(frames):
                try:
                    frames.append(json.loads(await asyncio.wait_for(ws.recv(), timeout=deadline - time.monotonic())))
                except TimeoutError:
                    break
        return frames


def events_of(frames: list[dict], direction: str) -> list[dict]:
    return [e for f in frames if f["type"] == "sandbox.event" for e in f["events"] if e["direction"] == direction]


def exited(run_id: str):
    def done(frames: list[dict]) -> bool:
        return any(f["type"] in ("cell.exit", "cell.error") and f.get("run") == run_id for f in frames)

    return done


@pytest.mark.parametrize("broker", ["nats", "rabbitmq", "activemq", "kafka"])
def test_a_producer_and_consumer_cell_stream_output_and_events_to_their_owner_only(
    celery_worker, live_server_url, learner, units_cleanup, broker
):
    course_import(directory=MINI)
    other = User.objects.create_user("onlooker", password="x-pass-12345")
    mine, theirs = Live(live_server_url, cookie_of(learner)), Live(live_server_url, cookie_of(other))
    code, destination = PRODUCER_CONSUMER[broker]
    run_id = f"run-{broker}"

    def complete(frames: list[dict]) -> bool:
        return exited(run_id)(frames) and len(events_of(frames, "consumed")) >= 3 and len(events_of(frames, "produced")) >= 3

    async def scenario():
        # The onlooker is connected before the learner starts and listens for as long as the learner's
        # whole run takes (provisioning included), and a moment after.
        seen: list[dict] = []
        listening = asyncio.Event()
        watching = asyncio.create_task(theirs.session([], lambda frames: False, timeout=600, frames=seen, opened=listening))
        await asyncio.wait_for(listening.wait(), timeout=30)
        frames = await mine.session(
            [{"type": "cell.run", "run": run_id, "course": "mini", "chapter": "live", "cell": f"on-{broker}", "code": code}],
            complete,
            timeout=150,
        )
        await asyncio.sleep(2)
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
        return frames, seen

    frames, onlooker = run(scenario())
    exit_frame = next(f for f in frames if f.get("run") == run_id and f["type"] in ("cell.exit", "cell.error"))
    output = "".join(f["text"] for f in frames if f["type"] == "cell.output")
    assert exit_frame == {**exit_frame, "type": "cell.exit", "status": 0}, output
    assert "consumed 3" in output
    states = [f["sandbox"]["stage"] for f in frames if f["type"] == "sandbox.state"]
    assert states[-1] == "ready" and len(states) >= 2  # provisioning was shown as it happened
    produced = [
        e
        for e in events_of(frames, "produced")
        if destination in e["destination"] or e["detail"].get("routing_key") == destination
    ]
    consumed = events_of(frames, "consumed")
    assert len(produced) >= 3 and len(consumed) >= 3, (produced, consumed)
    first = produced[0]
    assert first["broker"] == broker
    assert first["value"]["encoding"] == "json" and json.loads(first["value"]["text"]) == {"n": 0}
    assert first["size"] == len(b'{"n": 0}')
    assert first["headers"].get("src") == "test"
    if broker == "kafka":
        assert first["key"] == "o-0" and first["partition"] == 0 and first["offset"] == 0
        assert {e["detail"].get("group") for e in consumed} == {"billing"}
    assert [f for f in onlooker if f["type"] in ("sandbox.event", "cell.output", "sandbox.state")] == []


def test_a_runaway_cell_is_stopped_within_its_limit_over_the_websocket(celery_worker, live_server_url, learner, units_cleanup):
    course_import(directory=MINI)
    live = Live(live_server_url, cookie_of(learner))
    # The cell's own limit is 30 s (default); interrupting stops it at once.
    frames = run(
        live.session(
            [
                {
                    "type": "cell.run",
                    "run": "spin",
                    "course": "mini",
                    "chapter": "live",
                    "cell": "on-nats",
                    "code": "while True: pass",
                }
            ],
            lambda fr: any(f["type"] == "sandbox.state" and f["sandbox"]["state"] == "ready" for f in fr),
            timeout=60,
        )
    )
    assert any(f["type"] == "sandbox.state" for f in frames)

    async def interrupted():
        frames: list[dict] = []
        url = live.url
        async with connect(url, origin=live.origin, additional_headers={"Cookie": f"sessionid={live.cookie}"}) as ws:
            await ws.send(
                json.dumps(
                    {
                        "type": "cell.run",
                        "run": "spin2",
                        "course": "mini",
                        "chapter": "live",
                        "cell": "on-nats",
                        "code": "while True: pass",
                    }
                )
            )
            await asyncio.sleep(1.5)
            started = time.monotonic()
            await ws.send(json.dumps({"type": "cell.interrupt", "run": "spin2"}))
            while not exited("spin2")(frames):
                frames.append(json.loads(await asyncio.wait_for(ws.recv(), timeout=15)))
            return frames, time.monotonic() - started

    frames, took = run(interrupted())
    exit_frame = next(f for f in frames if f.get("run") == "spin2" and f["type"] == "cell.exit")
    assert exit_frame["reason"] == "interrupted"
    assert took < 5


def test_an_exercise_check_reports_the_reason_and_is_recorded(celery_worker, live_server_url, learner, units_cleanup):
    course_import(directory=MINI)
    live = Live(live_server_url, cookie_of(learner))
    frames = run(
        live.session(
            [{"type": "exercise.check", "course": "mini", "chapter": "live", "exercise": "live-task"}],
            lambda fr: any(f["type"] == "exercise.result" for f in fr),
            timeout=150,
        )
    )
    result = next(f for f in frames if f["type"] == "exercise.result")
    assert result == {"type": "exercise.result", "exercise": "live-task", "passed": False, "reason": "Флаг не установлен"}
    attempt = ExerciseAttempt.objects.get(user=learner)
    assert (attempt.passed, attempt.reason) == (False, "Флаг не установлен")


def test_a_cell_of_another_chapter_or_a_bad_message_is_refused_cleanly(live_server_url, learner):
    course_import(directory=MINI)
    live = Live(live_server_url, cookie_of(learner))
    frames = run(
        live.session(
            [
                {"type": "cell.run", "run": "x1", "course": "mini", "chapter": "live", "cell": "nope"},
                {"type": "cell.run", "run": "bad id with spaces", "course": "mini", "chapter": "live", "cell": "on-nats"},
                {"type": "launch.missiles"},
            ],
            lambda fr: len([f for f in fr if f["type"] in ("cell.error", "error")]) >= 3,
            timeout=10,
        )
    )
    kinds = [(f["type"], f.get("message", "")) for f in frames if f["type"] in ("cell.error", "error")]
    assert ("cell.error", "Такой ячейки нет в этой главе.") in kinds
    assert ("error", BAD_RUN_ID) in kinds
    assert ("error", UNKNOWN_TYPE.format(type="'launch.missiles'")) in kinds


def test_a_page_in_english_hears_the_server_in_english(live_server_url, learner):
    """The consumer speaks the language cookie the pages use: errors and verdicts come in English."""
    course_import(directory=MINI)
    live = Live(live_server_url, cookie_of(learner) + "; django_language=en")
    frames = run(
        live.session(
            [
                {"type": "cell.run", "run": "x1", "course": "mini", "chapter": "live", "cell": "nope"},
                {"type": "exercise.check", "course": "mini", "chapter": "live", "exercise": "nope"},
                {"type": "sandbox.ensure", "broker": "mqtt"},
                {"type": "launch.missiles"},
            ],
            lambda fr: len([f for f in fr if f["type"] in ("cell.error", "error", "exercise.result")]) >= 4,
            timeout=10,
        )
    )
    said = [f.get("message") or f.get("reason") for f in frames if f["type"] in ("cell.error", "error", "exercise.result")]
    assert said == [
        "There is no such cell in this chapter.",
        "There is no such exercise in this chapter.",
        "Unknown broker: mqtt.",
        "Unknown message type: 'launch.missiles'.",
    ]


def test_sandbox_states_reach_each_page_in_its_own_language(live_server_url, learner):
    """A worker broadcasts a state in source text; each page's consumer translates its labels and error."""
    from sandboxes.models import Sandbox, State
    from sandboxes.services.lifecycle import sandbox_transition
    from sandboxes.services.provisioning import TOO_SLOW

    sandbox = Sandbox.objects.create(user=learner, broker="nats", state=State.PROVISIONING, stage="waiting")
    session = cookie_of(learner)

    def fail() -> None:
        """The worker's side, in a thread of its own: the transition broadcasts over the channel layer."""
        try:
            sandbox_transition(sandbox, State.FAILED, error=TOO_SLOW)
        finally:
            connections.close_all()

    async def page(language: str) -> list[dict]:
        headers = {"Cookie": f"sessionid={session}; django_language={language}"}
        url = live_server_url.replace("http://", "ws://") + "/ws/live/"
        async with connect(url, origin=live_server_url, additional_headers=headers) as ws:
            frames = [json.loads(await asyncio.wait_for(ws.recv(), timeout=10))]
            await asyncio.to_thread(fail)
            frames.append(json.loads(await asyncio.wait_for(ws.recv(), timeout=10)))
            return frames

    hello, failed = run(page("en"))
    assert (hello["sandboxes"][0]["state_label"], hello["sandboxes"][0]["stage_label"]) == ("starting", "waiting for the broker")
    assert failed["type"] == "sandbox.state"
    assert (failed["sandbox"]["state_label"], failed["sandbox"]["error"]) == ("failed", "The broker did not start in time.")
    Sandbox.objects.filter(pk=sandbox.pk).update(state=State.PROVISIONING, stage="waiting", error="")
    sandbox.refresh_from_db()
    _hello, failed = run(page("ru"))
    assert (failed["sandbox"]["state_label"], failed["sandbox"]["error"]) == (
        "ошибка",
        "Брокер не запустился за отведённое время.",
    )


def test_an_instructor_runs_a_draft_cell_but_a_learner_cannot(celery_worker, live_server_url, learner, instructor, units_cleanup):
    course_import(directory=MINI).instructors.add(instructor)  # drafts are its own instructors'
    draft = {
        "type": "cell.run",
        "run": "d1",
        "draft": True,
        "course": "mini",
        "broker": "nats",
        "timeout": 20,
        "code": "import os; print(os.environ['NATS_URL'])",
    }
    teacher = run(Live(live_server_url, cookie_of(instructor)).session([draft], exited("d1"), timeout=120))
    assert next(f for f in teacher if f.get("run") == "d1" and f["type"] == "cell.exit")["status"] == 0
    assert "nats://localhost:4222" in "".join(f["text"] for f in teacher if f["type"] == "cell.output")
    pupil = run(Live(live_server_url, cookie_of(learner)).session([draft], exited("d1"), timeout=20))
    assert [f["message"] for f in pupil if f["type"] == "cell.error"] == [
        "Черновики глав курса запускают только его преподаватели."
    ]


def test_an_exercise_is_proven_on_a_fresh_broker_by_the_worker(celery_worker, instructor, units_cleanup):
    from django.conf import settings

    from lessons import exercises
    from lessons.models import Cell

    course_import(directory=Path(settings.COURSE_DIRS[0]))
    cells = {c.role: c for c in Cell.objects.filter(exercise__key="sensors-stream", role__in=("check", "solution"))}
    job = exercises.exercise_verify_enqueue(
        user_id=instructor.pk,
        broker="nats",
        check=(cells["check"].code, cells["check"].timeout),
        solution=(cells["solution"].code, cells["solution"].timeout),
    )
    deadline = time.monotonic() + 120
    while (answer := exercises.exercise_verify_result(job=job))["state"] == "pending" and time.monotonic() < deadline:
        time.sleep(0.5)
    report = answer["report"]
    assert (report["empty_fails"], report["solution_runs"], report["solved_passes"], report["ok"]) == (True, True, True, True)
    assert "AssertionError" in report["empty_output"]
    # The proof's broker is gone, and the instructor's own sandboxes were never touched.
    from sandboxes.backends import get_backend
    from sandboxes.models import Sandbox

    assert Sandbox.objects.get(purpose="verify").state == "stopped"
    assert get_backend().list_units() == []


TERMINAL_EXERCISES = {
    # exercise: (chapter, broker, the empty broker's reason, what the typed solution printed)
    "returns-queue": ("queues-streaming-event-driven", "nats", "Потока RETURNS в JetStream нет", ("Published", "refunds")),
    "refund-audit-history": (
        "kafka-producer-consumer",
        "kafka",
        "Топика refund-requests в брокере нет",
        ("Created topic refund-requests", "NEW-OFFSET"),
    ),
}


@pytest.mark.parametrize("exercise", TERMINAL_EXERCISES)
def test_an_exercise_done_in_the_terminal_is_proven_with_its_commands_typed_into_the_terminal(
    celery_worker, instructor, units_cleanup, exercise
):
    """6.1's returns queue (`nats`) and 6.3's refund audit (`kafka-topics.sh`, `kafka-consumer-groups.sh`):
    the proof types the solution's commands into the scratch sandbox's terminal."""
    from django.conf import settings

    from lessons import exercises
    from lessons.authoring_selectors import exercise_proof_parts
    from lessons.models import Chapter

    slug, broker, empty_reason, printed = TERMINAL_EXERCISES[exercise]
    course_import(directory=Path(settings.COURSE_DIRS[0]))
    chapter = Chapter.objects.get(course__slug="broker-academy", slug=slug)
    parts = exercise_proof_parts(chapter=chapter, exercise=exercise)
    assert parts is not None and parts.in_terminal and parts.broker == broker
    job = exercises.exercise_verify_enqueue(
        user_id=instructor.pk, broker=parts.broker, check=parts.check, solution=parts.solution, in_terminal=parts.in_terminal
    )
    deadline = time.monotonic() + 240
    while (answer := exercises.exercise_verify_result(job=job))["state"] == "pending" and time.monotonic() < deadline:
        time.sleep(0.5)
    report = answer["report"]
    assert (report["empty_fails"], report["solution_runs"], report["solved_passes"]) == (True, True, True), report
    assert empty_reason in report["empty_output"]
    assert all(text in report["solution_output"] for text in printed), report["solution_output"]
