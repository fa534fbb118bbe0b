"""The warm pool: sandboxes started ahead per broker, handed to learners who ask.

Its size follows demand: each broker named in settings.SANDBOX_WARM_POOL keeps at
least the number given there, and up to as many as learners asked for in the last
SANDBOX_WARM_POOL_DEMAND_WINDOW_S (a class arriving makes it grow, a quiet hour
brings it back), within SANDBOX_WARM_POOL_MEMORY_MB for all pooled sandboxes
together. Requests are counted in Redis, where every web process sees them.

A class booked by its instructor (services/bookings.py) raises a broker's size to what the booking
wants while it is in its window, beyond the budget (it was asked for by name); admission still decides
whether each one may start.

Pooled units spend admission capacity like any other, so none starts while a learner waits (services/admission.py).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
import uuid
from datetime import timedelta
from functools import partial

import redis
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from sandboxes.brokers import BROKERS

from ..models import ACTIVE_STATES, Purpose, Sandbox, State
from . import jobs
from .admission import admission_has_room, admission_lock
from .bookings import bookings_warm_now, by_broker
from .lifecycle import TransitionRefused, sandbox_broadcast, sandbox_transition

log = logging.getLogger(__name__)


def _unit_mb(broker: str) -> int:
    """What one idle pooled sandbox of the kind holds (the registry's idle_mb): what the budget counts."""
    return BROKERS[broker].idle_mb


@functools.cache
def _redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=2)


def _demand_key(broker: str) -> str:
    return f"sandbox-demand:{settings.SANDBOX_INSTANCE}:{broker}"


def sandbox_pool_demand_record(*, broker: str) -> None:
    """Count a learner's request for a broker of this kind (pooled kinds only); a Redis hiccup loses one count, no more."""
    if broker not in settings.SANDBOX_WARM_POOL:
        return
    window = settings.SANDBOX_WARM_POOL_DEMAND_WINDOW_S
    now = time.time()
    with contextlib.suppress(redis.RedisError):
        pipe = _redis(settings.REDIS_URL).pipeline(transaction=False)
        pipe.zadd(_demand_key(broker), {uuid.uuid4().hex: now})
        pipe.zremrangebyscore(_demand_key(broker), "-inf", now - window)
        pipe.expire(_demand_key(broker), int(window) + 1)
        pipe.execute()


def sandbox_pool_demand(*, broker: str) -> int:
    """How many learners asked for this broker in the last SANDBOX_WARM_POOL_DEMAND_WINDOW_S (0 if Redis cannot say)."""
    since = time.time() - settings.SANDBOX_WARM_POOL_DEMAND_WINDOW_S
    try:
        return int(_redis(settings.REDIS_URL).zcount(_demand_key(broker), since, "+inf"))  # type: ignore[arg-type]
    except redis.RedisError:
        return 0


def sandbox_pool_sizes() -> dict[str, int]:
    """How many pooled sandboxes each broker should have now: its floor, plus recent demand as the budget allows.

    Demand counts the requests of the window less the learners' sandboxes still starting (a class
    arriving together is not also given a pool to boot beside it). The budget
    (SANDBOX_WARM_POOL_MEMORY_MB) is shared one sandbox at a time, each to the broker whose demand
    is least met so far; the floors are kept whatever they cost. A booked class in its window raises its
    brokers to what it wants (bookings.bookings_warm_now), also brokers the setting does not name.
    """
    floors = {b: int(n) for b, n in settings.SANDBOX_WARM_POOL.items() if b in BROKERS}
    sizes = _demand_sizes(floors)
    for broker, booked in bookings_warm_now().items():
        sizes[broker] = max(sizes.get(broker, 0), booked)
    return sizes


def _demand_sizes(floors: dict[str, int]) -> dict[str, int]:
    """The floors, plus the recent demand the budget allows (see sandbox_pool_sizes)."""
    sizes = dict(floors)
    left = settings.SANDBOX_WARM_POOL_MEMORY_MB - sum(_unit_mb(b) * n for b, n in floors.items())
    # Learners whose brokers are starting already are served: a pooled one started now would come no sooner.
    starting = by_broker(Sandbox.objects.filter(purpose=Purpose.LEARNER, state__in=(State.REQUESTED, State.PROVISIONING)))
    wanted = {b: sandbox_pool_demand(broker=b) - n - starting.get(b, 0) for b, n in floors.items()}
    while True:
        fitting = [b for b, n in wanted.items() if n > 0 and _unit_mb(b) <= left]
        if not fitting:
            return sizes
        broker = max(fitting, key=lambda b: wanted[b])
        sizes[broker] += 1
        wanted[broker] -= 1
        left -= _unit_mb(broker)


def sandbox_pool_claim(*, user_id: int, broker: str) -> Sandbox | None:
    """Hand a ready sandbox from the warm pool to the user, if one waits; the pool refills behind it.

    Every call counts as demand for the broker, met or not: the next fill sizes the pool by it.
    """
    sandbox_pool_demand_record(broker=broker)
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
    """Start pooled sandboxes until each broker has the number ``sandbox_pool_sizes`` asks for; returns their ids.

    Ready pooled sandboxes beyond it (demand has passed) are stopped, those that waited longest first.
    """
    created: list[int] = []
    for broker in settings.SANDBOX_WARM_POOL:
        if broker not in BROKERS:
            log.warning("SANDBOX_WARM_POOL names an unknown broker %s", broker)
    # Under the admission lock: a pooled unit is started only into room no learner waits for.
    with admission_lock():
        sizes = sandbox_pool_sizes()
        # A kind pooled only for a booking that has passed: its size is none now, and its surplus goes.
        for broker in Sandbox.objects.filter(purpose=Purpose.POOL, state=State.READY).values_list("broker", flat=True).distinct():
            sizes.setdefault(broker, 0)
        for broker, size in sizes.items():
            pooled = Sandbox.objects.filter(purpose=Purpose.POOL, user__isnull=True, broker=broker, state__in=ACTIVE_STATES)
            waiting = pooled.exclude(state=State.STOPPING).count()
            for _ in range(max(0, size - waiting)):
                if not admission_has_room(broker=broker):
                    break
                sandbox = Sandbox.objects.create(
                    purpose=Purpose.POOL, user=None, broker=broker, state=State.REQUESTED, stage="requested"
                )
                transaction.on_commit(partial(jobs.job_enqueue, jobs.PROVISION, sandbox.pk))
                created.append(sandbox.pk)
            for surplus in pooled.filter(state=State.READY).order_by("ready_at", "pk")[: max(0, waiting - size)]:
                with contextlib.suppress(TransitionRefused):  # claimed meanwhile: it is a learner's now
                    sandbox_transition(surplus, State.STOPPING, stage="stopping")
                    transaction.on_commit(partial(jobs.job_enqueue, jobs.STOP, surplus.pk))
                    log.info("sandbox %s %s: the pool shrinks with demand", surplus.pk, broker, extra={"sandbox_id": surplus.pk})
    return created
