"""Starting and stopping a sandbox's unit: start, follow the agent until ready or failed, stop, wait from a page.

Provisioning is split in short looks (``sandbox_provision_step``) so a worker
slot is never held while a broker boots; ``sandbox_provision`` strings them
together for callers that need the broker now.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

from asgiref.sync import async_to_sync, sync_to_async
from django.utils.translation import gettext, gettext_lazy, gettext_noop

from sandboxes.brokers import BROKERS

from .. import agent_client
from ..backends import get_backend
from ..backends.base import AgentAddress, UnitSpec
from ..models import Purpose, Sandbox, State
from ..payloads import STAGE_LABELS
from .kept import kept_restore_key, sandbox_unit_release
from .lifecycle import UNKNOWN_BROKER, SandboxError, TransitionRefused, sandbox_transition, unit_name

log = logging.getLogger(__name__)

NOT_READY = gettext_lazy("Песочница ещё не готова: {stage}.")
PROVISION_TIMEOUT_S = 150

# Kept in Sandbox.error as source text and translated when shown, so each reader gets their language.
TOO_SLOW = gettext_noop("Брокер не запустился за отведённое время.")
AGENT_EXITED = gettext_noop("Песочница остановилась во время запуска.")
BROKER_FAILED = gettext_noop("Брокер не запустился.")


class SandboxNotStarted(SandboxError):
    """A throwaway sandbox did not become ready; the message is its error (source text) or a plain note."""


def sandbox_provision_start(*, sandbox_id: int) -> Sandbox:
    """Start the unit (or find it running); returns at once, usually still provisioning."""
    sandbox = Sandbox.objects.get(pk=sandbox_id)
    if sandbox.state not in (State.REQUESTED, State.PROVISIONING):
        return sandbox
    backend = get_backend()
    name = unit_name(sandbox)
    if sandbox.state == State.REQUESTED:
        sandbox.unit = name
        sandbox_transition(sandbox, State.PROVISIONING, stage="starting agent")
    try:
        backend.start(
            UnitSpec(name=name, broker=sandbox.broker, owner=str(sandbox.user_id), restore=kept_restore_key(sandbox=sandbox))
        )
    except Exception as exc:
        log.exception("unit did not start", extra={"sandbox_id": sandbox.pk, "user_id": sandbox.user_id})
        backend.stop(name)
        return sandbox_transition(sandbox, State.FAILED, error=str(exc))
    return sandbox


def sandbox_provision_step(*, sandbox_id: int, started_at: float) -> bool:
    """Look at a starting unit once: record its stage, and finish when it is ready or failed.

    Returns True when provisioning is over (whatever the outcome), False to look again.
    ``started_at`` (epoch seconds) bounds the whole provisioning by PROVISION_TIMEOUT_S.
    """
    sandbox = Sandbox.objects.get(pk=sandbox_id)
    if sandbox.state != State.PROVISIONING:
        return True
    try:
        return _provision_look(sandbox, started_at)
    except TransitionRefused:
        # Stopped (or reset) while starting: whoever moved it on owns the unit now.
        log.info("provisioning overtaken", extra={"sandbox_id": sandbox.pk, "user_id": sandbox.user_id})
        return True


def _provision_look(sandbox: Sandbox, started_at: float) -> bool:
    backend = get_backend()
    name = sandbox.unit or unit_name(sandbox)
    if time.time() - started_at > PROVISION_TIMEOUT_S:
        backend.stop(name)
        sandbox_transition(sandbox, State.FAILED, error=TOO_SLOW)
        return True
    try:
        status = async_to_sync(agent_client.status)(backend.agent_address(name))
    except agent_client.AgentUnavailable:
        if backend.poll(name) is not None:
            sandbox_transition(sandbox, State.FAILED, error=AGENT_EXITED)
            return True
        return False
    if status["stage"] == "failed":
        backend.stop(name)
        sandbox_transition(sandbox, State.FAILED, error=status.get("error") or BROKER_FAILED)
        return True
    if status["ready"]:
        sandbox.connection = status["connection"]
        sandbox_transition(sandbox, State.READY, stage="ready")
        return True
    if status["stage"] != sandbox.stage:
        sandbox_transition(sandbox, State.PROVISIONING, stage=status["stage"])
    return False


def sandbox_provision(*, sandbox_id: int) -> Sandbox:
    """Start the unit and wait here until it is ready or failed (for callers that need the broker now)."""
    started_at = time.time()
    sandbox_provision_start(sandbox_id=sandbox_id)
    while not sandbox_provision_step(sandbox_id=sandbox_id, started_at=started_at):
        time.sleep(0.05)
    return Sandbox.objects.get(pk=sandbox_id)


def sandbox_unit_stop(*, sandbox_id: int, keep: bool = True) -> Sandbox:
    """Stop the unit and mark the sandbox stopped; stopping twice is fine.

    A learner's broker data is kept for their next start unless ``keep`` is False (a reset).
    """
    sandbox = Sandbox.objects.get(pk=sandbox_id)
    if sandbox.state == State.STOPPED:
        return sandbox
    if sandbox.state != State.STOPPING:
        sandbox_transition(sandbox, State.STOPPING)
    sandbox_unit_release(sandbox=sandbox, keep=keep)
    return sandbox_transition(sandbox, State.STOPPED)


def sandbox_socket(*, sandbox: Sandbox) -> AgentAddress:
    """Where the sandbox's agent is (a Unix socket or host:port, with its token)."""
    return get_backend().agent_address(sandbox.unit or unit_name(sandbox))


async def sandbox_address(*, sandbox: Sandbox) -> AgentAddress:
    """:func:`sandbox_socket` from async code: a backend may ask its API for the address (a Pod's IP),
    which must not block the event loop every learner's socket shares."""
    return await sync_to_async(sandbox_socket, thread_sensitive=False)(sandbox=sandbox)


@contextmanager
def sandbox_scratch(*, user_id: int, broker: str) -> Iterator[Sandbox]:
    """A ready throwaway broker of its own for the block, removed on leaving whatever happens.

    Raises SandboxError for an unknown broker, SandboxNotStarted if the broker did not start.
    """
    if broker not in BROKERS:
        raise SandboxError(UNKNOWN_BROKER.format(broker=broker))
    sandbox = Sandbox.objects.create(
        user_id=user_id, broker=broker, purpose=Purpose.VERIFY, state=State.REQUESTED, stage="requested"
    )
    try:
        sandbox = sandbox_provision(sandbox_id=sandbox.pk)
        if sandbox.state != State.READY:
            raise SandboxNotStarted(sandbox.error or "the broker did not start")
        yield sandbox
    finally:
        sandbox_unit_stop(sandbox_id=sandbox.pk)


async def sandbox_wait_ready(*, sandbox_id: int, timeout: float = PROVISION_TIMEOUT_S) -> Sandbox:
    """Wait (without blocking the loop) until the sandbox is ready; raises SandboxError if it fails."""
    from channels.db import database_sync_to_async

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sandbox = await database_sync_to_async(Sandbox.objects.get)(pk=sandbox_id)
        if sandbox.state == State.READY:
            return sandbox
        if sandbox.state not in (State.REQUESTED, State.PROVISIONING):
            if sandbox.error:
                raise SandboxError(gettext(sandbox.error))
            raise SandboxError(NOT_READY.format(stage=gettext(STAGE_LABELS.get(sandbox.stage, sandbox.stage))))
        await asyncio.sleep(0.1)
    raise SandboxError(gettext(TOO_SLOW))
