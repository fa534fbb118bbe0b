"""A page that reads slowly misses messages, and is told exactly how many: "N not shown".

The panel's events come from the learner's own agent through the live WebSocket; the web
side reads the agent only as fast as the page takes frames (live_frames.sandbox_frames), so a
page that falls behind makes the agent count what it could not deliver instead of holding it.
Here one of the learner's two pages stops reading while a cell publishes a burst far bigger
than the buffers between them, then reads again: every published message is either shown to
it or counted in a ``dropped``, none twice and none lost without a word. The same holds for the
other page, which keeps reading (on a busy machine it may miss some too, and is told).
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from websockets.asyncio.client import connect

from lessons.course_io import course_import
from tests.aio import run
from tests.sandboxes.test_live_stream import MINI, Live, cookie_of, exited

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

#: Messages of about 2 KB: about 40 MB in the panel's JSON, far more than TCP's buffers hold between a page and the server.
COUNT = 20_000
PUBLISH = f"""
import asyncio, os, nats
async def main():
    nc = await nats.connect(os.environ["NATS_URL"])
    for i in range({COUNT}):
        await nc.publish("flood", b"m%06d-" % i + b"x" * 2000)
    await nc.flush()
    await nc.close()
asyncio.run(main())
print("published")
"""


def _cell(run_id: str, code: str) -> dict:
    return {"type": "cell.run", "run": run_id, "course": "mini", "chapter": "live", "cell": "on-nats", "code": code}


def _count(frame: dict) -> tuple[int, int]:
    """(flood events shown, messages counted as not shown) in one frame."""
    if frame.get("type") != "sandbox.event":
        return 0, 0
    return sum(1 for e in frame["events"] if e["destination"] == "flood"), frame.get("dropped", 0)


def test_a_page_that_falls_behind_is_told_how_many_messages_it_did_not_see(
    celery_worker, live_server_url, learner, units_cleanup
):
    course_import(directory=MINI)
    driver = Live(live_server_url, cookie_of(learner))
    # The learner's sandbox, ready (a first run starts it).
    frames = run(driver.session([_cell("start", "print('up')")], exited("start"), timeout=150))
    assert any(f["type"] == "cell.exit" and f.get("run") == "start" for f in frames), frames[-5:]

    async def scenario() -> tuple[int, int, int, int, float]:
        headers = {"Cookie": f"sessionid={driver.cookie}"}
        # max_queue=1: the client library stops reading the socket as soon as one frame waits, as a busy tab does.
        async with connect(driver.url, origin=driver.origin, additional_headers=headers, max_size=None, max_queue=1) as slow:
            await asyncio.sleep(2)  # subscribed to the sandbox's events
            keeping_up: list[dict] = []
            busy = asyncio.Event()

            def complete(frames: list[dict]) -> bool:
                return exited("flood")(frames) and sum(sum(_count(f)) for f in frames) >= COUNT

            # Bounded: the slow page is not read meanwhile, and the server hangs up on a page silent for about 40 s.
            reader = asyncio.create_task(driver.session([_cell("flood", PUBLISH)], complete, 35, keeping_up, busy))
            await reader
            ended = next(f for f in keeping_up if f.get("run") == "flood" and f["type"] in ("cell.exit", "cell.error"))
            assert ended["type"] == "cell.exit" and ended["status"] == 0, ended
            # The reading page listened until every message was shown to it or counted.
            shown = sum(_count(f)[0] for f in keeping_up)
            dropped_fast = sum(_count(f)[1] for f in keeping_up)
            # Now the slow page reads everything it is still owed, until nothing more comes for a while.
            seen = dropped = 0
            quiet_since = time.monotonic()
            while seen + dropped < COUNT and time.monotonic() - quiet_since < 20:
                try:
                    frame = json.loads(await asyncio.wait_for(slow.recv(), timeout=2))
                except TimeoutError:
                    continue
                quiet_since = time.monotonic()
                s, d = _count(frame)
                seen, dropped = seen + s, dropped + d
            # Anything more than COUNT would be counted twice: read a little longer to see it.
            with_extra = seen + dropped
            try:
                while True:
                    s, d = _count(json.loads(await asyncio.wait_for(slow.recv(), timeout=3)))
                    with_extra += s + d
            except TimeoutError:
                pass
            return seen, dropped, with_extra, shown + dropped_fast, float(dropped_fast)

    seen, dropped, with_extra, fast_total, fast_dropped = run(scenario())
    print(
        f"\nslow page: {seen} shown + {dropped} not shown (of {COUNT}); reading page: {fast_total} ({fast_dropped:.0f} not shown)"
    )
    assert seen + dropped == COUNT, f"{seen} shown + {dropped} counted as not shown != {COUNT} published"
    assert dropped > 0, "the slow page fell behind by nothing: the burst did not outgrow the buffers"
    assert with_extra == COUNT, f"after the count was complete, {with_extra - COUNT} more were shown or counted"
    assert fast_total == COUNT
