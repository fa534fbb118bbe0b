"""The live WebSocket of a chapter page: sandbox states, cell runs and output, broker events.

Authenticated by the Django session and origin-checked in asgi.py. A
connection joins only its user's group (``user-<id>``, where every state change
of the user's sandboxes is sent); cells and checks run in the user's own sandboxes only. Broker events are
relayed straight from the agent: when the browser is slow, sending blocks, the
relay stops reading, and the agent counts what it could not deliver.
Every frame is in the page's language: each message is handled under the
language cookie the pages use (courseplatform.language).
While Redis is away the connection stays open and says ``live.paused``; once the channel layer has it
in its group again it sends a fresh ``hello`` and ``live.resumed`` (courseplatform/channel_layer.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from channels.db import database_sync_to_async
from django.utils import translation

from courseplatform.language import language_chosen
from courseplatform.metrics import refusal_count
from lessons import selectors as lesson_selectors

from . import agent_client, live_frames, selectors, ws_limits
from .live_cells import RUN_ID, CellRunsConsumer
from .models import Sandbox, State
from .payloads import sandbox_payload, sandbox_payload_localized
from .services.actions import sandbox_ensure, sandbox_extend, sandbox_reset, sandbox_stop
from .services.admission import QueuePlace, SandboxQueued, admission_places
from .services.kept import kept_discard, kept_states_of
from .services.lifecycle import SandboxError
from .services.nodes import sandbox_node_action
from .services.provisioning import sandbox_wait_ready

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
#: Requests that may enqueue work for the Celery worker: limited per user and minute (sandboxes/ws_limits.py).
LIFECYCLE = frozenset({"sandbox.ensure", "sandbox.stop", "sandbox.reset", "sandbox.extend", "sandbox.discard", "sandbox.node"})


class LiveConsumer(CellRunsConsumer):
    async def dispatch(self, message: dict[str, Any]) -> None:
        # Tasks started while handling a message inherit the language with the rest of the context.
        with translation.override(language_chosen(self.scope.get("cookies") or {})):
            await super().dispatch(message)

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            # Accepted only to say why: a close before accept reaches the browser as a bare 403.
            await self.accept()
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.user = user
        self.limits = ws_limits.ConnectionLimits(user_id=user.pk)
        self.groups_joined: set[str] = set()
        self.relays: dict[int, asyncio.Task] = {}
        self.runs: dict[str, asyncio.Event] = {}
        self.tasks: set[asyncio.Task] = set()
        self.ready: dict[str, Sandbox] = {}  # broker -> the user's ready sandbox, while it stays ready
        self.state_changed = asyncio.Event()  # set at every sandbox.state: a run waiting for its broker looks again
        self.cells: dict[tuple[str, str, str], tuple[float, lesson_selectors.RunnableCode]] = {}
        await self._join(f"user-{user.pk}")
        try:
            await self.accept()
            await self._hello()
        except Exception:
            # Channels calls disconnect only after a websocket.disconnect: without this the channel
            # layer would keep the membership (and join it again after every Redis restart).
            await self.disconnect(1011)
            raise

    async def _hello(self) -> None:
        """Everything the page shows of the user's sandboxes, read afresh, and their events relayed."""
        sandboxes, places = await self._sandboxes()
        # Brokers with a sandbox on its way or up: an ensure of one of them is free (it enqueues nothing),
        # so a page that asks for its chapter's brokers on every load does not use up the minute's allowance.
        self.active_brokers = {s.broker for s in sandboxes if s.state != State.STOPPING}
        kept = await database_sync_to_async(kept_states_of)(user_id=self.user.pk)
        await self.send_json(
            {
                "type": "hello",
                "sandboxes": [sandbox_payload(s) for s in sandboxes],
                "kept": kept,
                "queue": [p.as_dict() for p in places],
            }
        )
        ready = {s.pk: s for s in sandboxes if s.state == State.READY}
        self.ready = {b: s for b, s in self.ready.items() if s.pk in ready}
        for pk in [pk for pk in self.relays if pk not in ready]:
            self.relays.pop(pk).cancel()
        for sandbox in ready.values():
            self._relay_start(sandbox)

    async def disconnect(self, code: int) -> None:
        for task in list(getattr(self, "tasks", ())):
            task.cancel()
        for group in getattr(self, "groups_joined", set()):
            await self.channel_layer.group_discard(group, self.channel_name)
        for task in getattr(self, "relays", {}).values():
            task.cancel()
        for interrupt in getattr(self, "runs", {}).values():
            interrupt.set()
        if hasattr(self, "limits"):
            await self.limits.close()

    async def _join(self, group: str) -> None:
        await self.channel_layer.group_add(group, self.channel_name)
        self.groups_joined.add(group)

    @database_sync_to_async
    def _sandboxes(self) -> tuple[list[Sandbox], list[QueuePlace]]:
        """The user's active sandboxes and their places in the admission queue (a reload shows both)."""
        return list(selectors.sandboxes_active(user_id=self.user.pk)), admission_places(user_id=self.user.pk)

    # -- from the browser --------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        """Like the base class, but a frame that is not JSON text is answered, not a crash of the connection,
        and a connection sending faster than its limit has the excess refused before any work is done."""
        try:
            self.limits.frame()
        except ws_limits.Refused as exc:
            refusal_count(reason=exc.reason, user_id=self.user.pk, logged=self.limits.log_due(exc.reason))
            frame = ws_limits.over_rate_frame(self.limits, text_data, exc, run_id=RUN_ID)
            if frame is not None:
                await self.send_json(frame)
            return
        if text_data is None:
            await self.send_json({"type": "error", "message": str(live_frames.NOT_TEXT)})
            return
        try:
            content = await self.decode_json(text_data)
        except ValueError:
            await self.send_json({"type": "error", "message": str(live_frames.NOT_JSON)})
            return
        await self.receive_json(content, **kwargs)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if not isinstance(content, dict):
            await self.send_json({"type": "error", "message": str(live_frames.NOT_AN_OBJECT)})
            return
        handlers = {
            "sandbox.ensure": self.on_ensure,
            "sandbox.stop": self.on_lifecycle,
            "sandbox.reset": self.on_lifecycle,
            "sandbox.extend": self.on_lifecycle,
            "sandbox.discard": self.on_lifecycle,
            "sandbox.node": self.on_node,
            "cell.run": self.on_run,
            "cell.interrupt": self.on_interrupt,
            "exercise.check": self.on_check,
        }
        handler = handlers.get(str(content.get("type")))
        if handler is None:
            await self.send_json({"type": "error", "message": live_frames.UNKNOWN_TYPE.format(type=repr(content.get("type")))})
            return
        try:
            kind = content.get("type")
            if kind in LIFECYCLE and not (kind == "sandbox.ensure" and content.get("broker") in self.active_brokers):
                await self.limits.lifecycle()
            await handler(content)
        except ws_limits.Refused as exc:
            refusal_count(reason=exc.reason, user_id=self.user.pk, logged=self.limits.log_due(exc.reason))
            await self._refuse(content, exc)
        except SandboxError as exc:
            await self.send_json({"type": "error", "message": str(exc), "run": content.get("run")})

    async def _refuse(self, content: Any, refused: ws_limits.Refused) -> None:
        await self.send_json(ws_limits.refusal_frame(content, refused, run_id=RUN_ID))

    async def on_ensure(self, content: dict[str, Any]) -> None:
        """sandbox.ensure: the sandbox's state, or (the platform full) the learner's place in the queue."""
        try:
            await self._ensure(str(content.get("broker")))
        except SandboxQueued as queued:
            await self.send_json(live_frames.queue_frame(queued.place.as_dict()))

    async def _ensure(self, broker: str) -> Sandbox:
        sandbox = await database_sync_to_async(sandbox_ensure)(user_id=self.user.pk, broker=broker)
        await self.send_json({"type": "sandbox.state", "sandbox": sandbox_payload(sandbox)})
        return sandbox

    async def on_lifecycle(self, content: dict[str, Any]) -> None:
        """sandbox.stop, .reset, .extend or .discard (the kept data): the service of that name, for this user's broker."""
        action = {
            "sandbox.stop": sandbox_stop,
            "sandbox.reset": sandbox_reset,
            "sandbox.extend": sandbox_extend,
            "sandbox.discard": kept_discard,
        }
        await database_sync_to_async(action[content["type"]])(user_id=self.user.pk, broker=str(content.get("broker")))

    async def on_node(self, content: dict[str, Any]) -> None:
        """sandbox.node {broker, node, action}: stop or start one broker of this user's cluster sandbox.

        Beside the receive loop: a clean stop takes seconds, and cells keep running meanwhile.
        """
        broker, node, action = str(content.get("broker")), content.get("node"), str(content.get("action"))
        frame = {"type": "sandbox.node", "broker": broker, "node": node, "action": action}

        async def act() -> None:
            try:
                result = await sandbox_node_action(user_id=self.user.pk, broker=broker, node=node, action=action)
            except (SandboxError, agent_client.AgentUnavailable, ConnectionError, TimeoutError) as exc:
                await self.send_json({**frame, "error": str(exc)})
                return
            await self.send_json({**frame, **result})

        self._spawn(act())

    async def _ready_sandbox(self, broker: str) -> Sandbox:
        """The user's ready sandbox of ``broker``: from this connection's memory when it knows one."""
        known = self.ready.get(broker)
        if known is not None:
            return known
        sandbox = await self._ensure(broker)  # queued: SandboxQueued, said as the cell's error
        if sandbox.state != State.READY:
            sandbox = await sandbox_wait_ready(sandbox_id=sandbox.pk, changed=self.state_changed)
        self.ready[broker] = sandbox
        return sandbox

    # -- relaying the agent's events -----------------------------------------

    def _relay_start(self, sandbox: Sandbox) -> None:
        task = self.relays.get(sandbox.pk)
        if task is None or task.done():
            self.relays[sandbox.pk] = asyncio.ensure_future(self._relay(sandbox))

    async def _relay(self, sandbox: Sandbox) -> None:
        # Sending blocks while the browser is slow, so the relay stops reading and the agent counts what it drops.
        async with contextlib.aclosing(live_frames.sandbox_frames(sandbox=sandbox)) as frames:
            async for frame in frames:
                await self.send_json(frame)

    # -- from tasks, through the channel layer --------------------------------

    async def layer_down(self, event: dict[str, Any]) -> None:
        """Redis is away (courseplatform/channel_layer.py): states cannot reach this page until it is back.
        Runs, their output and broker events come straight from the agents and go on."""
        await self.send_json({"type": "live.paused"})

    async def layer_up(self, event: dict[str, Any]) -> None:
        """Redis is back and this connection in its group again: what was broadcast meanwhile is lost, so
        the page gets its state afresh."""
        self.state_changed.set()
        await self._hello()
        await self.send_json({"type": "live.resumed"})

    async def sandbox_queue(self, event: dict[str, Any]) -> None:
        await self.send_json(live_frames.queue_frame(event["queue"]))

    async def sandbox_state(self, event: dict[str, Any]) -> None:
        payload = sandbox_payload_localized(event["sandbox"])
        self.state_changed.set()
        await self.send_json({"type": "sandbox.state", "sandbox": payload})
        if payload.get("state") in (State.REQUESTED, State.PROVISIONING, State.READY):
            self.active_brokers.add(payload.get("broker"))
        else:
            self.active_brokers.discard(payload.get("broker"))
        if payload.get("state") == State.READY and payload["id"] not in self.relays:
            sandbox = await database_sync_to_async(selectors.sandbox_of_user)(user_id=self.user.pk, sandbox_id=payload["id"])
            if sandbox is not None:
                self._relay_start(sandbox)
        elif payload.get("state") in (State.STOPPED, State.FAILED, State.STOPPING):
            self.ready = {b: s for b, s in self.ready.items() if s.pk != payload["id"]}
            task = self.relays.pop(payload["id"], None)
            if task is not None:
                task.cancel()

    async def sandbox_kept(self, event: dict[str, Any]) -> None:
        """What the user's stopped brokers keep for their next start, and a message about it (source text) if any."""
        frame: dict[str, Any] = {"type": "sandbox.kept", "kept": event["kept"]}
        if event.get("message"):
            frame["message"] = translation.gettext(event["message"]).format(**event.get("params", {}))
        await self.send_json(frame)
