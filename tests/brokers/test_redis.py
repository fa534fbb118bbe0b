"""Redis Streams: XADD and XREADGROUP deliveries reach the tap, without the tap reading as a group."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration
KIND = "redis"


def test_ready_with_the_documented_variable_and_its_version(broker):
    assert broker.env == {"REDIS_URL": "redis://localhost:6379/0"}
    assert broker.version and broker.version.split(".")[0] >= "7"  # XINFO GROUPS' lag needs 7


def test_a_cell_produces_and_a_group_consumes_and_both_are_shown(broker):
    out = broker.cell(
        """
        import os, redis
        r = redis.Redis.from_url(os.environ["REDIS_URL"])
        ids = [r.xadd("orders", {"item": f"book {i}", "qty": i}) for i in range(3)]
        r.xgroup_create("orders", "billing", id="0")
        got = r.xreadgroup("billing", "worker-1", {"orders": ">"}, count=2)
        for _, entries in got:
            r.xack("orders", "billing", *[entry_id for entry_id, _ in entries])
        print(len(got[0][1]), [i.decode() for i in ids])
        """
    )
    count, ids = out.split(" ", 1)
    ids = json.loads(ids.replace("'", '"'))
    assert count == "2"
    for i, entry_id in enumerate(ids):
        event = broker.event(direction="produced", destination="orders", detail__id=entry_id)
        assert json.loads(event["value"]["text"]) == {"item": f"book {i}", "qty": str(i)}
        assert event["timestamp_ms"] == int(entry_id.split("-")[0])
    for entry_id in ids[:2]:
        event = broker.event(direction="consumed", destination="orders", detail__id=entry_id, detail__group="billing")
    # The third entry was not delivered to the group, and the tap took nothing from it.
    assert not broker.events(direction="consumed", destination="orders", detail={"group": "billing", "id": ids[2]})
    assert len(broker.events(direction="produced", destination="orders")) == 3
    snap = broker.snapshot(lambda s: any(st["name"] == "orders" and st["groups"] for st in s.get("streams", [])))
    (orders,) = [s for s in snap["streams"] if s["name"] == "orders"]
    (billing,) = orders["groups"]
    assert (orders["length"], billing["name"], billing["last_delivered_id"], billing["lag"]) == (3, "billing", ids[1], 1)
    assert billing["pending"] == 0 and [c["name"] for c in billing["consumers"]] == ["worker-1"]


def test_config_is_switched_off_for_cells(broker):
    out = broker.cell(
        """
        import os, redis
        r = redis.Redis.from_url(os.environ["REDIS_URL"])
        try:
            r.config_set("dir", "/tmp")
        except redis.ResponseError as exc:
            print("refused", exc)
        """
    )
    assert out.startswith("refused")
