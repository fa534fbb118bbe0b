"""The broker console's doors: ``/sandboxes/<broker>/ui/`` reaches the session user's own console only.

Two real units of the process backend (network namespaces, each console on loopback
inside its unit) stand for two learners' sandboxes: the owner's RabbitMQ and the other
learner's NATS. Requests go to the platform's real ASGI server as raw HTTP (http.client),
so paths reach it exactly as written: encoded slashes, dot segments, absolute-form targets.
"""

from __future__ import annotations

import base64
import http.client
import threading
import urllib.parse

import pytest
from django.contrib.auth.models import User

from sandboxes.backends.process import ProcessBackend
from sandboxes.brokers.rabbitmq.kind import CONSOLE_PLACEHOLDER
from sandboxes.brokers.rabbitmq.tap import PASSWORD, USER
from sandboxes.models import Sandbox, State
from tests.courseplatform.test_realtime_roundtrip import session_cookie
from tests.security.units import Unit

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

#: The owner's queue: whatever another learner tries, this name never reaches them.
OWNER_QUEUE = "owners-private-queue"
#: The unit's own credentials as HTTP Basic would carry them: never in anything the browser receives.
REAL_AUTH = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


@pytest.fixture(scope="module")
def units():
    """The owner's RabbitMQ and the other learner's NATS, started side by side once for the module."""
    backend = ProcessBackend()
    started: dict[str, Unit] = {}
    errors: list[BaseException] = []

    def start(broker: str) -> None:
        try:
            started[broker] = Unit(backend, broker)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(b,)) for b in ("rabbitmq", "nats")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    yield started
    for unit in started.values():
        unit.stop()
    if errors:
        raise errors[0]


@pytest.fixture
def learners(units, learner):
    other = User.objects.create_user("other-learner", password="other-pass-123")
    Sandbox.objects.create(user=learner, broker="rabbitmq", state=State.READY, unit=units["rabbitmq"].name)
    Sandbox.objects.create(user=other, broker="nats", state=State.READY, unit=units["nats"].name)
    return learner, other


def _request(live_server_url: str, method: str, target: str, *, cookie: str | None, headers=None, body=None):
    """One request with ``target`` sent as written; returns (status, headers as a list, body)."""
    parts = urllib.parse.urlsplit(live_server_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    sent = {"Host": parts.netloc, **(headers or {})}
    if cookie is not None:
        sent["Cookie"] = f"sessionid={cookie}"
    try:
        conn.request(method, target, body=body, headers=sent)
        response = conn.getresponse()
        return response.status, response.getheaders(), response.read()
    finally:
        conn.close()


def _seen(headers, body: bytes) -> str:
    return "\n".join(f"{k}: {v}" for k, v in headers) + "\n" + body.decode(errors="replace")


def test_the_owner_gets_their_console_logged_in_without_ever_holding_its_credentials(learners, live_server_url):
    owner, _ = learners
    cookie = session_cookie(owner)
    origin = {"Origin": live_server_url}

    status, headers, body = _request(live_server_url, "GET", "/sandboxes/rabbitmq/ui/", cookie=cookie)
    assert status == 200, body[:500]
    assert b"RabbitMQ Management" in body
    cookies = [v for k, v in headers if k.lower() == "set-cookie"]
    # The page's login is a placeholder on the console's path, the same path its script writes the cookie to.
    assert any(c.startswith(f"m=2258:{CONSOLE_PLACEHOLDER};") and "Path=/sandboxes/rabbitmq/ui" in c for c in cookies), cookies

    # The console's script sends the placeholder; the agent sends the unit's own login upstream instead.
    placeholder = {"Authorization": f"Basic {CONSOLE_PLACEHOLDER}"}
    status, headers, body = _request(
        live_server_url, "GET", "/sandboxes/rabbitmq/ui/api/whoami", cookie=cookie, headers=placeholder
    )
    assert status == 200, body
    # A %2F (RabbitMQ's default vhost) reaches the console encoded, as the console's own script sends it.
    status, _, body = _request(
        live_server_url,
        "PUT",
        f"/sandboxes/rabbitmq/ui/api/queues/%2F/{OWNER_QUEUE}",
        cookie=cookie,
        headers={**placeholder, **origin, "Content-Type": "application/json"},
        body=b'{"durable": false}',
    )
    assert status in (201, 204), body
    status, headers, body = _request(
        live_server_url, "GET", "/sandboxes/rabbitmq/ui/api/queues", cookie=cookie, headers=placeholder
    )
    assert status == 200 and OWNER_QUEUE.encode() in body

    # Nothing the browser receives holds the unit's credentials, a login challenge or the console's own cookies.
    for target in ("/sandboxes/rabbitmq/ui/", "/sandboxes/rabbitmq/ui/api/whoami", "/sandboxes/rabbitmq/ui/api/overview"):
        for sent in ({}, placeholder, {"Authorization": "Basic bm9ib2R5Om5vdGhpbmc="}):
            status, headers, body = _request(live_server_url, "GET", target, cookie=cookie, headers=sent)
            seen = _seen(headers, body)
            assert status == 200, (target, sent, status)
            assert REAL_AUTH not in seen and f"{USER}:{PASSWORD}" not in seen, target
            assert "www-authenticate" not in {k.lower() for k, _ in headers}
            assert "Cowboy" not in seen  # RabbitMQ's own Server header (the one there is uvicorn's)

    # A change sent from another site with the learner's cookies is refused: the console's script sends its origin.
    status, _, _ = _request(
        live_server_url,
        "DELETE",
        f"/sandboxes/rabbitmq/ui/api/queues/%2F/{OWNER_QUEUE}",
        cookie=cookie,
        headers={**placeholder, "Origin": "https://elsewhere.example"},
    )
    assert status == 403
    status, _, body = _request(live_server_url, "GET", "/sandboxes/rabbitmq/ui/api/queues", cookie=cookie, headers=placeholder)
    assert OWNER_QUEUE.encode() in body


def test_another_learner_finds_no_route_to_the_owners_console(learners, live_server_url, units):
    owner, other = learners
    # The owner's queue exists, so any leak would show its name.
    _request(
        live_server_url,
        "PUT",
        f"/sandboxes/rabbitmq/ui/api/queues/%2F/{OWNER_QUEUE}",
        cookie=session_cookie(owner),
        headers={"Origin": live_server_url, "Content-Type": "application/json"},
        body=b"{}",
    )
    cookie = session_cookie(other)
    owner_sandbox = Sandbox.objects.get(user=owner)
    unit = units["rabbitmq"].name
    tries = [
        "/sandboxes/rabbitmq/ui/",
        "/sandboxes/rabbitmq/ui/api/queues",
        f"/sandboxes/rabbitmq/ui/api/queues/%2F/{OWNER_QUEUE}",
        f"/sandboxes/rabbitmq/ui/api/queues?sandbox={owner_sandbox.pk}&user={owner.pk}",
        f"/sandboxes/{owner_sandbox.pk}/ui/api/queues",
        f"/sandboxes/{unit}/ui/api/queues",
        "/sandboxes/RabbitMQ/ui/api/queues",
        "/sandboxes/rabbit%6Dq/ui/api/queues",
        "/sandboxes/rabbitmq%2Fui/api/queues",
        # Their own console, with dot segments and encoded slashes towards the owner's.
        "/sandboxes/nats/ui/..%2f..%2frabbitmq/ui/api/queues",
        "/sandboxes/nats/ui/../../rabbitmq/ui/api/queues",
        "/sandboxes/nats/ui/%2e%2e/%2e%2e/rabbitmq/ui/api/queues",
        # Other ports of a unit: the console's host and port are the agent's choice, never the request's.
        "/sandboxes/nats/ui//127.0.0.1:15672/api/queues",
        "/sandboxes/nats/ui/@127.0.0.1:15672/api/queues",
        "/sandboxes/nats/ui/http://127.0.0.1:15672/api/queues",
        "/sandboxes/nats/ui/%2F%2F127.0.0.1:15672/api/queues",
        # Absolute-form request targets naming the console's own port.
        "http://127.0.0.1:15672/api/queues",
        "http://localhost:15672/sandboxes/rabbitmq/ui/api/queues",
    ]
    for target in tries:
        status, headers, body = _request(live_server_url, "GET", target, cookie=cookie)
        seen = _seen(headers, body)
        # As the console's API names it (the page may echo the asked path in its language form).
        assert f'"name":"{OWNER_QUEUE}"' not in seen, target
        assert "RabbitMQ Management" not in seen, target
        if target.startswith("/sandboxes/nats/ui/"):
            # Their own NATS console, asked for a path it does not have (or cleaning one: a redirect kept under its prefix).
            location = dict((k.lower(), v) for k, v in headers).get("location", "/sandboxes/nats/ui/")
            assert status in (301, 307, 308, 400, 404) and location.startswith("/sandboxes/nats/ui/"), (target, status, location)
        else:
            assert status in (400, 404), (target, status)

    # Their own console is there: NATS' monitoring, answering for their server only.
    status, _, body = _request(live_server_url, "GET", "/sandboxes/nats/ui/varz", cookie=cookie)
    assert status == 200 and b'"server_id"' in body


def test_an_anonymous_visitor_is_sent_to_log_in(learners, live_server_url):
    for target in ("/sandboxes/rabbitmq/ui/", "/sandboxes/rabbitmq/ui/api/queues", "/sandboxes/rabbitmq/console/start"):
        status, headers, body = _request(live_server_url, "GET", target, cookie=None)
        if target.endswith("start"):
            assert status in (302, 405), target  # a form's target: POST only
            continue
        location = dict((k.lower(), v) for k, v in headers).get("location", "")
        assert status == 302 and location.startswith("/accounts/login/?next="), (target, status, location)
        assert OWNER_QUEUE.encode() not in body
