"""An instructor's exercise proofs count against the same per-user limits as a learner's runs.

A proof starts a throwaway broker on the worker and runs the check, the solution and the check
again. It holds one of its instructor's run slots (at most LIVE_RUNS_PER_USER cells, checks and
proofs at once, across tabs and processes) from the request until the worker has finished, and
its broker counts against their quota of sandboxes (SANDBOX_QUOTA_PER_USER). Performed through the
authoring pages with a real worker and real NATS brokers, and over the live WebSocket (uvicorn).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.urls import reverse
from websockets.asyncio.client import connect as ws_connect

from courseplatform.accounts.roles import INSTRUCTOR_GROUP
from lessons import exercises
from lessons.course_io import course_import
from sandboxes import ws_limits
from sandboxes.backends import get_backend
from sandboxes.models import Purpose, Sandbox, State
from tests.aio import run
from tests.courseplatform.test_realtime_roundtrip import session_cookie, ws_url

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

MINI = Path(__file__).resolve().parents[1] / "fixtures" / "course-mini"
SLOW_SOLUTION = 'import time\ntime.sleep(12)\nprint("solution")'


@pytest.fixture
def slow_course(tmp_path):
    """The small course with a solution that takes 12 s: its proofs are still running while the test looks."""
    folder = tmp_path / "mini"
    shutil.copytree(MINI, folder)
    chapter = folder / "1-first.md"
    chapter.write_text(chapter.read_text().replace('print("solution")', SLOW_SOLUTION))
    return course_import(directory=folder)


def _instructor() -> User:
    user = User.objects.create_user("teacher-a", password="teacher-pass-123")
    user.groups.add(Group.objects.get(name=INSTRUCTOR_GROUP))
    return user


def _slots_held(user: User) -> int:
    client = redis.Redis.from_url(settings.REDIS_URL)
    key = ws_limits._key("runs", user.pk)
    return client.zcount(key, time.time(), "+inf")


def test_proofs_take_the_instructors_run_slots_until_the_worker_ends_them(
    client, celery_worker, live_server_url, slow_course, units_cleanup
):
    teacher = _instructor()
    slow_course.instructors.add(teacher)
    client.force_login(teacher)
    cookie = session_cookie(teacher)
    verify = reverse("authoring:exercise_verify", kwargs={"course": "mini", "chapter": "first", "exercise": "first-task"})
    limit = ws_limits.LIVE_RUNS_PER_USER

    jobs = []
    for _ in range(limit):
        answer = client.post(verify)
        assert answer.status_code == 202, answer.content
        jobs.append(answer.json()["job"])
    refused = client.post(verify)
    too_many = str(ws_limits.TOO_MANY_RUNS.format(n=limit))
    assert refused.status_code == 429 and refused.json()["error"] == too_many, refused.content

    # The same slots on the live page: a cell of the instructor's, while the proofs run, is refused alike.
    async def cell_run() -> dict:
        async with ws_connect(
            ws_url(live_server_url), origin=live_server_url, additional_headers={"Cookie": f"sessionid={cookie}"}
        ) as ws:
            await ws.send(json.dumps({"type": "cell.run", "run": "r1", "course": "mini", "chapter": "first", "cell": "publish"}))
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), timeout=20))
                if frame.get("run") == "r1":
                    return frame

    frame = run(cell_run())
    assert frame["type"] == "cell.error" and frame["message"] == too_many, frame
    assert Sandbox.objects.filter(user=teacher, purpose=Purpose.LEARNER).count() == 0, "the refused cell started a sandbox"

    deadline = time.monotonic() + 150
    while time.monotonic() < deadline and any(exercises.exercise_verify_result(job=j)["state"] == "pending" for j in jobs):
        time.sleep(0.5)
    reports = [exercises.exercise_verify_result(job=j) for j in jobs]
    print("proofs:", reports)
    assert all(r["state"] == "done" and r["report"]["solution_runs"] for r in reports), reports
    assert _slots_held(teacher) == 0, "a finished proof kept its run slot"
    assert not Sandbox.objects.filter(purpose=Purpose.VERIFY).exclude(state=State.STOPPED).exists()
    assert get_backend().list_units() == []


def test_a_proofs_broker_counts_against_the_instructors_sandbox_quota(client, slow_course):
    teacher = _instructor()
    slow_course.instructors.add(teacher)
    brokers = ["nats", "rabbitmq", "kafka", "redis", "activemq"][: settings.SANDBOX_QUOTA_PER_USER]
    for broker in brokers:
        Sandbox.objects.create(user=teacher, broker=broker, state=State.READY)  # their sandbox bar is full
    client.force_login(teacher)
    verify = reverse("authoring:exercise_verify", kwargs={"course": "mini", "chapter": "first", "exercise": "first-task"})
    refused = client.post(verify)
    assert refused.status_code == 429 and "это предел" in refused.json()["error"], refused.content
    assert _slots_held(teacher) == 0, "a refused proof kept a run slot"

    # The worker checks again when it makes the broker (the bar may have filled since the request).
    report = exercises.exercise_verify(user_id=teacher.pk, broker="nats", check=("pass", 5), solution=("pass", 5))
    assert report["ok"] is False and "это предел" in report["error"], report
    assert not Sandbox.objects.filter(purpose=Purpose.VERIFY).exists()
