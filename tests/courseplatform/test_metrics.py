"""Operators see what runs: the web's and the worker's /metrics, behind a token, move with what a learner does,
and the JSON log lines of it carry the sandbox and user ids.

Real uvicorn and Celery worker (started with a token and the worker's metrics port), real Redis and
Postgres, a real NATS unit, a WebSocket client running a cell; scraped over HTTP and parsed with
prometheus_client's own parser.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator

import pytest
import requests
from django.contrib.auth.models import User
from django.urls import reverse
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from lessons.course_io import course_import
from sandboxes.services import actions, admission
from sandboxes.services.lifecycle import SandboxError
from tests.aio import run
from tests.courseplatform.test_realtime_roundtrip import session_cookie
from tests.security.flooder import Tab, opened
from tests.security.test_ws_flood import MINI
from tests.services import PYTHON, Service, free_port, platform_dir, port_open, wait_for, worker_in_place_of

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

TOKEN = secrets.token_urlsafe(32)
START_S = 120  # a NATS sandbox starting under the load of other suites

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


class Platform:
    def __init__(self, web: Service, worker: Service, worker_url: str) -> None:
        self.web, self.worker, self.worker_url = web, worker, worker_url


@pytest.fixture(scope="module")
def platform(celery_worker) -> Iterator[Platform]:
    """A web server and the only worker of their own, both with METRICS_TOKEN, the worker serving its port."""
    port, worker_port = free_port(), free_port()
    web = Service(
        "asgi-metrics",
        [
            *(PYTHON, "-m", "uvicorn", "courseplatform.asgi:application"),
            *("--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"),
        ],
        env={"METRICS_TOKEN": TOKEN},
        as_platform=True,
    )
    web.url = f"http://127.0.0.1:{port}"
    # As an emptyDir or tmpfs would be, the worker's own to write: prometheus_client opens files there on import.
    multiproc = platform_dir("worker-metrics")
    worker_env = {"METRICS_TOKEN": TOKEN, "METRICS_WORKER_PORT": str(worker_port), "PROMETHEUS_MULTIPROC_DIR": str(multiproc)}
    try:
        wait_for(lambda: port_open(port), timeout=60, what="the metrics ASGI server listening")
        with worker_in_place_of(celery_worker, "metrics", env=worker_env) as worker:
            wait_for(lambda: port_open(worker_port), timeout=30, what="the worker's metrics port open")
            yield Platform(web, worker, f"http://127.0.0.1:{worker_port}")
    finally:
        web.stop()


def scrape(base_url: str) -> Samples:
    response = requests.get(base_url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert response.status_code == 200, response.text[:500]
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """A sample's value; 0 when it is not there yet (a labelled histogram appears at its first observation)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def log_lines(service: Service) -> list[dict]:
    lines = []
    for raw in service.log.read_text(errors="replace").splitlines():
        if raw.startswith("{"):
            try:
                lines.append(json.loads(raw))
            except ValueError:
                continue
    return lines


def test_the_endpoints_count_a_sandbox_its_start_a_cell_a_refusal_and_the_queue(platform, units_cleanup):
    course_import(directory=MINI)
    learner = User.objects.create_user("metrics-learner", password="metrics-pass-123")
    cookie = session_cookie(learner)
    web_before, worker_before = scrape(platform.web.url), scrape(platform.worker_url)

    async def scenario() -> tuple[dict, dict]:
        async with opened(platform.web.url, cookie) as ws:
            tab = Tab(ws)
            await tab.wait(lambda f: f["type"] == "hello", timeout=30)
            frame = {"type": "cell.run", "course": "mini", "chapter": "first", "cell": "publish"}
            # The first run waits for the sandbox to start, then takes a second; a second Run of the same
            # cell meanwhile is refused (one run of a cell at a time).
            await ws.send(json.dumps({**frame, "run": "first", "code": "import time; time.sleep(1); print('pong')"}))
            await ws.send(json.dumps({**frame, "run": "again", "code": "print('twice')"}))
            refused = await tab.wait(lambda f: f.get("run") == "again", timeout=30)
            ended = await tab.wait(
                lambda f: f.get("run") == "first" and f["type"] in ("cell.exit", "cell.error"), timeout=START_S
            )
            return ended, refused

    ended, refused = run(scenario())
    assert ended["type"] == "cell.exit" and ended["status"] == 0, ended
    assert refused["type"] == "cell.error" and refused.get("refused"), refused
    web_after, worker_after = scrape(platform.web.url), scrape(platform.worker_url)

    assert value(web_after, "broker_academy_sandboxes", broker="nats", state="ready", purpose="learner") == 1
    assert value(web_before, "broker_academy_sandboxes", broker="nats", state="ready", purpose="learner") == 0
    provisioned = "broker_academy_sandbox_provisioning_seconds_count"
    assert value(worker_after, provisioned, broker="nats") - value(worker_before, provisioned, broker="nats") == 1
    assert value(worker_after, "broker_academy_sandbox_provisioning_seconds_sum", broker="nats") > 0
    round_trip = "broker_academy_cell_round_trip_seconds_count"
    assert value(web_after, round_trip, broker="nats") - value(web_before, round_trip, broker="nats") == 1
    refusals = "broker_academy_refusals_total"
    assert value(web_after, refusals, reason="ws_cell_running") - value(web_before, refusals, reason="ws_cell_running") == 1
    assert value(web_after, refusals, reason="ws_runs") == value(web_before, refusals, reason="ws_runs")
    assert ("broker_academy_celery_queue_depth", frozenset({("queue", "celery")})) in web_after

    # The JSON lines of the start, the run and the refusal carry the ids.
    user_id = learner.pk
    sandbox_id = learner.sandboxes.get(broker="nats").pk
    worker_lines, web_lines = log_lines(platform.worker), log_lines(platform.web)
    # One INFO line per state change: the provisioning time is a DEBUG line beside "ready".
    assert not [line for line in worker_lines if "provisioned in" in line["message"]]
    ready_line = [line for line in worker_lines if line.get("state") == "ready"]
    assert [(line["sandbox_id"], line["user_id"]) for line in ready_line] == [(sandbox_id, user_id)]
    ran = [line for line in web_lines if line["message"].startswith("cell run ended")]
    assert [(line["sandbox_id"], line["user_id"], line["status"]) for line in ran] == [(sandbox_id, user_id, 0)]
    refused_lines = [line for line in web_lines if line.get("reason") == "ws_cell_running"]
    assert [line["user_id"] for line in refused_lines] == [user_id]


def test_a_scrape_without_the_token_or_with_another_is_refused(platform):
    for url in (platform.web.url, platform.worker_url):
        assert requests.get(url + "/metrics", timeout=10).status_code == 401
        wrong = {"Authorization": "Bearer " + secrets.token_urlsafe(32)}
        assert requests.get(url + "/metrics", headers=wrong, timeout=10).status_code == 401
        basic = {"Authorization": f"Basic {TOKEN}"}
        assert requests.get(url + "/metrics", headers=basic, timeout=10).status_code == 401


def test_without_a_token_the_web_has_no_metrics_endpoint(live_server_url):
    """The suite's own server runs without METRICS_TOKEN: /metrics is then a path like any unknown one."""
    response = requests.get(live_server_url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert response.status_code == 404


def refused(reason: str) -> float:
    """This process's count of refusals for ``reason`` (the doors below run in the test's own process)."""
    return REGISTRY.get_sample_value("broker_academy_refusals_total", {"reason": reason}) or 0.0


def test_each_other_door_counts_its_refusals_under_its_reason(client, settings, learner):
    """Log-in and sign-up throttling, the per-user quota and the admission queue, through Django's test
    client and the services, with the real Redis behind the rate limits and the queue."""
    counts = {reason: refused(reason) for reason in ("login_throttled", "signup_throttled", "quota", "admission_queued")}
    settings.LOGIN_RATE_PER_USERNAME = "1/m"
    name = f"metrics-{secrets.token_hex(4)}"
    logins = [client.post(reverse("login"), {"username": name, "password": "x"}).status_code for _ in range(3)]
    settings.SIGNUP_RATE_PER_IP = "1/h"
    signups = []
    for n in range(2):
        password = secrets.token_urlsafe(12)
        form = {"username": f"{name}-{n}", "password1": password, "password2": password}
        signups.append(client.post(reverse("signup"), form).status_code)
        client.logout()
    settings.SANDBOX_QUOTA_PER_USER = 0
    with pytest.raises(SandboxError):
        actions.sandbox_ensure(user_id=learner.pk, broker="nats")
    settings.SANDBOX_QUOTA_PER_USER = 4
    settings.SANDBOX_CAPACITY_MB = 1
    try:
        with pytest.raises(admission.SandboxQueued):
            actions.sandbox_ensure(user_id=learner.pk, broker="nats")
    finally:
        admission.admission_leave(user_id=learner.pk, broker="nats")
    assert logins.count(429) == 2, logins
    assert 429 in signups, signups
    assert refused("login_throttled") - counts["login_throttled"] == 2
    assert refused("signup_throttled") - counts["signup_throttled"] == signups.count(429)
    assert refused("quota") - counts["quota"] == 1
    assert refused("admission_queued") - counts["admission_queued"] == 1
