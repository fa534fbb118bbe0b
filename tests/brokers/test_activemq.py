"""ActiveMQ: advisories show messages sent and acknowledged, without browsing or reading learners' queues."""

from __future__ import annotations

import pytest

from sandboxes.brokers import versions

pytestmark = pytest.mark.integration
KIND = "activemq"


def test_ready_within_target_with_documented_variables(broker):
    assert broker.env == {
        "STOMP_HOST": "localhost",
        "STOMP_PORT": "61613",
        "STOMP_USER": "admin",
        "STOMP_PASSWORD": "admin",
        "OPENWIRE_URL": "tcp://localhost:61616",
    }
    assert broker.ready_s < 10.0  # target 5 s; twice that tolerates a busy machine


def test_reports_the_pinned_version(broker):
    # Read from the running broker, not from what was installed: what the learner's page will show.
    assert versions.is_pinned(KIND, broker.version), f"{KIND} says {broker.version!r}, pinned {versions.version(KIND)}"


def test_queue_send_and_ack_are_tapped(broker):
    broker.cell(
        """
        import os, time, stomp
        got = []
        class Listener(stomp.ConnectionListener):
            def on_message(self, frame):
                got.append(frame.body)
                conn.ack(frame.headers["message-id"], frame.headers["subscription"])
        conn = stomp.Connection([(os.environ["STOMP_HOST"], int(os.environ["STOMP_PORT"]))])
        conn.set_listener("", Listener())
        conn.connect(os.environ["STOMP_USER"], os.environ["STOMP_PASSWORD"], wait=True)
        conn.send("/queue/tap.orders", '{"id": 1}', headers={"src": "cell"})
        conn.send("/queue/tap.orders", b"\\xff\\x00")
        conn.subscribe("/queue/tap.orders", id="orders", ack="client-individual")
        deadline = time.time() + 5
        while len(got) < 2 and time.time() < deadline:
            time.sleep(0.05)
        assert len(got) == 2, got
        conn.disconnect()
        """
    )
    produced = broker.event(direction="produced", destination="/queue/tap.orders", headers={"src": "cell"})
    assert produced["value"]["encoding"] == "json" and produced["detail"]["message_id"].startswith("ID:")
    consumed = broker.event(direction="consumed", destination="/queue/tap.orders", headers={"src": "cell"})
    assert consumed["detail"]["message_id"] == produced["detail"]["message_id"]
    assert broker.event(direction="consumed", destination="/queue/tap.orders", size=2)["value"]["encoding"] == "hex"


def test_tap_leaves_learner_messages_in_their_queue(broker):
    broker.cell(
        """
        import os, stomp
        conn = stomp.Connection([(os.environ["STOMP_HOST"], int(os.environ["STOMP_PORT"]))])
        conn.connect(os.environ["STOMP_USER"], os.environ["STOMP_PASSWORD"], wait=True)
        for i in range(3):
            conn.send("/queue/tap.keep", f"m{i}")
        conn.disconnect()
        """
    )
    broker.event(
        direction="produced",
        destination="/queue/tap.keep",
        value={"encoding": "utf-8", "text": "m2", "truncated": False},
    )
    # The first snapshot to name the queue may have been taken between two sends: wait for all three
    # to be counted (a tap that took them would never let the count reach 3), then nothing dequeued.
    snap = broker.snapshot(lambda s: any(q["name"] == "tap.keep" and q["messages"] >= 3 for q in s["queues"]))
    keep = next(q for q in snap["queues"] if q["name"] == "tap.keep")
    assert keep["messages"] == 3 and keep["dequeued"] == 0 and keep["consumers"] == 0
    assert not broker.events(direction="consumed", destination="/queue/tap.keep")


def test_topic_consumption_is_inferred_for_non_durable_subscribers(broker):
    broker.cell(
        """
        import os, time, stomp
        got = []
        class Listener(stomp.ConnectionListener):
            def on_message(self, frame):
                got.append(frame.body)
        conn = stomp.Connection([(os.environ["STOMP_HOST"], int(os.environ["STOMP_PORT"]))])
        conn.set_listener("", Listener())
        conn.connect(os.environ["STOMP_USER"], os.environ["STOMP_PASSWORD"], wait=True)
        conn.send("/topic/tap.news", "nobody listens")
        conn.subscribe("/topic/tap.news", id="news", ack="auto")
        time.sleep(0.3)
        conn.send("/topic/tap.news", "breaking")
        deadline = time.time() + 5
        while not got and time.time() < deadline:
            time.sleep(0.05)
        assert got == ["breaking"], got
        time.sleep(1)  # stay subscribed while the tap reads the topic's counters
        conn.disconnect()
        """
    )
    assert len(broker.events(direction="produced", destination="/topic/tap.news")) == 2
    consumed = broker.event(direction="consumed", destination="/topic/tap.news")
    assert consumed["value"]["text"] == "breaking" and consumed["detail"]["inferred"] == "true"
    assert len(broker.events(direction="consumed", destination="/topic/tap.news")) == 1


def test_snapshot_lists_queues_and_topics_without_broker_internals(broker):
    snap = broker.snapshot(lambda s: any(t["name"] == "tap.news" for t in s["topics"]))
    orders = next(q for q in snap["queues"] if q["name"] == "tap.orders")
    assert orders["enqueued"] == 2 and orders["dequeued"] == 2 and orders["messages"] == 0
    names = [d["name"] for d in snap["queues"] + snap["topics"]]
    assert not [n for n in names if n.startswith("ActiveMQ.")]


def test_memory_is_small(broker, record_property):
    rss = broker.rss_mb()
    record_property("rss_mb", rss)
    assert 0 < rss < 500


def test_stop_leaves_no_process(broker):
    assert broker.stop() == 0
    assert broker.pids_in_namespace() == []
