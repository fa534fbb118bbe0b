"""The warm pool: sandboxes started ahead per broker (settings.SANDBOX_WARM_POOL), handed to learners who ask.

Pooled units spend admission capacity like any other, so none starts while a learner waits (services/admission.py).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from sandboxes.brokers import BROKERS

from ..models import ACTIVE_STATES, Purpose, Sandbox, State
from . import jobs
from .admission import admission_has_room, admission_lock
from .lifecycle import sandbox_broadcast

log = logging.getLogger(__name__)


def sandbox_pool_claim(*, user_id: int, broker: str) -> Sandbox | None:
    """Hand a ready sandbox from the warm pool to the user, if one waits; the pool refills behind it."""
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
            transaction.on_commit(partial(jobs.job_enqueue, jobs.POOL_FILL))
            sandbox_broadcast(sandbox)
            log.info("sandbox claimed from the pool", extra={"sandbox_id": sandbox.pk, "user_id": user_id})
            return sandbox
    return None


def sandbox_pool_fill() -> list[int]:
    """Start pooled sandboxes until each broker has the number settings.SANDBOX_WARM_POOL asks for."""
    created: list[int] = []
    if not settings.SANDBOX_WARM_POOL:
        return created
    # Under the admission lock: a pooled unit is started only into room no learner waits for.
    with admission_lock():
        for broker, size in settings.SANDBOX_WARM_POOL.items():
            if broker not in BROKERS:
                log.warning("SANDBOX_WARM_POOL names an unknown broker %s", broker)
                continue
            waiting = Sandbox.objects.filter(purpose=Purpose.POOL, broker=broker, state__in=ACTIVE_STATES).count()
            for _ in range(max(0, int(size) - waiting)):
                if not admission_has_room(broker=broker):
                    break
                sandbox = Sandbox.objects.create(
                    purpose=Purpose.POOL, user=None, broker=broker, state=State.REQUESTED, stage="requested"
                )
                transaction.on_commit(partial(jobs.job_enqueue, jobs.PROVISION, sandbox.pk))
                created.append(sandbox.pk)
    return created
