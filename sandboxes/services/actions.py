"""What a learner asks of their sandboxes: ensure one of a broker, stop it, reset it, extend its idle deadline.

Each answers at once: the slow part (starting or stopping a unit) is queued for
the worker after the transaction commits, and the pages hear the outcome.
"""

from __future__ import annotations

from datetime import timedelta
from functools import partial

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from sandboxes.brokers import BROKERS

from ..models import ACTIVE_STATES, Purpose, Sandbox, State
from . import admission, jobs, quota
from .kept import kept_broadcast, kept_claim, kept_for_start
from .lifecycle import UNKNOWN_BROKER, SandboxError, sandbox_broadcast, sandbox_transition
from .pool import sandbox_pool_claim
from .provisioning import sandbox_unit_stop

QUOTA_REACHED = quota.QUOTA_REACHED


def sandbox_ensure(*, user_id: int, broker: str, front: bool = False) -> Sandbox:
    """The user's active sandbox of this broker, or a new one queued for provisioning.

    Raises SandboxQueued (with the learner's place) when the platform is full: the sandbox then
    starts by itself when its turn comes. ``front``: a reset re-entering ahead of the queue.
    """
    if broker not in BROKERS:
        raise SandboxError(UNKNOWN_BROKER.format(broker=broker))
    existing = Sandbox.objects.filter(user_id=user_id, broker=broker, state__in=ACTIVE_STATES, purpose=Purpose.LEARNER).first()
    if existing is not None:
        return existing
    _quota_check(user_id=user_id)
    return admission.admission_enter(user_id=user_id, broker=broker, start=_sandbox_start, front=front)


def _quota_check(*, user_id: int) -> None:
    quota.quota_check(user_id=user_id)  # learner sandboxes and exercise proofs alike


def _sandbox_start(user_id: int, broker: str) -> Sandbox:
    """Admitted: a pooled sandbox handed over, or a new record queued for the worker (admission's ``start``)."""
    existing = Sandbox.objects.filter(user_id=user_id, broker=broker, state__in=ACTIVE_STATES, purpose=Purpose.LEARNER).first()
    if existing is not None:
        return existing
    _quota_check(user_id=user_id)  # again: the turn of a queued learner may come after they started others
    # Kept data is resumed on a unit of its own: a pooled unit already runs on an empty disk.
    kept = kept_for_start(user_id=user_id, broker=broker)
    if kept is None:
        claimed = sandbox_pool_claim(user_id=user_id, broker=broker)
        if claimed is not None:
            return claimed
    try:
        with transaction.atomic():
            sandbox = Sandbox.objects.create(user_id=user_id, broker=broker, state=State.REQUESTED, stage="requested")
            if kept is not None:
                kept_claim(kept=kept, sandbox=sandbox)
            transaction.on_commit(partial(jobs.job_enqueue, jobs.PROVISION, sandbox.pk))
    except IntegrityError:
        # Another tab asked at the same moment; theirs wins.
        return Sandbox.objects.get(user_id=user_id, broker=broker, state__in=ACTIVE_STATES, purpose=Purpose.LEARNER)
    sandbox_broadcast(sandbox)
    if kept is not None:
        kept_broadcast(user_id=user_id)
    return sandbox


def sandbox_queue_advance() -> list[int]:
    """Start whoever's turn has come in the admission queue (after a sandbox stopped or failed)."""
    return admission.admission_advance(start=_sandbox_start)


def sandbox_stop(*, user_id: int, broker: str) -> Sandbox | None:
    """Stop the user's sandbox of this broker (the unit is removed by the worker); None if there is none."""
    sandbox = Sandbox.objects.filter(user_id=user_id, broker=broker, state__in=ACTIVE_STATES, purpose=Purpose.LEARNER).first()
    if sandbox is None:
        # Waiting in the admission queue: Stop gives the place up.
        admission.admission_leave(user_id=user_id, broker=broker)
        return None
    if sandbox.state == State.STOPPING:
        # Stopped, or a stop already queued: asking again enqueues nothing (a flood of stops is one stop).
        return sandbox
    sandbox_transition(sandbox, State.STOPPING)
    transaction.on_commit(partial(jobs.job_enqueue, jobs.STOP, sandbox.pk))
    return sandbox


def sandbox_reset(*, user_id: int, broker: str) -> Sandbox | None:
    """A fresh broker for the same learner: the unit is stopped (its data not kept) and a new sandbox provisioned."""
    sandbox = Sandbox.objects.filter(
        user_id=user_id, broker=broker, purpose=Purpose.LEARNER, state__in=(State.READY, State.FAILED, State.PROVISIONING)
    ).first()
    if sandbox is None:
        return None
    sandbox_transition(sandbox, State.STOPPING, stage="stopping")
    transaction.on_commit(partial(jobs.job_enqueue, jobs.RESET, sandbox.pk))
    return sandbox


def sandbox_reset_finish(*, sandbox_id: int) -> Sandbox:
    """The worker's half of a reset: stop the old unit, then queue the learner's fresh sandbox.

    A pooled sandbox (no learner) is only stopped: the pool fill replaces it.
    """
    before = Sandbox.objects.get(pk=sandbox_id)
    if before.user_id is not None:
        # First in the queue before the slot is given back, so the next learner does not take it.
        admission.admission_hold_front(user_id=before.user_id, broker=before.broker)
    sandbox = sandbox_unit_stop(sandbox_id=sandbox_id, keep=False)
    if sandbox.user_id is None:
        return sandbox
    try:
        return sandbox_ensure(user_id=sandbox.user_id, broker=sandbox.broker, front=True)
    except admission.SandboxQueued:
        return sandbox  # the page was told its place; the fresh sandbox starts when there is room


def sandbox_extend(*, user_id: int, broker: str) -> Sandbox | None:
    """Push the idle deadline back by the full timeout."""
    sandbox = Sandbox.objects.filter(user_id=user_id, broker=broker, state=State.READY, purpose=Purpose.LEARNER).first()
    if sandbox is not None:
        sandbox_touch(sandbox=sandbox)
        sandbox_broadcast(sandbox)
    return sandbox


def sandbox_touch(*, sandbox: Sandbox) -> None:
    """Record activity: the idle deadline starts again."""
    now = timezone.now()
    sandbox.last_activity_at = now
    sandbox.expires_at = now + timedelta(seconds=settings.SANDBOX_IDLE_TIMEOUT_S)
    Sandbox.objects.filter(pk=sandbox.pk).update(last_activity_at=now, expires_at=sandbox.expires_at)
