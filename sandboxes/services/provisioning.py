"""Starting and stopping a sandbox's unit: start, record what its agent reports until ready or failed, stop.

The start is quick (the unit's agent runs, its broker boots on); what the agent
then reports arrives at ``services.readiness``, which holds no worker slot while
it waits and applies each report here (``sandbox_provision_apply``).
``sandbox_provision`` does both for callers that need the broker now.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from asgiref.sync import sync_to_async
from django.utils.translation import gettext, gettext_lazy, gettext_noop

from sandboxes.brokers import BROKERS

from ..backends import get_backend
from ..backends.base import AgentAddress, UnitSpec
from ..metrics import provisioning_observe
from ..models import Purpose, Sandbox, State
from ..payloads import STAGE_LABELS
from .kept import kept_restore_key, sandbox_unit_release
from .lifecycle import UNKNOWN_BROKER, SandboxError, TransitionRefused, sandbox_transition, unit_name
from .quota import sandbox_create_within_quota

log = logging.getLogger(__name__)

NOT_READY = gettext_lazy("Песочница ещё не готова: {stage}.")
PROVISION_TIMEOUT_S = 150
#: A page waiting for its broker reads the record at least this often, broadcasts heard or not.
UNHEARD_CHECK_S = 1.0

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
        backend.stop(name)
        if _stopped_meanwhile(sandbox):
            # The stop removed the starting unit (its agent with it): not a failure of the broker.
            log.info("a stop overtook the start", extra={"sandbox_id": sandbox.pk, "unit": name})
            return sandbox
        log.exception("unit did not start", extra={"sandbox_id": sandbox.pk, "user_id": sandbox.user_id})
        return sandbox_transition(sandbox, State.FAILED, error=str(exc))
    if _stopped_meanwhile(sandbox):
        # A stop (or reset) overtook the start: its worker may have found no unit yet, and the one made
        # since belongs to no live sandbox. Removed here rather than at the next reconcile.
        log.info("a stop overtook the start; unit removed", extra={"sandbox_id": sandbox.pk, "unit": name})
        backend.stop(name)
    return sandbox


def _stopped_meanwhile(sandbox: Sandbox) -> bool:
    sandbox.refresh_from_db(fields=["state"])
    return sandbox.state in (State.STOPPING, State.STOPPED, State.FAILED)


def sandbox_provision_apply(*, sandbox_id: int, status: dict[str, Any]) -> bool:
    """Record one status the starting unit's agent sent: its stage, or the end (ready or failed).

    Returns True when provisioning is over (whatever the outcome, also when a stop overtook it),
    False while the broker still boots.
    """
    sandbox = Sandbox.objects.get(pk=sandbox_id)
    if sandbox.state != State.PROVISIONING:
        return True
    try:
        if status.get("stage") == "failed":
            get_backend().stop(sandbox.unit or unit_name(sandbox))
            sandbox_transition(sandbox, State.FAILED, error=status.get("error") or BROKER_FAILED)
            return True
        if status.get("ready"):
            sandbox.connection = status["connection"]
            sandbox_transition(sandbox, State.READY, stage="ready")
            provisioning_observe(sandbox=sandbox)
            return True
        if status.get("stage") and status["stage"] != sandbox.stage:
            sandbox_transition(sandbox, State.PROVISIONING, stage=status["stage"])
    except TransitionRefused:
        return _overtaken(sandbox)
    return False


def sandbox_provision_lost(*, sandbox_id: int) -> bool:
    """The starting unit's agent does not answer: True (over) if its unit has exited, False to try again."""
    sandbox = Sandbox.objects.get(pk=sandbox_id)
    if sandbox.state != State.PROVISIONING:
        return True
    backend, name = get_backend(), sandbox.unit or unit_name(sandbox)
    if backend.poll(name) is None:
        return False  # running, its socket not open yet
    backend.stop(name)  # what the agent left: its folder, disk, cgroups, network namespace
    try:
        sandbox_transition(sandbox, State.FAILED, error=AGENT_EXITED)
    except TransitionRefused:
        return _overtaken(sandbox)
    return True


def sandbox_provision_expire(*, sandbox_id: int) -> None:
    """Provisioning took longer than PROVISION_TIMEOUT_S: remove the unit and fail the sandbox."""
    sandbox = Sandbox.objects.get(pk=sandbox_id)
    if sandbox.state != State.PROVISIONING:
        return
    get_backend().stop(sandbox.unit or unit_name(sandbox))
    try:
        sandbox_transition(sandbox, State.FAILED, error=TOO_SLOW)
    except TransitionRefused:
        _overtaken(sandbox)


def _overtaken(sandbox: Sandbox) -> bool:
    # Stopped (or reset) while starting: whoever moved it on owns the unit now.
    log.info("provisioning overtaken", extra={"sandbox_id": sandbox.pk, "user_id": sandbox.user_id})
    return True


def sandbox_agent_address(*, sandbox_id: int) -> AgentAddress:
    """Where a starting sandbox's agent listens (looked up by id, for the readiness follower)."""
    return sandbox_socket(sandbox=Sandbox.objects.get(pk=sandbox_id))


def sandbox_provision(*, sandbox_id: int) -> Sandbox:
    """Start the unit and wait here until it is ready or failed (for callers that need the broker now)."""
    # Imported here: the follower calls this module's functions, so this module cannot import it at the top.
    from .readiness import sandbox_follow

    sandbox = sandbox_provision_start(sandbox_id=sandbox_id)
    if sandbox.state == State.PROVISIONING:
        sandbox_follow(sandbox_id=sandbox_id).result(timeout=PROVISION_TIMEOUT_S + 30)
    # The follower returns at once when another holds the sandbox (an adoption that came between the
    # start and the follow): then that one's outcome is awaited here, from the database.
    deadline = time.monotonic() + PROVISION_TIMEOUT_S + 30
    sandbox = Sandbox.objects.get(pk=sandbox_id)
    while sandbox.state == State.PROVISIONING and time.monotonic() < deadline:
        time.sleep(0.2)
        sandbox.refresh_from_db()
    return sandbox


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

    Raises SandboxError for an unknown broker, SandboxNotStarted if the broker did not start or the
    user's quota of sandboxes (quota.py) is spent.
    """
    if broker not in BROKERS:
        raise SandboxError(UNKNOWN_BROKER.format(broker=broker))
    try:
        # Counted against the user's own quota, as their learner sandboxes are.
        sandbox = sandbox_create_within_quota(
            user_id=user_id, broker=broker, purpose=Purpose.VERIFY, state=State.REQUESTED, stage="requested"
        )
    except SandboxError as exc:
        raise SandboxNotStarted(str(exc)) from exc
    try:
        sandbox = sandbox_provision(sandbox_id=sandbox.pk)
        if sandbox.state != State.READY:
            raise SandboxNotStarted(sandbox.error or "the broker did not start")
        yield sandbox
    finally:
        sandbox_unit_stop(sandbox_id=sandbox.pk)


async def sandbox_wait_ready(
    *, sandbox_id: int, timeout: float = PROVISION_TIMEOUT_S, changed: asyncio.Event | None = None
) -> Sandbox:
    """Wait (without blocking the loop) until the sandbox is ready; raises SandboxError if it fails.

    ``changed`` is set when the owner's pages hear a state change (the consumer's ``sandbox.state``):
    then the record is read when something happened, not ten times a second, and only every
    ``UNHEARD_CHECK_S`` besides in case a broadcast went astray.
    """
    from channels.db import database_sync_to_async

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if changed is not None:
            changed.clear()
        sandbox = await database_sync_to_async(Sandbox.objects.get)(pk=sandbox_id)
        if sandbox.state == State.READY:
            return sandbox
        if sandbox.state not in (State.REQUESTED, State.PROVISIONING):
            if sandbox.error:
                raise SandboxError(gettext(sandbox.error))
            raise SandboxError(NOT_READY.format(stage=gettext(STAGE_LABELS.get(sandbox.stage, sandbox.stage))))
        if changed is None:
            await asyncio.sleep(0.1)
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), min(UNHEARD_CHECK_S, max(0.0, deadline - time.monotonic())))
    raise SandboxError(gettext(TOO_SLOW))
