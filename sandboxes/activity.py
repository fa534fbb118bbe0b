"""A sandbox's activity recorded (its idle clock starts again) without anyone waiting for the write.

Running a cell, messages moving through the broker, a console's request and a key typed in the
terminal all count as activity. Each record is a database write; here there is at most one per
sandbox every ``EVERY_S`` in a process, and it goes on beside the work that caused it, so a slow
database never holds a cell's exit, a page's broker events or a keystroke. (It used to be awaited:
with 50 learners producing at once, every page's events waited 10 s behind 50 such writes queued on
the ASGI server's one database thread; docs/bench.md, "The whole make bench, 2026-12-03".)
"""

from __future__ import annotations

import asyncio
import logging
import time

from channels.db import database_sync_to_async

from .models import Sandbox
from .services.actions import sandbox_touch

log = logging.getLogger(__name__)

#: At most one write per sandbox this often, per process (the idle timeout is counted in minutes).
EVERY_S = 20
#: Past this many sandboxes remembered, those not noted within EVERY_S are forgotten.
REMEMBERED = 4096

_noted: dict[int, float] = {}
_writing: set[asyncio.Task] = set()  # referenced until done: the loop holds tasks only weakly


def activity_note(sandbox: Sandbox) -> None:
    """Count this as activity of ``sandbox``: a write begins in the background when one is due."""
    now = time.monotonic()
    if now - _noted.get(sandbox.pk, -EVERY_S) < EVERY_S:
        return
    if len(_noted) >= REMEMBERED:
        for pk in [pk for pk, at in _noted.items() if now - at >= EVERY_S]:
            del _noted[pk]
    _noted[sandbox.pk] = now
    task = asyncio.ensure_future(_write(sandbox))
    _writing.add(task)
    task.add_done_callback(_writing.discard)


async def _write(sandbox: Sandbox) -> None:
    try:
        await database_sync_to_async(sandbox_touch)(sandbox=sandbox)
    except Exception:  # the next note tries again; what caused this one goes on either way
        _noted.pop(sandbox.pk, None)
        log.warning("sandbox %s: recording its activity failed", sandbox.pk, exc_info=True)
