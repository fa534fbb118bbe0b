"""The wiring proven end to end: a task in a real worker, a WebSocket through the real ASGI server."""

from __future__ import annotations

import asyncio
import json

import pytest
import requests
from channels.layers import get_channel_layer
from django.contrib.auth.models import User
from django.test import Client
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from courseplatform.celery import ping
from tests.aio import run

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def ws_url(live_server_url: str) -> str:
    return live_server_url.replace("http://", "ws://") + "/ws/live/"


def session_cookie(user: User) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def test_a_task_runs_in_a_real_worker(celery_worker):
    assert ping.delay().get(timeout=20) == "pong"


def test_healthz_reports_database_redis_and_worker(celery_worker, live_server_url):
    response = requests.get(live_server_url + "/healthz", timeout=10)
    body = response.json()
    assert response.status_code == 200, body
    assert {name for name, check in body["checks"].items() if check["ok"]} == {"database", "redis", "worker"}


def test_healthz_names_the_failure_when_redis_is_unreachable(settings, db):
    from django.test import Client as DjangoClient

    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = DjangoClient().get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["redis"]["ok"] is False


def test_healthz_runs_only_the_checks_a_probe_names(settings, db):
    from django.test import Client as DjangoClient

    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # unreachable, and not asked about
    ready = DjangoClient().get("/healthz?checks=database")
    assert ready.status_code == 200, ready.content
    assert set(ready.json()["checks"]) == {"database"}
    alive = DjangoClient().get("/healthz?checks=")
    assert alive.status_code == 200 and alive.json()["checks"] == {}
    assert DjangoClient().get("/healthz?checks=database,redis").status_code == 503
    assert DjangoClient().get("/healthz?checks=disk").status_code == 400


def test_anonymous_websocket_is_closed_with_4401_before_anything_is_sent(live_server_url):
    async def attempt():
        async with ws_connect(ws_url(live_server_url), origin=live_server_url) as ws:
            return await asyncio.wait_for(ws.recv(), timeout=5)

    with pytest.raises(ConnectionClosed) as closed:
        run(attempt())
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


def test_websocket_from_a_foreign_origin_is_refused(live_server_url, learner):
    cookie = session_cookie(learner)

    async def attempt():
        async with ws_connect(
            ws_url(live_server_url), origin="http://evil.example", additional_headers={"Cookie": f"sessionid={cookie}"}
        ) as ws:
            await asyncio.wait_for(ws.recv(), timeout=5)

    with pytest.raises(InvalidStatus):
        run(attempt())


def test_authenticated_websocket_receives_its_group_messages(live_server_url, learner):
    cookie = session_cookie(learner)
    layer = get_channel_layer()

    async def scenario():
        async with ws_connect(
            ws_url(live_server_url), origin=live_server_url, additional_headers={"Cookie": f"sessionid={cookie}"}
        ) as ws:
            hello = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
            assert hello == {"type": "hello", "sandboxes": [], "kept": {}, "queue": []}
            await layer.group_send(
                f"user-{learner.pk}",
                {"type": "sandbox.state", "sandbox": {"id": 991, "broker": "nats", "state": "ready", "stage": "ready"}},
            )
            return json.loads(await asyncio.wait_for(ws.recv(), timeout=10))

    message = run(scenario())
    assert message == {"type": "sandbox.state", "sandbox": {"id": 991, "broker": "nats", "state": "ready", "stage": "ready"}}


def test_the_workers_console_has_no_line_per_task(celery_worker):
    """make run's console shows sandbox state changes; Celery's received/succeeded lines are DEBUG-quiet."""
    for _ in range(3):
        assert ping.delay().get(timeout=20) == "pong"
    log = celery_worker.log.read_text(errors="replace")
    # After the latest start: a worker restarted by an earlier test prints its banner (listing tasks) again.
    # Celery names the task in each of its lines ("Task courseplatform.ping[<id>] received"); a word such as
    # "stopping" in a sandbox's own line is not one.
    assert "courseplatform.ping" not in log.rsplit("ready.", 1)[-1], log[-2000:]
