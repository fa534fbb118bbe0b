"""NATS with JetStream: core publishes and JetStream consumer positions reach the tap."""

from __future__ import annotations

import json

import pytest

from sandboxes.brokers import versions

pytestmark = pytest.mark.integration
KIND = "nats"


def test_ready_fast_with_documented_variables(broker):
    assert broker.env == {"NATS_URL": "nats://localhost:4222"}
    assert broker.ready_s < 2.0  # target 1 s; twice that tolerates a busy machine


def test_reports_the_pinned_version(broker):
    # Read from the running broker, not from what was installed: what the learner's page will show.
    assert versions.is_pinned(KIND, broker.version), f"{KIND} says {broker.version!r}, pinned {versions.version(KIND)}"


def test_core_publish_is_tapped_with_headers(broker):
    broker.cell(
        """
        import asyncio, os, nats
        async def main():
            nc = await nats.connect(os.environ["NATS_URL"])
            await nc.publish("tap.hello", b"hi", headers={"lang": "ru"})
            await nc.flush()
            await nc.close()
        asyncio.run(main())
        """
    )
    event = broker.event(direction="produced", destination="tap.hello")
    assert event["value"] == {"encoding": "utf-8", "text": "hi", "truncated": False}
    assert event["headers"] == {"lang": "ru"}


def test_jetstream_acks_show_as_consumed_by_stream_and_consumer(broker):
    broker.cell(
        """
        import asyncio, os, nats
        async def main():
            nc = await nats.connect(os.environ["NATS_URL"])
            js = nc.jetstream()
            await js.add_stream(name="TAPS", subjects=["taps.>"])
            for i in range(3):
                await js.publish("taps.new", f"order {i}".encode())
            sub = await js.pull_subscribe("taps.>", durable="worker")
            for msg in await sub.fetch(2, timeout=5):
                await msg.ack()
            await nc.close()
        asyncio.run(main())
        """
    )
    for seq in (1, 2):
        event = broker.event(direction="consumed", offset=seq, detail__consumer="worker")
        assert event["destination"] == "taps.new"
        assert event["detail"]["stream"] == "TAPS"
        assert event["value"]["text"] == f"order {seq - 1}"
    assert len(broker.events(direction="produced", destination="taps.new")) == 3  # deliveries are not publishes
    assert not [e for e in broker.events() if e["destination"].startswith(("$JS.", "_INBOX."))]
    assert not broker.events(direction="consumed", offset=3, destination="taps.new")


def test_work_queue_message_is_shown_after_the_stream_removed_it(broker):
    broker.cell(
        """
        import asyncio, os, nats
        from nats.js.api import RetentionPolicy
        async def main():
            nc = await nats.connect(os.environ["NATS_URL"])
            js = nc.jetstream()
            await js.add_stream(name="JOBS", subjects=["jobs.>"], retention=RetentionPolicy.WORK_QUEUE)
            await js.publish("jobs.resize", b"photo-1")
            sub = await js.pull_subscribe("jobs.>", durable="resizer")
            for msg in await sub.fetch(1, timeout=5):
                await msg.ack()
            await nc.close()
        asyncio.run(main())
        """
    )
    event = broker.event(direction="consumed", detail__stream="JOBS")
    assert event["value"]["text"] == "photo-1"
    assert event["detail"]["consumer"] == "resizer"


def test_snapshot_shows_streams_and_consumer_positions(broker):
    snap = broker.snapshot(lambda s: any(st["name"] == "TAPS" and st["consumers"] for st in s["streams"]))
    taps = next(st for st in snap["streams"] if st["name"] == "TAPS")
    assert taps["messages"] == 3 and taps["subjects"] == ["taps.>"]
    worker = next(c for c in taps["consumers"] if c["name"] == "worker")
    assert worker["ack_floor_stream_seq"] == 2 and worker["num_pending"] == 1
    assert snap["connections"] == 0  # the tap's own connection is not the learner's


def test_memory_is_small(broker, record_property):
    rss = broker.rss_mb()
    record_property("rss_mb", rss)
    assert 0 < rss < 128


def test_a_missing_stream_gets_its_hint(broker):
    """A learner's missing stream, as nats-py really raises it (sandboxes/agent/cell_hints.py)."""
    out = broker.cell(
        """
        import asyncio, json, os, nats
        from sandboxes.agent.cell_hints import hint_for

        async def main():
            nc = await nats.connect(os.environ["NATS_URL"])
            hints = {}
            try:
                await nc.jetstream().stream_info("HINT_NO_SUCH_STREAM")
            except Exception as exc:
                hints["info"] = hint_for(exc, variables=["NATS_URL"])
            await nc.close()
            return hints

        print(json.dumps(asyncio.run(main())))
        """
    )
    assert json.loads(out) == {"info": {"code": "missing", "variables": ["NATS_URL"]}}


def test_stop_leaves_no_process(broker):
    assert broker.stop() == 0
    assert broker.pids_in_namespace() == []
