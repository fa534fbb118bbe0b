"""The load benchmark's simulated learner (bench/learners.py) against the real platform, with two learners.

What bench/load.py measures rests on it: that each learner gets a ready sandbox of their own, that a
cell's round trip is timed to its exit, and that a learner's stream latencies count only the tagged
messages its own cell produced.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client

from bench.learners import learners_close, learners_connect, producer_code
from lessons.course_io import course_import
from tests.aio import run

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

MINI = Path(__file__).resolve().parents[1] / "fixtures" / "course-mini"
TARGET = {"course": "mini", "chapter": "live", "cell": "on-nats"}


def cookie_of(user: User) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def test_two_learners_get_their_own_sandbox_time_a_cell_and_count_their_own_stream(celery_worker, live_server_url, units_cleanup):
    course_import(directory=MINI)
    cookies = [cookie_of(User.objects.create_user(f"load-learner-{i}", password="x-pass-12345")) for i in range(2)]
    url = live_server_url.replace("http://", "ws://") + "/ws/live/"

    async def scenario():
        learners = await learners_connect(url, live_server_url, cookies, seed=1)
        try:
            await asyncio.gather(*(me.ensure("nats") for me in learners))
            ready = await asyncio.gather(*(me.wait_ready(120) for me in learners))
            runs = await asyncio.gather(*(me.run(TARGET, timeout=60) for me in learners))
            # Only the first learner produces: the second must count nothing of it.
            for me in learners:
                me.stream_tag = "tagged"
            code = producer_code(rate=50, seconds=1, tag="tagged")
            stream = await learners[0].run(TARGET, code=code, timeout=60)
            for _ in range(50):
                if len(learners[0].stream_latencies) >= 50:
                    break
                await asyncio.sleep(0.1)
            return learners, ready, runs, stream
        finally:
            await learners_close(learners)

    learners, ready, runs, stream = run(scenario())
    assert ready == [True, True], [me.failed for me in learners]
    assert learners[0].sandbox_id != learners[1].sandbox_id
    for cell in runs:
        assert not cell.error and cell.status == 0, cell.error
        assert cell.output.strip() == "nats"
        assert (
            cell.duration_ms is not None and cell.roundtrip_ms >= cell.duration_ms >= 0
        )  # a print() runs in under a millisecond now
    assert not stream.error, stream.error
    assert len(learners[0].stream_latencies) + learners[0].stream_dropped == 50
    assert all(0 <= latency < 10_000 for latency in learners[0].stream_latencies)
    assert learners[1].stream_latencies == [] and learners[1].stream_dropped == 0
