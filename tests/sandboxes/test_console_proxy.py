"""What may cross the console proxy: targets, request and response headers, redirects (no broker needed)."""

from __future__ import annotations

import pytest

from sandboxes.agent.console import ConsoleRefused, console_fetch
from sandboxes.brokers import get_broker
from sandboxes.console_proxy import (
    console_location,
    console_request_headers,
    console_response_headers,
    console_session,
    console_target,
)


@pytest.mark.parametrize(
    ("raw", "query", "target"),
    [
        (b"/sandboxes/rabbitmq/ui/", "", "/"),
        (b"/sandboxes/rabbitmq/ui/api/queues/%2F/orders", "columns=name", "/api/queues/%2F/orders?columns=name"),
        (b"/sandboxes/rabbitmq/ui/..%2f..%2fadmin", "", "/..%2f..%2fadmin"),  # stays on the same console
        (b"/sandboxes/rabbitmq/ui", "", None),
        (b"/sandboxes/rabbit%6dq/ui/api/queues", "", None),  # the prefix as sent, not as decoded
        (b"/sandboxes/nats/ui/varz", "", None),  # another broker's prefix
        (b"/sandboxes/rabbitmq/ui//127.0.0.1:5672/", "", None),  # would read as an authority
        (b"/sandboxes/rabbitmq/ui/a b", "", None),
        (b"/sandboxes/rabbitmq/ui/a\r\nHost: x", "", None),
    ],
)
def test_only_a_plain_path_under_the_brokers_own_prefix_goes_upstream(raw, query, target):
    assert console_target(broker="rabbitmq", raw_path=raw, query=query) == target


def test_cookies_and_credentials_never_go_upstream():
    sent = console_request_headers(
        {"Cookie": "sessionid=s; csrftoken=t", "Authorization": "Basic x", "Accept": "application/json", "X-Vhost": "/"}
    )
    assert sent == [["accept", "application/json"], ["x-vhost", "/"]]


def test_answers_lose_cookies_challenges_and_server_and_keep_redirects_under_the_prefix():
    kept = console_response_headers(
        [
            ("Set-Cookie", "x=1"),
            ("WWW-Authenticate", 'Basic realm="RabbitMQ Management"'),
            ("Server", "Cowboy"),
            ("Content-Type", "application/json"),
            ("Location", "http://localhost:15672/api/overview"),
        ],
        broker="rabbitmq",
    )
    assert kept == (("content-type", "application/json"), ("location", "/sandboxes/rabbitmq/ui/api/overview"))
    assert console_location("//evil.example:8080/x?y=1", broker="nats") == "/sandboxes/nats/ui/x?y=1"
    assert console_location("/varz", broker="nats") == "/sandboxes/nats/ui/varz"
    assert console_location("varz", broker="nats") == "varz"


def test_activemqs_console_keeps_its_session_cookie_alone_and_its_redirects_under_its_own_path():
    # ActiveMQ's forms carry a secret kept in Jetty's session: that one cookie crosses, nothing else of the browser's.
    cookies = {"sessionid": "s", "csrftoken": "t", "JSESSIONID": "node01abc.node0"}
    sent = console_request_headers({"Accept": "text/html"}, cookies=cookies, session_cookie="JSESSIONID")
    assert sent == [["accept", "text/html"], ["cookie", "JSESSIONID=node01abc.node0"]]
    assert console_request_headers({}, cookies={"JSESSIONID": "a; sessionid=s"}, session_cookie="JSESSIONID") == []
    assert console_request_headers({}, cookies=cookies) == []  # a console without a session gets no cookie
    upstream = [("Set-Cookie", "other=1; Path=/"), ("Set-Cookie", "JSESSIONID=node0x1; Path=/sandboxes/activemq/ui")]
    assert console_session(upstream, name="JSESSIONID") == ("JSESSIONID", "node0x1")
    assert console_session(upstream, name=None) is None
    assert console_session([("Set-Cookie", "other=1")], name="JSESSIONID") is None
    # Jetty serves the console under the platform's path: its redirects already carry it.
    location = "http://localhost:8161/sandboxes/activemq/ui/queues.jsp"
    assert console_location(location, broker="activemq", under_prefix=True) == "/sandboxes/activemq/ui/queues.jsp"
    assert console_location("/admin/x", broker="activemq", under_prefix=True) == "/sandboxes/activemq/ui/admin/x"


@pytest.mark.parametrize(
    ("broker", "method", "target"), [("kafka", "GET", "/"), ("nats", "CONNECT", "/"), ("nats", "GET", "//x:1/")]
)
def test_the_agent_refuses_before_connecting(broker, method, target):
    kind = get_broker(broker)
    with pytest.raises(ConsoleRefused):
        console_fetch(kind=kind, ports=kind.ports(), method=method, target=target, headers=[], body=b"")
