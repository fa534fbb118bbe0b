"""Doing things to sandboxes: ensure one exists, provision, stop, reset, extend, reap, reconcile.

Tasks and the WebSocket consumer call these; every change of state goes
through ``sandbox_transition`` so it is validated and heard by the learner's pages.
What a learner reads (errors, stage and state labels) is Russian source text
translated by gettext in the language of whoever reads it: a worker broadcasts
the source text, and each page's consumer translates it (``sandbox_payload_localized``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from functools import partial
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext, gettext_lazy, gettext_noop

from sandboxes.brokers import BROKERS

from . import agent_client
from .backends import get_backend
from .backends.base import AgentAddress, UnitSpec
from .models import ACTIVE_STATES, TRANSITIONS, Purpose, Sandbox, State

log = logging.getLogger(__name__)

QUOTA_REACHED = gettext_lazy("Запущено песочниц: {n} — это предел. Остановите одну из них, чтобы запустить новую.")
UNKNOWN_BROKER = gettext_lazy("Неизвестный брокер: {broker}.")
NOT_READY = gettext_lazy("Песочница ещё не готова: {stage}.")
PROVISION_TIMEOUT_S = 150

# Kept in Sandbox.error as source text and translated when shown, so each reader gets their language.
TOO_SLOW = gettext_noop("Брокер не запустился за отведённое время.")
AGENT_EXITED = gettext_noop("Песочница остановилась во время запуска.")
BROKER_FAILED = gettext_noop("Брокер не запустился.")
UNIT_GONE = gettext_noop("Песочница больше не работала.")
INTERRUPTED = gettext_noop("Запуск песочницы прервался; запустите её снова.")

STAGE_LABELS = {
    "requested": gettext_noop("в очереди на запуск"),
    "starting agent": gettext_noop("запуск песочницы"),
    "preparing": gettext_noop("подготовка брокера"),
    "starting": gettext_noop("запуск брокера"),
    "waiting": gettext_noop("ожидание брокера"),
    "ready": gettext_noop("готово"),
    "stopping": gettext_noop("остановка"),
    "stopped": gettext_noop("остановлена"),
    "failed": gettext_noop("ошибка"),
}
STATE_LABELS = {
    "requested": gettext_noop("в очереди"),
    "provisioning": gettext_noop("запускается"),
    "ready": gettext_noop("готово"),
    "stopping": gettext_noop("останавливается"),
    "stopped": gettext_noop("остановлена"),
    "failed": gettext_noop("ошибка"),
}
STAGE_PROGRESS = {"requested": 0.05, "starting agent": 0.15, "preparing": 0.3, "starting": 0.5, "waiting": 0.7, "ready": 1.0}


class SandboxError(Exception):
    """A learner-facing error about sandboxes."""


class TransitionRefused(SandboxError):
    """The sandbox is no longer in a state the asked-for one may follow (another request moved it on)."""


def unit_name(sandbox: Sandbox) -> str:
    """The unit's fixed name: the same sandbox always maps to the same unit."""
    return f"{settings.SANDBOX_INSTANCE}-{sandbox.pk}"


def sandbox_payload(sandbox: Sandbox) -> dict[str, Any]:
    """The sandbox as pages see it, its labels and error in the active language."""
    return sandbox_payload_localized(
        {
            "id": sandbox.pk,
            "broker": sandbox.broker,
            "state": sandbox.state,
            "state_label": STATE_LABELS.get(sandbox.state, sandbox.state),
            "stage": sandbox.stage,
            "stage_label": STAGE_LABELS.get(sandbox.stage, sandbox.stage),
            "progress": STAGE_PROGRESS.get(sandbox.stage, 0.0),
            "error": sandbox.error,
            "expires_at": sandbox.expires_at.isoformat() if sandbox.expires_at else None,
        }
    )


def sandbox_payload_localized(payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` with its labels and error translated into the active language (from their source text)."""
    # gettext("") would answer the catalogue's header, so empty stays empty.
    texts = {key: gettext(payload[key]) for key in ("state_label", "stage_label", "error") if payload.get(key)}
    return {**payload, **texts}


def _broadcast(sandbox: Sandbox) -> None:
    layer = get_channel_layer()
    if layer is None or sandbox.user_id is None:
        return
    # Source text on the wire: the consumer of each page translates it for its reader.
    with translation.override(None):
        payload = sandbox_payload(sandbox)
    try:
        async_to_sync(layer.group_send)(f"user-{sandbox.user_id}", {"type": "sandbox.state", "sandbox": payload})
    except Exception:  # a page not hearing a state is not worth failing the task for
        log.warning("could not broadcast sandbox state", extra={"sandbox_id": sandbox.pk}, exc_info=True)


def sandbox_transition(sandbox: Sandbox, state: str, *, stage: str | None = None, error: str = "") -> Sandbox:
    """Move to ``state``, save, and tell the learner's pages; raises TransitionRefused if the row moved on.

    One conditional UPDATE: the row changes only if the database (not this possibly stale copy)
    holds a state from which ``state`` is allowed, so a late provisioning step can never write
    READY over a stop that happened meanwhile. Only the fields a transition owns are written.
    """
    sources = {source for source, targets in TRANSITIONS.items() if state in targets} | {state}
    now = timezone.now()
    fields: dict[str, Any] = {"state": state, "stage": stage if stage is not None else state, "error": error}
    # Set by the caller for this very transition (the unit's name when provisioning starts, the connection when ready).
    fields.update(unit=sandbox.unit, connection=sandbox.connection)
    if state == State.READY:
        fields["ready_at"] = now
        # A pooled sandbox has nobody to be idle for; its clock starts when a learner claims it.
        fields["expires_at"] = now + timedelta(seconds=settings.SANDBOX_IDLE_TIMEOUT_S) if sandbox.user_id else None
    if state in (State.STOPPED, State.FAILED):
        fields["stopped_at"] = now
    if not Sandbox.objects.filter(pk=sandbox.pk, state__in=sources).update(**fields):
        current = Sandbox.objects.filter(pk=sandbox.pk).values_list("state", flat=True).first()
        raise TransitionRefused(f"sandbox {sandbox.pk}: {current} -> {state} is not allowed")
    for field, value in fields.items():
        setattr(sandbox, field, value)
    log.info(
        "sandbox %s %s: %s",
        sandbox.pk,
        sandbox.broker,
        fields["stage"] if state == State.PROVISIONING else state,
        extra={"sandbox_id": sandbox.pk, "user_id": sandbox.user_id, "state": state, "stage": fields["stage"]},
    )
    _broadcast(sandbox)
    return sandbox


def sandbox_ensure(*, user_id: int, broker: str) -> Sandbox:
    """The user's active sandbox of this broker, or a new one queued for provisioning."""
    from .tasks import sandbox_provision_task

    if broker not in BROKERS:
        raise SandboxError(UNKNOWN_BROKER.format(broker=broker))
    existing = Sandbox.objects.filter(user_id=user_id, broker=broker, state__in=ACTIVE_STATES, purpose=Purpose.LEARNER).first()
    if existing is not None:
        return existing
    running = Sandbox.objects.filter(user_id=user_id, state__in=ACTIVE_STATES, purpose=Purpose.LEARNER).count()
    if running >= settings.SANDBOX_QUOTA_PER_USER:
        raise SandboxError(QUOTA_REACHED.format(n=running))
    claimed = sandbox_pool_claim(user_id=user_id, broker=broker)
    if claimed is not None:
        return claimed
    try:
        with transaction.atomic():
            sandbox = Sandbox.objects.create(user_id=user_id, broker=broker, state=State.REQUESTED, stage="requested")
            transaction.on_commit(lambda: sandbox_provision_task.delay(sandbox.pk))
    except IntegrityError:
        # Another tab asked at the same moment; theirs wins.
        return Sandbox.objects.get(user_id=user_id, broker=broker, state__in=ACTIVE_STATES, purpose=Purpose.LEARNER)
    _broadcast(sandbox)
    return sandbox


def sandbox_pool_claim(*, user_id: int, broker: str) -> Sandbox | None:
    """Hand a ready sandbox from the warm pool to the user, if one waits; the pool refills behind it."""
    from .tasks import sandbox_pool_fill_task

    for candidate in Sandbox.objects.filter(purpose=Purpose.POOL, user__isnull=True, broker=broker, state=State.READY).order_by(
        "pk"
    )[:3]:
        now = timezone.now()
        expires = now + timedelta(seconds=settings.SANDBOX_IDLE_TIMEOUT_S)
        try:
            with transaction.atomic():
                # The filter on user IS NULL makes the claim atomic: two learners never get one unit.
                won = Sandbox.objects.filter(pk=candidate.pk, user__isnull=True, state=State.READY).update(
                    user_id=user_id, purpose=Purpose.LEARNER, last_activity_at=now, expires_at=expires
                )
        except IntegrityError:
            return Sandbox.objects.get(user_id=user_id, broker=broker, state__in=ACTIVE_STATES, purpose=Purpose.LEARNER)
        if won:
            sandbox = Sandbox.objects.get(pk=candidate.pk)
            transaction.on_commit(sandbox_pool_fill_task.delay)
            _broadcast(sandbox)
            log.info("sandbox claimed from the pool", extra={"sandbox_id": sandbox.pk, "user_id": user_id})
            return sandbox
    return None


def sandbox_pool_fill() -> list[int]:
    """Start pooled sandboxes until each broker has the number settings.SANDBOX_WARM_POOL asks for."""
    from .tasks import sandbox_provision_task

    created = []
    for broker, size in settings.SANDBOX_WARM_POOL.items():
        if broker not in BROKERS:
            log.warning("SANDBOX_WARM_POOL names an unknown broker %s", broker)
            continue
        waiting = Sandbox.objects.filter(purpose=Purpose.POOL, broker=broker, state__in=ACTIVE_STATES).count()
        for _ in range(max(0, int(size) - waiting)):
            sandbox = Sandbox.objects.create(
                purpose=Purpose.POOL, user=None, broker=broker, state=State.REQUESTED, stage="requested"
            )
            transaction.on_commit(partial(sandbox_provision_task.delay, sandbox.pk))
            created.append(sandbox.pk)
    return created


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
        backend.start(UnitSpec(name=name, broker=sandbox.broker, owner=str(sandbox.user_id)))
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


def sandbox_unit_stop(*, sandbox_id: int) -> Sandbox:
    """Stop the unit and mark the sandbox stopped; stopping twice is fine."""
    sandbox = Sandbox.objects.get(pk=sandbox_id)
    if sandbox.state == State.STOPPED:
        return sandbox
    if sandbox.state != State.STOPPING:
        sandbox_transition(sandbox, State.STOPPING)
    get_backend().stop(sandbox.unit or unit_name(sandbox))
    return sandbox_transition(sandbox, State.STOPPED)


def sandbox_stop(*, user_id: int, broker: str) -> Sandbox | None:
    from .tasks import sandbox_stop_task

    sandbox = Sandbox.objects.filter(user_id=user_id, broker=broker, state__in=ACTIVE_STATES, purpose=Purpose.LEARNER).first()
    if sandbox is None or sandbox.state == State.STOPPING:
        # Stopped, or a stop already queued: asking again enqueues nothing (a flood of stops is one stop).
        return sandbox
    sandbox_transition(sandbox, State.STOPPING)
    transaction.on_commit(lambda: sandbox_stop_task.delay(sandbox.pk))
    return sandbox


def sandbox_reset(*, user_id: int, broker: str) -> Sandbox | None:
    """A fresh broker for the same learner: the unit is stopped and a new sandbox provisioned."""
    from .tasks import sandbox_reset_task

    sandbox = Sandbox.objects.filter(
        user_id=user_id, broker=broker, purpose=Purpose.LEARNER, state__in=(State.READY, State.FAILED, State.PROVISIONING)
    ).first()
    if sandbox is None:
        return None
    sandbox_transition(sandbox, State.STOPPING, stage="stopping")
    transaction.on_commit(partial(sandbox_reset_task.delay, sandbox.pk))
    return sandbox


def sandbox_extend(*, user_id: int, broker: str) -> Sandbox | None:
    """Push the idle deadline back by the full timeout."""
    sandbox = Sandbox.objects.filter(user_id=user_id, broker=broker, state=State.READY, purpose=Purpose.LEARNER).first()
    if sandbox is not None:
        sandbox_touch(sandbox=sandbox)
        _broadcast(sandbox)
    return sandbox


def sandbox_touch(*, sandbox: Sandbox) -> None:
    now = timezone.now()
    sandbox.last_activity_at = now
    sandbox.expires_at = now + timedelta(seconds=settings.SANDBOX_IDLE_TIMEOUT_S)
    Sandbox.objects.filter(pk=sandbox.pk).update(last_activity_at=now, expires_at=sandbox.expires_at)


def sandbox_socket(*, sandbox: Sandbox) -> AgentAddress:
    """Where the sandbox's agent is (a Unix socket or host:port, with its token)."""
    return get_backend().agent_address(sandbox.unit or unit_name(sandbox))


def sandboxes_reap_idle() -> list[int]:
    """Stop ready sandboxes whose idle deadline has passed; returns their ids."""
    from .tasks import sandbox_stop_task

    expired = list(Sandbox.objects.filter(state=State.READY, purpose=Purpose.LEARNER, expires_at__lt=timezone.now()))
    for sandbox in expired:
        sandbox_transition(sandbox, State.STOPPING, stage="stopping")
        sandbox_stop_task.delay(sandbox.pk)
    return [s.pk for s in expired]


def sandboxes_reconcile(*, stale_after_s: int = PROVISION_TIMEOUT_S + 30) -> dict[str, list]:
    """Make records and units agree after any crash.

    Units with no active record are stopped; ready records whose unit is gone
    are marked stopped; records stuck in requested/provisioning longer than a
    provision can take are failed and their unit removed.
    """
    backend = get_backend()
    active = {unit_name(s): s for s in Sandbox.objects.filter(state__in=ACTIVE_STATES)}
    orphans = [name for name in backend.list_units() if name not in active]
    for name in orphans:
        backend.stop(name)
    gone, stuck = [], []
    cutoff = timezone.now() - timedelta(seconds=stale_after_s)
    for name, sandbox in active.items():
        if sandbox.state == State.READY and backend.poll(name) is not None:
            backend.stop(name)
            sandbox_transition(sandbox, State.STOPPED, error=UNIT_GONE)
            gone.append(sandbox.pk)
        elif sandbox.state in (State.REQUESTED, State.PROVISIONING) and sandbox.created_at < cutoff:
            backend.stop(name)
            sandbox_transition(sandbox, State.FAILED, error=INTERRUPTED)
            stuck.append(sandbox.pk)
        elif sandbox.state == State.STOPPING and sandbox.last_activity_at < cutoff:
            backend.stop(name)
            sandbox_transition(sandbox, State.STOPPED)
            gone.append(sandbox.pk)
    return {"orphans": orphans, "gone": gone, "stuck": stuck}


def sandboxes_stop_all() -> int:
    """Stop every unit of this platform instance and mark the records stopped (make run's Ctrl+C)."""
    backend = get_backend()
    names = backend.list_units()
    for name in names:
        backend.stop(name)
    for sandbox in Sandbox.objects.filter(state__in=ACTIVE_STATES):
        if sandbox.state != State.STOPPING:
            sandbox_transition(sandbox, State.STOPPING)
        sandbox_transition(sandbox, State.STOPPED)
    return len(names)


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


def _run_sync(sandbox: Sandbox, code: str, timeout: int, *, op: str = "run") -> dict[str, Any]:
    output: list[str] = []

    async def collect(message: dict[str, Any]) -> None:
        output.append(str(message.get("text", "")))

    result = async_to_sync(agent_client.run)(
        sandbox_socket(sandbox=sandbox), code=code, timeout=timeout, on_message=collect, op=op
    )
    result["output"] = "".join(output) + str(result.get("output", ""))
    return result


def exercise_verify(*, user_id: int, broker: str, check: tuple[str, int], solution: tuple[str, int]) -> dict[str, Any]:
    """On a fresh broker of its own: the check must fail, the solution must run, then the check must pass.

    ``check`` and ``solution`` are (code, timeout). Returns each step's verdict
    and output; the throwaway broker is removed whatever happens.
    """
    if broker not in BROKERS:
        raise SandboxError(UNKNOWN_BROKER.format(broker=broker))
    sandbox = Sandbox.objects.create(
        user_id=user_id, broker=broker, purpose=Purpose.VERIFY, state=State.REQUESTED, stage="requested"
    )
    try:
        sandbox = sandbox_provision(sandbox_id=sandbox.pk)
        if sandbox.state != State.READY:
            return {"ok": False, "error": sandbox.error or "the broker did not start"}
        empty = _run_sync(sandbox, check[0], check[1], op="check")
        solved = _run_sync(sandbox, solution[0], solution[1])
        after = _run_sync(sandbox, check[0], check[1], op="check")
    finally:
        sandbox_unit_stop(sandbox_id=sandbox.pk)
    report = {
        "empty_fails": empty["status"] != 0,
        "empty_output": empty["output"][-4000:],
        "solution_runs": solved["status"] == 0,
        "solution_output": solved["output"][-4000:],
        "solved_passes": after["status"] == 0,
        "solved_output": after["output"][-4000:],
    }
    report["ok"] = report["empty_fails"] and report["solution_runs"] and report["solved_passes"]
    return report


def exercise_verify_enqueue(*, user_id: int, broker: str, check: tuple[str, int], solution: tuple[str, int]) -> str:
    """Queue the proof of an exercise on the worker; returns the job id to ask about."""
    from .tasks import exercise_verify_task

    return str(exercise_verify_task.delay(user_id, broker, list(check), list(solution)).id)


def exercise_verify_result(*, job: str) -> dict[str, Any]:
    """{"state": "pending"|"done"|"error", "report": {...}} for a queued proof."""
    from celery.result import AsyncResult

    result = AsyncResult(job)
    if not result.ready():
        return {"state": "pending"}
    if result.failed():
        return {"state": "error", "error": str(result.result)}
    return {"state": "done", "report": result.result}
