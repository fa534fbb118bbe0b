"""Recording a sandbox's activity is a database write, and nothing the learner sees waits for it.

Cells running and messages moving keep a sandbox from its idle timeout (sandboxes/activity.py).
The write used to be awaited on the way: before a cell's exit was sent, and in the relay of the
broker's events, so when the database was slow (in `make bench`, 50 learners producing at once
on a busy box) every page's events stood still for 10 s behind the queued writes. Here another
session holds the sandbox's row, so any write to it waits, as long as the test likes: the page
must still get its cell's output, its exit and its events, while the write is seen waiting; and
once the row is free the write lands.
"""

from __future__ import annotations

import psycopg
import pytest
from django.db import connection

from lessons.course_io import course_import
from sandboxes.models import Sandbox, State
from tests.aio import run
from tests.sandboxes.test_live_stream import MINI, Live, cookie_of, events_of, exited
from tests.services import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

MESSAGES = 20
PUBLISH = f"""
import asyncio, os, nats
async def main():
    nc = await nats.connect(os.environ["NATS_URL"])
    for i in range({MESSAGES}):
        await nc.publish("slow.db", b"m%d" % i)
    await nc.flush()
    await nc.close()
asyncio.run(main())
print("published")
"""

WAITING_WRITES = """
SELECT count(*) FROM pg_stat_activity
WHERE wait_event_type = 'Lock' AND query LIKE 'UPDATE "sandboxes_sandbox"%%' AND datname = current_database()
"""


def _session() -> psycopg.Connection:
    """A Postgres session of the test's own, apart from Django's connection."""
    settings = connection.settings_dict
    return psycopg.connect(
        dbname=settings["NAME"],
        user=settings["USER"],
        password=settings["PASSWORD"],
        host=settings["HOST"],
        port=settings["PORT"],
    )


def _produced(frames: list[dict]) -> list[dict]:
    return [e for e in events_of(frames, "produced") if e["destination"] == "slow.db"]


def _ready(frames: list[dict]) -> bool:
    return any(
        f["type"] == "sandbox.state" and f["sandbox"]["broker"] == "nats" and f["sandbox"]["state"] == "ready" for f in frames
    )


def test_a_slow_database_holds_neither_a_cells_exit_nor_its_broker_events(celery_worker, live_server_url, learner, units_cleanup):
    course_import(directory=MINI)
    page = Live(live_server_url, cookie_of(learner))
    # A sandbox started without a cell: nothing has counted as its activity in the web server yet.
    frames = run(page.session([{"type": "sandbox.ensure", "broker": "nats"}], _ready, timeout=150))
    assert _ready(frames), [f["type"] for f in frames][-5:]
    sandbox = Sandbox.objects.get(user=learner, broker="nats", state=State.READY)
    with _session() as holder:
        # Another session holds the sandbox's row: every write to it waits until this one ends.
        holder.execute('SELECT 1 FROM "sandboxes_sandbox" WHERE id = %s FOR UPDATE', [sandbox.pk])
        cell = {"type": "cell.run", "run": "pub", "course": "mini", "chapter": "live", "cell": "on-nats", "code": PUBLISH}

        def seen_all(frames: list[dict]) -> bool:
            return exited("pub")(frames) and len(_produced(frames)) >= MESSAGES

        frames = run(page.session([cell], seen_all, timeout=60))
        ended = [f for f in frames if f.get("run") == "pub" and f["type"] in ("cell.exit", "cell.error")]
        produced = _produced(frames)
        output = "".join(f.get("text", "") for f in frames if f["type"] == "cell.output" and f.get("run") == "pub")
        # The write was really held up all this while (the test is not vacuous)...
        with _session() as look:
            waiting = look.execute(WAITING_WRITES).fetchone()
        assert waiting is not None and waiting[0] >= 1, "no write to the sandbox's row was waiting: nothing was tested"
        # ...and the page had everything regardless.
        assert ended and ended[0]["type"] == "cell.exit" and ended[0]["status"] == 0, ended or [f["type"] for f in frames][-8:]
        assert "published" in output, output
        assert len(produced) == MESSAGES, len(produced)
        holder.rollback()
    # Once the row is free the write lands: the idle deadline moved on.
    wait_for(
        lambda: Sandbox.objects.get(pk=sandbox.pk).last_activity_at != sandbox.last_activity_at,
        timeout=20,
        what="the activity written once the row was free",
    )
