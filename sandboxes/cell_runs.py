"""Running a chapter's cell on a learner's broker: the chapter's setup cells first, once per broker life.

The one place that decides whether a setup must run. The live page, the
exercise check and the course walk test all run cells through ``cell_run``.
Which setups a cell needs is lesson knowledge (``lessons.selectors``); whether
one has already run is a record of the broker's life: its key holds the unit's
name and the moment it became ready, so a reset (a new sandbox, a new unit) or
a restarted unit starts with no setup run, by construction.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from asgiref.sync import async_to_sync
from django.core.cache import cache
from django.utils.translation import gettext, gettext_noop

from . import agent_client
from .models import Sandbox
from .services.lifecycle import SandboxError, unit_name
from .services.provisioning import sandbox_address, sandbox_socket

#: How long a "setup ran" record is kept: longer than a sandbox lives in practice. Should it
#: expire under a live broker, the setup runs once more, and setups are written to be re-runnable.
DONE_TTL_S = 7 * 24 * 3600
#: A setup being run elsewhere (another tab) is waited for this much longer than its own limit.
LOCK_SLACK_S = 30
WAIT_EVERY_S = 0.2
SETUP_FAILED = gettext_noop(
    "Подготовка главы не удалась (ячейка подготовки «{key}»: {outcome}), поэтому эта ячейка не запускалась. "
    "Вывод подготовки — в свёрнутом блоке «Подготовка». Сбросьте песочницу или запустите ячейку подготовки сами."
)

OnMessage = Callable[[dict[str, Any]], Awaitable[None]]


class Setup(Protocol):
    """A setup cell as ``lessons.selectors.SetupCode`` gives it."""

    @property
    def key(self) -> str: ...
    @property
    def code(self) -> str: ...
    @property
    def timeout(self) -> int: ...
    @property
    def scope(self) -> str: ...


class Runnable(Protocol):
    """A cell or check as ``lessons.selectors.RunnableCode`` gives it."""

    @property
    def code(self) -> str: ...
    @property
    def timeout(self) -> int: ...
    @property
    def setups(self) -> Sequence[Setup]: ...
    @property
    def as_setup(self) -> Setup | None: ...


OnSetup = Callable[[Setup, dict[str, Any]], Awaitable[None]]


class SetupFailed(SandboxError):
    """A setup cell did not succeed, so the cell that needed it was not run."""

    def __init__(self, setup: Setup, result: dict[str, Any]) -> None:
        self.setup = setup
        self.result = result
        reason = result.get("reason")
        if reason == "timeout":
            outcome = gettext("не уложилась в {s} с").format(s=setup.timeout)
        elif reason == "interrupted":
            outcome = gettext("прервана")
        elif reason == "not-ready":
            outcome = gettext("брокер не был готов: {error}").format(error=result.get("error") or "—")
        elif reason == "memory":
            outcome = gettext("не хватило памяти")
        elif reason == "output":
            outcome = gettext("вывела слишком много")
        elif reason == "killed":
            outcome = gettext("процесс остановлен сигналом {signal}").format(signal=-int(result.get("status") or 0))
        else:
            outcome = gettext("код завершения {status}").format(status=result.get("status"))
        super().__init__(gettext(SETUP_FAILED).format(key=setup.key, outcome=outcome))


def broker_life(sandbox: Sandbox) -> str:
    """What names one life of a broker: its unit, and when that unit became ready."""
    ready = sandbox.ready_at.timestamp() if sandbox.ready_at else 0.0
    return f"{sandbox.unit or unit_name(sandbox)}@{ready:.6f}"


def _record_key(sandbox: Sandbox, setup: Setup) -> str:
    digest = hashlib.sha256(f"{setup.scope}\0{setup.key}\0{setup.code}".encode()).hexdigest()[:32]
    return f"setup-ran:{broker_life(sandbox)}:{digest}"


#: Records this process has seen set. A life's record never becomes unset (a reset is a new life),
#: so remembering it spares a Redis round trip on every run after the first.
_known_done: set[str] = set()


async def setup_ran(*, sandbox: Sandbox, setup: Setup) -> bool:
    """Whether ``setup`` has run successfully on this life of the sandbox's broker."""
    key = _record_key(sandbox, setup)
    if key in _known_done:
        return True
    if await cache.aget(key):
        _remember(key)
        return True
    return False


def _remember(key: str) -> None:
    if len(_known_done) > 50_000:
        _known_done.clear()
    _known_done.add(key)


async def _setup_record(sandbox: Sandbox, setup: Setup) -> None:
    key = _record_key(sandbox, setup)
    await cache.aset(key, 1, timeout=DONE_TTL_S)
    _remember(key)


#: Where each broker life's agent is, as sandbox_address found it: a run does not wait for a thread to learn it
#: again (about 0.3 ms of a 5 ms round trip). Forgotten when the agent does not answer there (gone, moved).
_addresses: dict[str, agent_client.Address] = {}


async def _agent_address(sandbox: Sandbox) -> tuple[str, agent_client.Address]:
    key = f"{sandbox.pk}:{broker_life(sandbox)}"
    address = _addresses.get(key)
    if address is None:
        address = await sandbox_address(sandbox=sandbox)
        if len(_addresses) > 50_000:
            _addresses.clear()
        _addresses[key] = address
    return key, address


async def _agent_run(sandbox: Sandbox, opened: agent_client.Connection | None = None, **run: Any) -> dict[str, Any]:
    """agent_client.run at the sandbox's agent, its address remembered for the broker's life."""
    key, address = await _agent_address(sandbox)
    try:
        return await agent_client.run(address, opened=opened, **run)
    except agent_client.AgentUnavailable:
        _addresses.pop(key, None)
        raise


class Opening:
    """A connection to a sandbox's agent opened while the run waits for its slot (ws_limits, a Redis round trip),
    so that the run's request goes out as soon as the slot is held; ``take`` it for that sandbox, or ``close`` it."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.task = asyncio.ensure_future(self._open())

    async def _open(self) -> agent_client.Connection:
        _, address = await _agent_address(self.sandbox)
        return await agent_client.connect(address)

    async def take(self, sandbox: Sandbox) -> agent_client.Connection | None:
        """The connection, if it opened and is to ``sandbox``'s agent (otherwise the run opens its own)."""
        try:
            opened = await self.task
        except (agent_client.AgentUnavailable, OSError):
            return None  # the run opens its own, and says what went wrong
        if sandbox.pk != self.sandbox.pk or broker_life(sandbox) != broker_life(self.sandbox):
            opened[1].close()
            return None
        return opened

    def close(self) -> None:
        """Unused: the connection, open or still opening, goes."""
        if not self.task.done():
            self.task.cancel()
        elif not self.task.cancelled() and self.task.exception() is None:
            self.task.result()[1].close()


async def _setup_ensure(sandbox: Sandbox, setup: Setup, *, on_setup: OnSetup, interrupt: asyncio.Event | None) -> None:
    """Run ``setup`` unless it ran on this broker life; only one run at a time however many tabs ask."""
    if await setup_ran(sandbox=sandbox, setup=setup):
        return
    lock = _record_key(sandbox, setup) + ":running"
    deadline = time.monotonic() + setup.timeout + LOCK_SLACK_S
    while not await cache.aadd(lock, 1, timeout=setup.timeout + LOCK_SLACK_S):
        await asyncio.sleep(WAIT_EVERY_S)
        if await setup_ran(sandbox=sandbox, setup=setup):
            return
        if time.monotonic() > deadline:
            break  # the other run's lock outlived its limit: its holder is gone
    try:
        if await setup_ran(sandbox=sandbox, setup=setup):
            return

        async def forward(message: dict[str, Any]) -> None:
            await on_setup(setup, message)

        await on_setup(setup, {"type": "start"})
        result = await _agent_run(
            sandbox,
            code=setup.code,
            timeout=setup.timeout,
            on_message=forward,
            interrupt=interrupt,
        )
        await on_setup(setup, result)
        if result.get("status") != 0:
            raise SetupFailed(setup, result)
        await _setup_record(sandbox, setup)
    finally:
        await cache.adelete(lock)


async def cell_run(
    *,
    sandbox: Sandbox,
    cell: Runnable,
    on_output: OnMessage,
    on_setup: OnSetup,
    code: str | None = None,
    op: str = "run",
    interrupt: asyncio.Event | None = None,
    opened: agent_client.Connection | None = None,
) -> dict[str, Any]:
    """Run ``cell`` (or ``code`` in its place) on the sandbox's broker; returns the agent's exit message.

    First every setup the cell needs that has not run on this broker life runs,
    in order; ``on_setup(setup, message)`` hears a ``{"type": "start"}``, then
    its output messages, then its exit message. A setup that fails raises
    SetupFailed and the cell is not run. A setup cell run by hand that
    succeeds counts as its one run.
    """
    if opened is not None:
        for setup in cell.setups:
            if not await setup_ran(sandbox=sandbox, setup=setup):
                opened[1].close()  # opened for a run at once; a setup may take longer than an agent waits for a request
                opened = None
                break
    for setup in cell.setups:
        await _setup_ensure(sandbox, setup, on_setup=on_setup, interrupt=interrupt)
    result = await _agent_run(
        sandbox,
        opened,
        code=cell.code if code is None else code,
        timeout=cell.timeout,
        on_message=on_output,
        interrupt=interrupt,
        op=op,
    )
    if cell.as_setup is not None and op == "run" and result.get("status") == 0:
        await _setup_record(sandbox, cell.as_setup)
    return result


def code_run_collected(*, sandbox: Sandbox, code: str, timeout: int, op: str = "run") -> dict[str, Any]:
    """Run ``code`` alone (no setups) and wait; the agent's exit message with the whole ``output`` in it."""
    output: list[str] = []

    async def collect(message: dict[str, Any]) -> None:
        output.append(str(message.get("text", "")))

    result = async_to_sync(agent_client.run)(
        sandbox_socket(sandbox=sandbox), code=code, timeout=timeout, on_message=collect, op=op
    )
    result["output"] = "".join(output) + str(result.get("output", ""))
    return result
