"""Redis Streams through the whole platform: a learner's cell XADDs and reads as a group, the page hears both.

The real worker provisions the learner's redis sandbox on the process backend, the
real agent runs the cell and taps the broker, and the WebSocket carries output,
events and the broker's snapshot, as for the four other brokers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lessons.course_io import course_import
from tests.aio import run
from tests.sandboxes.test_live_stream import Live, cookie_of, events_of, exited

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

COURSE = """---
title: Потоки Redis
slug: redis-course
language: ru
---
Курс для теста пятого брокера.
"""
CHAPTER = """---
title: Потоки
slug: streams
number: "1.1"
order: 1
broker: redis
estimated_minutes: 5
objectives:
  - Отправить и прочитать запись
---

## Запись и чтение

```python cell id=on-redis
print("ячейка главы")
```
"""
CELL = """
import os, redis
r = redis.Redis.from_url(os.environ["REDIS_URL"])
for i in range(3):
    r.xadd("orders", {"n": i})
r.xgroup_create("orders", "billing", id="0")
got = r.xreadgroup("billing", "worker-1", {"orders": ">"}, count=3)
entries = got[0][1]
r.xack("orders", "billing", *[entry_id for entry_id, _ in entries])
print("consumed", len(entries))
"""


def test_a_redis_cell_streams_output_events_and_a_snapshot_to_the_page(
    celery_worker, live_server_url, learner, units_cleanup, tmp_path: Path
):
    (tmp_path / "course.md").write_text(COURSE)
    (tmp_path / "1-streams.md").write_text(CHAPTER)
    course_import(directory=tmp_path)
    live = Live(live_server_url, cookie_of(learner))

    def complete(frames: list[dict]) -> bool:
        snapshot = [f for f in frames if f["type"] == "sandbox.snapshot" and (f.get("data") or {}).get("streams")]
        return exited("r1")(frames) and len(events_of(frames, "consumed")) >= 3 and bool(snapshot)

    frames = run(
        live.session(
            [{"type": "cell.run", "run": "r1", "course": "redis-course", "chapter": "streams", "cell": "on-redis", "code": CELL}],
            complete,
            timeout=150,
        )
    )
    output = "".join(f["text"] for f in frames if f["type"] == "cell.output")
    exit_frame = next(f for f in frames if f.get("run") == "r1" and f["type"] in ("cell.exit", "cell.error"))
    assert exit_frame == {**exit_frame, "type": "cell.exit", "status": 0}, output
    assert "consumed 3" in output
    produced, consumed = events_of(frames, "produced"), events_of(frames, "consumed")
    assert [json.loads(e["value"]["text"]) for e in produced] == [{"n": "0"}, {"n": "1"}, {"n": "2"}]
    assert {(e["broker"], e["destination"]) for e in produced + consumed} == {("redis", "orders")}
    assert [e["detail"]["id"] for e in consumed] == [e["detail"]["id"] for e in produced]
    assert {e["detail"]["group"] for e in consumed} == {"billing"}
    snapshot = [f["data"] for f in frames if f["type"] == "sandbox.snapshot" and (f.get("data") or {}).get("streams")][-1]
    (orders,) = snapshot["streams"]
    assert orders["name"] == "orders" and orders["length"] == 3 and orders["groups"][0]["name"] == "billing"
