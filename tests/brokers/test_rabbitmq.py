"""RabbitMQ: the firehose shows publishes and deliveries, and never takes a learner's message."""

from __future__ import annotations

import json

import pytest

from sandboxes.brokers import versions

pytestmark = pytest.mark.integration
KIND = "rabbitmq"


def test_ready_within_target_with_documented_variables(broker):
    assert broker.env == {
        "AMQP_URL": "amqp://guest:guest@localhost:5672/%2F",
        "RABBITMQ_API_URL": "http://guest:guest@localhost:15672/api",
    }
    assert broker.ready_s < 20.0  # target 10 s; twice that tolerates a busy machine


def test_reports_the_pinned_version(broker):
    # Read from the running broker, not from what was installed: what the learner's page will show.
    assert versions.is_pinned(KIND, broker.version), f"{KIND} says {broker.version!r}, pinned {versions.version(KIND)}"


def test_publish_and_deliver_are_traced(broker):
    broker.cell(
        """
        import os, pika
        conn = pika.BlockingConnection(pika.URLParameters(os.environ["AMQP_URL"]))
        ch = conn.channel()
        ch.exchange_declare("tap.orders", "direct")
        ch.queue_declare("tap.q")
        ch.queue_bind("tap.q", "tap.orders", "new")
        ch.basic_publish("tap.orders", "new", b'{"id": 1}', pika.BasicProperties(headers={"src": "cell"}, message_id="m-1"))
        ch.basic_publish("", "tap.q", b"\\xff\\x00")
        got = []
        for method, props, body in ch.consume("tap.q", inactivity_timeout=2):
            if method is None:
                break
            got.append(body)
            ch.basic_ack(method.delivery_tag)
        assert len(got) == 2, got
        conn.close()
        """
    )
    produced = broker.event(direction="produced", destination="tap.orders")
    assert produced["headers"] == {"src": "cell"}
    assert produced["detail"]["routing_key"] == "new"
    assert produced["detail"]["routed_queues"] == "tap.q"
    assert produced["detail"]["message_id"] == "m-1"
    default = broker.event(direction="produced", destination="(default)", detail__routing_key="tap.q")
    assert default["value"]["encoding"] == "hex"
    consumed = broker.event(direction="consumed", destination="tap.q", detail__exchange="tap.orders")
    assert consumed["value"]["encoding"] == "json" and consumed["detail"]["redelivered"] == "false"
    broker.event(direction="consumed", destination="tap.q", detail__exchange="(default)")


def test_tap_leaves_learner_messages_in_their_queue(broker):
    out = broker.cell(
        """
        import base64, json, os, time, urllib.request, urllib.parse, pika
        conn = pika.BlockingConnection(pika.URLParameters(os.environ["AMQP_URL"]))
        ch = conn.channel()
        ch.queue_declare("tap.keep")
        for i in range(3):
            ch.basic_publish("", "tap.keep", f"m{i}".encode())
        conn.close()
        api = urllib.parse.urlsplit(os.environ["RABBITMQ_API_URL"])
        url = f"http://{api.hostname}:{api.port}{api.path}/queues/%2F/tap.keep"
        auth = base64.b64encode(f"{api.username}:{api.password}".encode()).decode()
        for _ in range(50):  # queue counters refresh every second
            req = urllib.request.Request(url, headers={"Authorization": "Basic " + auth})
            queue = json.load(urllib.request.urlopen(req))
            if queue.get("messages_ready") == 3:
                break
            time.sleep(0.2)
        print(queue.get("messages_ready"))
        """
    )
    assert broker.event(direction="produced", destination="(default)", detail__routing_key="tap.keep")
    assert out.strip() == "3"
    assert not broker.events(direction="consumed", destination="tap.keep")


def test_snapshot_shows_learner_topology_only(broker):
    snap = broker.snapshot(lambda s: any(q["name"] == "tap.keep" and q["messages_ready"] == 3 for q in s["queues"]))
    assert [x["name"] for x in snap["exchanges"]] == ["tap.orders"]
    assert {q["name"] for q in snap["queues"]} == {
        "tap.q",
        "tap.keep",
    }  # not the tap's own queue
    assert snap["bindings"] == [
        {
            "source": "tap.orders",
            "vhost": "/",
            "destination": "tap.q",
            "destination_type": "queue",
            "routing_key": "new",
            "arguments": {},
        }
    ]


def test_memory_is_small(broker, record_property):
    rss = broker.rss_mb()
    record_property("rss_mb", rss)
    assert 0 < rss < 400


def test_a_refused_login_and_a_missing_queue_get_their_hints(broker):
    """The learner's two other common mistakes, as pika really raises them (sandboxes/agent/cell_hints.py)."""
    out = broker.cell(
        """
        import json, os, pika
        from sandboxes.agent.cell_hints import hint_for
        variables = ["AMQP_URL", "RABBITMQ_API_URL"]
        hints = {}
        try:
            pika.BlockingConnection(pika.URLParameters(os.environ["AMQP_URL"].replace("guest:guest", "guest:wrong")))
        except Exception as exc:
            hints["login"] = hint_for(exc, variables=variables)
        conn = pika.BlockingConnection(pika.URLParameters(os.environ["AMQP_URL"]))
        try:
            conn.channel().queue_declare("hint.no-such-queue", passive=True)
        except Exception as exc:
            hints["missing"] = hint_for(exc, variables=variables)
        conn.close()
        print(json.dumps(hints))
        """
    )
    assert json.loads(out) == {
        "login": {"code": "login", "variables": ["AMQP_URL"]},
        "missing": {"code": "missing", "variables": ["AMQP_URL"]},
    }


def test_stop_leaves_no_process(broker):
    assert broker.stop() == 0
    assert broker.pids_in_namespace() == []
