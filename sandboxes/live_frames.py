"""Frames of the live page made from the agent's messages: cell output, setup cells' runs, the broker's events.

The consumer sends what these build; nothing here knows the WebSocket.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

from django.utils.translation import gettext_lazy

from . import agent_client, cell_runs
from .activity import activity_note
from .models import Sandbox
from .services.lifecycle import SandboxError
from .services.provisioning import sandbox_address

Send = Callable[[dict[str, Any]], Awaitable[None]]

# What the live socket says to the learner when it refuses or cannot do something.
NO_SUCH_CELL = gettext_lazy("Такой ячейки нет в этой главе.")
NO_SUCH_EXERCISE = gettext_lazy("Такого упражнения нет в этой главе.")
CODE_TOO_LONG = gettext_lazy("Код ячейки слишком длинный.")
SANDBOX_SILENT = gettext_lazy("Песочница не отвечает. Запустите её снова.")
NOT_AN_OBJECT = gettext_lazy("Ожидался объект JSON.")
NOT_TEXT = gettext_lazy("Ожидался текстовый кадр с объектом JSON.")
NOT_JSON = gettext_lazy("Кадр — не JSON.")
UNKNOWN_TYPE = gettext_lazy("Неизвестный тип сообщения: {type}.")
BAD_RUN_ID = gettext_lazy("Номер запуска (run) — от 1 до 64 латинских букв, цифр или знаков -_.:")
RUN_ID_TAKEN = gettext_lazy("Запуск с таким номером (run) уже идёт.")
NOT_YOUR_COURSE = gettext_lazy("Черновики глав курса запускают только его преподаватели.")


def learner_message(exc: Exception) -> str:
    """What the learner reads about a failed run or check: a sandbox error as it is, never an agent's socket path."""
    return str(exc) if isinstance(exc, SandboxError) else str(SANDBOX_SILENT)


def queue_frame(place: dict[str, Any]) -> dict[str, Any]:
    """The ``sandbox.queue`` frame: the learner's ``place`` in the admission queue for ``broker`` (null once
    they left it) with ``estimate_s`` and its ``basis`` (services/admission.py), or an ``error`` when their turn
    came but the start was refused. The page words it (static/js/sandbox-status.js)."""
    frame = {"type": "sandbox.queue", "broker": place.get("broker"), "place": place.get("place")}
    frame.update({k: place[k] for k in ("estimate_s", "basis", "error") if k in place})
    return frame


def output_frame(run: str | None, message: dict[str, Any]) -> dict[str, Any]:
    """The ``cell.output`` frame of an agent's output message; past the head of a long output it carries
    the tail's fields too (``tail``, and ``skipped`` lines and characters left out before its text)."""
    frame = {"type": "cell.output", "run": run, "stream": message.get("stream"), "text": message.get("text", "")}
    frame.update({k: message[k] for k in ("tail", "skipped", "skipped_chars") if k in message})
    return frame


def setup_relay(send: Send, **about: Any) -> cell_runs.OnSetup:
    """Frames for the setup cells run before a cell or check: ``cell.setup`` names the cell and its own
    run id, then its output and exit come as ``cell.output``/``cell.exit`` of that id."""
    setup_runs: dict[str, str] = {}

    async def relay(setup: cell_runs.Setup, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "start":
            setup_runs[setup.key] = f"setup-{uuid.uuid4().hex}"
            await send({"type": "cell.setup", **about, "cell": setup.key, "setup_run": setup_runs[setup.key]})
        elif kind == "exit":
            await send(
                {
                    "type": "cell.exit",
                    "run": setup_runs.get(setup.key),
                    **{k: message.get(k) for k in ("status", "reason", "duration_ms", "truncated")},
                }
            )
        else:
            await send(output_frame(setup_runs.get(setup.key), message))

    return relay


async def sandbox_frames(*, sandbox: Sandbox) -> AsyncGenerator[dict[str, Any], None]:
    """The sandbox's ``sandbox.event`` and ``sandbox.snapshot`` frames, straight from its agent, until it goes.

    The agent is read only as fast as the frames are taken, so a slow page makes
    the agent count what it could not deliver (``dropped``) instead of queueing it.
    """
    with contextlib.suppress(agent_client.AgentUnavailable, ConnectionError):
        async for message in agent_client.subscribe(await sandbox_address(sandbox=sandbox)):
            if message.get("type") == "events":
                if message.get("events"):
                    activity_note(sandbox)  # messages moving are activity too: the idle clock starts again
                yield {
                    "type": "sandbox.event",
                    "sandbox": sandbox.pk,
                    "broker": sandbox.broker,
                    "events": message["events"],
                    "dropped": message.get("dropped", 0),
                }
            elif message.get("type") == "snapshot":
                yield {"type": "sandbox.snapshot", "sandbox": sandbox.pk, "broker": sandbox.broker, "data": message["data"]}
