"""The live WebSocket's cells and exercise checks: runs in the learner's own sandbox, their output as frames.

The base of :class:`sandboxes.consumers.LiveConsumer`, which keeps the connection, the sandboxes'
lifecycle and the relay of broker events; this part needs from it only a ready sandbox of a broker
(``_ready_sandbox``), the relay's start and a way to run work beside the receive loop.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Coroutine
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from lessons import selectors as lesson_selectors
from lessons.exercises import exercise_check_record
from lessons.teaching import course_draft_allowed

from . import agent_client, cell_runs, live_frames, ws_limits
from .activity import activity_note
from .metrics import cell_round_trip_observe
from .models import Sandbox
from .services.lifecycle import SandboxError

log = logging.getLogger(__name__)

RUN_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
MAX_CODE_CHARS = 100_000
MAX_DRAFT_TIMEOUT_S = 300
CELL_CACHE_S = 30


class CellRunsConsumer(AsyncJsonWebsocketConsumer):
    """cell.run, cell.interrupt and exercise.check; the connection's state is set up by the subclass's connect."""

    user: Any
    limits: ws_limits.ConnectionLimits
    ready: dict[str, Sandbox]
    runs: dict[str, asyncio.Event]
    tasks: set[asyncio.Task]
    cells: dict[tuple[str, str, str], tuple[float, lesson_selectors.RunnableCode]]

    async def _ready_sandbox(self, broker: str) -> Sandbox:
        raise NotImplementedError

    def _relay_start(self, sandbox: Sandbox) -> None:
        raise NotImplementedError

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run work beside the receive loop, keeping a reference so it is neither lost nor left running."""
        task = asyncio.ensure_future(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def on_run(self, content: dict[str, Any]) -> None:
        began = time.monotonic()
        run_id = str(content.get("run", ""))
        if not RUN_ID.match(run_id):
            await self.send_json({"type": "error", "message": str(live_frames.BAD_RUN_ID)})
            return
        if content.get("draft"):
            if not await database_sync_to_async(course_draft_allowed)(slug=str(content.get("course", "")), user=self.user):
                await self.send_json({"type": "cell.error", "run": run_id, "message": str(live_frames.NOT_YOUR_COURSE)})
                return
            cell: lesson_selectors.RunnableCode | None = self._draft_cell(content)
        else:
            cell = await self._cell(str(content.get("course")), str(content.get("chapter")), str(content.get("cell")))
        if cell is None:
            await self.send_json({"type": "cell.error", "run": run_id, "message": str(live_frames.NO_SUCH_CELL)})
            return
        code = content.get("code", cell.code)
        if not isinstance(code, str) or len(code) > MAX_CODE_CHARS:
            await self.send_json({"type": "cell.error", "run": run_id, "message": str(live_frames.CODE_TOO_LONG)})
            return
        if run_id in self.runs:
            await self.send_json({"type": "error", "message": str(live_frames.RUN_ID_TAKEN)})
            return
        # One run of a cell at a time, as in Jupyter: a second Run of a running cell must not start a
        # parallel copy nor kill the first behind the learner's back.
        key = (
            ("draft", run_id)
            if content.get("draft")
            else ("cell", str(content.get("course")), str(content.get("chapter")), str(content.get("cell")))
        )
        known = self.ready.get(cell.broker)
        # The agent's socket opens while the slot is asked of Redis; the request goes out once the slot is held.
        opening = cell_runs.Opening(known) if known is not None else None
        try:
            slot = await self.limits.run_begin(cell=key)
        except BaseException:
            if opening is not None:
                opening.close()
            raise
        interrupt = asyncio.Event()
        self.runs[run_id] = interrupt
        self._spawn(self._run(run_id, cell, code, interrupt, slot, began=began, opening=opening))

    async def _cell(self, course: str, chapter: str, cell: str) -> lesson_selectors.RunnableCode | None:
        """A cell's code and limits, remembered briefly: running a cell again costs no query."""
        key = (course, chapter, cell)
        hit = self.cells.get(key)
        if hit is not None and time.monotonic() - hit[0] < CELL_CACHE_S:
            return hit[1]
        found = await database_sync_to_async(lesson_selectors.cell_runnable)(course=course, chapter=chapter, cell=cell)
        if found is not None:
            self.cells[key] = (time.monotonic(), found)
        return found

    async def _run(
        self,
        run_id: str,
        cell: lesson_selectors.RunnableCode,
        code: str,
        interrupt: asyncio.Event,
        slot: ws_limits.RunSlot,
        *,
        began: float,
        opening: cell_runs.Opening | None = None,
    ) -> None:
        async def forward(message: dict[str, Any]) -> None:
            await self.send_json(live_frames.output_frame(run_id, message))

        on_setup = live_frames.setup_relay(self.send_json, run=run_id)
        try:
            sandbox = await self._ready_sandbox(cell.broker)
            opened, opening = (await opening.take(sandbox) if opening is not None else None), None
            try:
                result = await cell_runs.cell_run(
                    sandbox=sandbox,
                    cell=cell,
                    code=code,
                    on_output=forward,
                    on_setup=on_setup,
                    interrupt=interrupt,
                    opened=opened,
                )
            except agent_client.AgentUnavailable:
                # The remembered sandbox went away (stopped, reaped): ask for it afresh, once.
                self.ready.pop(cell.broker, None)
                sandbox = await self._ready_sandbox(cell.broker)
                result = await cell_runs.cell_run(
                    sandbox=sandbox, cell=cell, code=code, on_output=forward, on_setup=on_setup, interrupt=interrupt
                )
            self._relay_start(sandbox)
            activity_note(sandbox)  # beside the exit, not before it
            await self.send_json(
                {
                    "type": "cell.exit",
                    "run": run_id,
                    **{k: result.get(k) for k in ("status", "reason", "duration_ms", "truncated", "hint")},
                }
            )
            cell_round_trip_observe(
                sandbox=sandbox, user_id=self.user.pk, seconds=time.monotonic() - began, status=result.get("status")
            )
        except (SandboxError, agent_client.AgentUnavailable) as exc:
            log.info("cell run ended without an exit", extra={"user_id": self.user.pk, "broker": cell.broker, "error": str(exc)})
            await self.send_json({"type": "cell.error", "run": run_id, "message": live_frames.learner_message(exc)})
        finally:
            if opening is not None:
                opening.close()  # the run ended before it took it (its sandbox could not be had, say)
            self.runs.pop(run_id, None)
            await slot.end()

    def _draft_cell(self, content: dict[str, Any]) -> lesson_selectors.RunnableCode:
        """An instructor of the draft's course may run a cell of an unsaved draft: any code, on one of their
        own brokers, counted against their own limits like any run (self.limits)."""
        broker = str(content.get("broker"))
        try:
            timeout = max(1, min(int(content.get("timeout", 30)), MAX_DRAFT_TIMEOUT_S))
        except (TypeError, ValueError):
            timeout = 30
        return lesson_selectors.RunnableCode(broker, str(content.get("code", "")), timeout)

    async def on_interrupt(self, content: dict[str, Any]) -> None:
        interrupt = self.runs.get(str(content.get("run")))
        if interrupt is not None:
            interrupt.set()

    async def on_check(self, content: dict[str, Any]) -> None:
        key = str(content.get("exercise"))
        check = await database_sync_to_async(lesson_selectors.exercise_check_runnable)(
            course=str(content.get("course")), chapter=str(content.get("chapter")), exercise=key
        )
        if check is None:
            await self.send_json(
                {"type": "exercise.result", "exercise": key, "passed": False, "reason": str(live_frames.NO_SUCH_EXERCISE)}
            )
            return
        slot = await self.limits.run_begin(cell=("check", key))
        self._spawn(self._check(key, check, slot))

    async def _check(self, key: str, check: lesson_selectors.RunnableCode, slot: ws_limits.RunSlot) -> None:
        async def ignore(_: dict[str, Any]) -> None:
            return None

        try:
            sandbox = await self._ready_sandbox(check.broker)
            on_setup = live_frames.setup_relay(self.send_json, exercise=key)
            result = await cell_runs.cell_run(sandbox=sandbox, cell=check, op="check", on_output=ignore, on_setup=on_setup)
            passed, reason = await database_sync_to_async(exercise_check_record)(
                user=self.user, exercise=check.exercise, result=result
            )
        except (SandboxError, agent_client.AgentUnavailable) as exc:
            passed, reason = False, live_frames.learner_message(exc)  # not an attempt: the work was not looked at
        finally:
            await slot.end()
        await self.send_json({"type": "exercise.result", "exercise": key, "passed": passed, "reason": reason})
