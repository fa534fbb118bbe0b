"""The Redis tap's first connection may come after a cell wrote (a busy machine): what came since the tap was made is shown."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest
import redis

from sandboxes.brokers.redis_streams.tap import RedisTap
from sandboxes.events import Event
from tests.services import free_port, port_open, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def redis_port(tmp_path) -> Iterator[int]:
    port = free_port()
    server = subprocess.Popen(
        [shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: port_open(port), timeout=10, what="redis-server")
        yield port
    finally:
        server.kill()
        server.wait()


def test_entries_written_before_the_first_connection_but_after_the_tap_was_made_are_shown(redis_port):
    client = redis.Redis(port=redis_port)
    kept = client.xadd("orders", {"n": "kept"})  # from an earlier run (kept state): not news
    client.xgroup_create("orders", "billing", id="0")
    client.xreadgroup("billing", "w", {"orders": ">"})
    time.sleep(0.01)

    events: list[Event] = []
    tap = RedisTap(host="127.0.0.1", ports={"redis": redis_port}, emit=lambda e: e and events.append(e), stop=threading.Event())
    time.sleep(0.01)
    # The cell runs before the tap's thread first reaches the broker.
    new = [client.xadd("orders", {"n": str(i)}) for i in range(2)]
    client.xreadgroup("billing", "w", {"orders": ">"})

    tap.connect()
    try:
        tap.step(tap.client)
    finally:
        tap.close()
    shown = {(e.direction, e.detail["id"]) for e in events}
    ids = [i.decode() for i in new]
    assert shown == {(d, i) for d in ("produced", "consumed") for i in ids}, (kept, shown)


def test_what_came_after_the_broker_was_ready_is_news_even_to_a_tap_made_later(redis_port, monkeypatch):
    # The agent marks the broker ready, then starts the tap's thread; importing the client library and
    # making the tap may take seconds on a busy machine, while the learner's first cell already writes.
    from sandboxes.brokers import tap as tap_base

    monkeypatch.setattr(tap_base, "_ready_at_ms", None)
    client = redis.Redis(port=redis_port)
    client.xadd("orders", {"n": "kept"})
    time.sleep(0.01)
    tap_base.broker_ready_mark()
    time.sleep(0.01)
    first = client.xadd("orders", {"n": "first"}).decode()
    time.sleep(0.01)

    events: list[Event] = []
    tap = RedisTap(host="127.0.0.1", ports={"redis": redis_port}, emit=lambda e: e and events.append(e), stop=threading.Event())
    tap.connect()
    try:
        tap.step(tap.client)
    finally:
        tap.close()
    assert [(e.direction, e.detail["id"]) for e in events] == [("produced", first)]
