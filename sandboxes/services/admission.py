"""Admission: a platform-wide capacity for running sandboxes, by memory, and the fair queue in front of it.

Capacity is ``SANDBOX_CAPACITY_MB`` (0: three quarters of this machine's memory). Every active
sandbox (requested, provisioning, ready, stopping; learners', pooled and exercise proofs') spends
its broker kind's ``memory_mb`` from the registry. What is spent is counted from the database at
each decision, never kept in a counter: a worker killed mid-start leaks nothing, its record counts
while it is active and stops counting once redelivery or reconcile ends it.

The queue is a table of ``QueuedRequest`` rows, one per user and broker however many tabs ask,
ordered by the moment of the first ask: first come first served, and it outlives web, worker and
Redis restarts (a Redis that comes back empty costs nobody their place). Decisions hold a Redis
lock, so two web processes never both spend the last slot. Strict FIFO: a Kafka at the head is not overtaken by the NATS behind it.
``admission_enter`` (the one call in the start path, ``actions.sandbox_ensure``) joins the queue
and admits in order whoever fits; ``admission_advance`` does the same after a sandbox stops or
fails (``lifecycle`` queues the ``sandboxes.admit`` task), so the head starts by itself.

The warm pool counts (its units use memory), but never keeps a learner waiting: pool fill starts
nothing while anyone waits or when the unit would not fit (``admission_has_room``), a head whose
broker has a ready pooled unit takes it at no cost, and a head that does not fit gets idle pooled
units of other kinds stopped to make room.

The estimate: ``place`` times the mean gap between releases (sandboxes stopped or failed) of the
last 15 minutes when at least two were seen; otherwise the ``place``-th nearest idle deadline of
the learners' ready sandboxes (the reaper stops them then, unless extended); otherwise ``place``
idle timeouts. Weights are not part of it: a rough figure, said as one.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import timedelta
from functools import partial
from typing import Any

import redis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction
from django.db.models import Count, Min
from django.utils import timezone
from django.utils.translation import gettext_lazy

from courseplatform.metrics import refusal_count
from sandboxes.brokers import BROKERS

from ..models import ACTIVE_STATES, KeptState, Purpose, QueuedRequest, Sandbox, State
from . import jobs
from .lifecycle import SandboxError, sandbox_transition

log = logging.getLogger(__name__)

#: Starts (or hands over) the user's sandbox of a broker; given by the caller so admission stays a decision.
Start = Callable[[int, str], Sandbox]

RELEASE_WINDOW_S = 15 * 60
LOCK_TIMEOUT_S = 30
LOCK_WAIT_S = 15

QUEUED = gettext_lazy(
    "Свободных мест для песочниц сейчас нет: вы {place}-й в очереди, ждать около {minutes} мин. "
    "Песочница запустится сама, тогда запустите ячейку снова."
)
BUSY = gettext_lazy("Сервер сейчас не может принять запрос. Повторите чуть позже.")


@dataclass(frozen=True, slots=True)
class QueuePlace:
    """A learner's place in the queue for one broker: 1 is next; ``basis`` says how ``estimate_s`` was found."""

    broker: str
    place: int
    estimate_s: int
    basis: str  # "releases" | "idle" | "timeout"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class SandboxQueued(SandboxError):
    """The sandbox could not start now: the learner holds ``place`` in the queue and it starts by itself later."""

    def __init__(self, place: QueuePlace) -> None:
        super().__init__(place.place)
        self.place = place

    def __str__(self) -> str:
        return str(QUEUED.format(place=self.place.place, minutes=max(1, round(self.place.estimate_s / 60))))


# -- what is spent -----------------------------------------------------------


def broker_weight_mb(broker: str) -> int:
    """Memory one running unit of ``broker`` costs (the registry's ``memory_mb``)."""
    entry = BROKERS.get(broker)
    return entry.memory_mb if entry is not None else 512


def admission_capacity_mb() -> int:
    """``SANDBOX_CAPACITY_MB``, or three quarters of this machine's memory when it is 0."""
    configured = int(settings.SANDBOX_CAPACITY_MB)
    if configured > 0:
        return configured
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20 * 3 // 4


def admission_used_mb() -> int:
    """Memory spent by every active sandbox, from the database (the units that are, not a tally)."""
    rows = Sandbox.objects.filter(state__in=ACTIVE_STATES).values("broker").annotate(n=Count("pk"))
    return sum(broker_weight_mb(row["broker"]) * row["n"] for row in rows)


# -- the queue ---------------------------------------------------------------


@functools.cache
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, decode_responses=True)


def _redis() -> redis.Redis:
    return _client(settings.REDIS_URL)


def _key(name: str) -> str:
    return f"{settings.SANDBOX_INSTANCE}:admission:{name}"


#: A place in the queue: (user id, broker).
Place = tuple[int, str]


def _queue() -> list[Place]:
    """The queue's places, head first."""
    return list(QueuedRequest.objects.order_by("asked_at", "pk").values_list("user_id", "broker"))


def _someone_waits() -> bool:
    return QueuedRequest.objects.exists()


def _join(user_id: int, broker: str, *, front: bool) -> None:
    """Take a place (kept if the user has one), or the first place (``front``)."""
    if front:
        QueuedRequest.objects.update_or_create(user_id=user_id, broker=broker, defaults={"asked_at": 0.0})
    else:
        QueuedRequest.objects.get_or_create(user_id=user_id, broker=broker, defaults={"asked_at": time.time()})


def _drop(user_id: int, broker: str) -> bool:
    """Give up the user's place for ``broker``; True if there was one."""
    deleted, _ = QueuedRequest.objects.filter(user_id=user_id, broker=broker).delete()
    return deleted > 0


@contextlib.contextmanager
def admission_lock() -> Iterator[None]:
    """Hold the platform's admission lock (one decision at a time across all web and worker processes)."""
    lock = _redis().lock(_key("lock"), timeout=LOCK_TIMEOUT_S, blocking_timeout=LOCK_WAIT_S)
    if not lock.acquire():
        refusal_count(reason="admission_busy")
        raise SandboxError(BUSY)
    try:
        yield
    finally:
        with contextlib.suppress(redis.exceptions.LockError):
            lock.release()


def admission_has_room(*, broker: str) -> bool:
    """Whether a unit of ``broker`` may start beside the learners: nobody waits and it fits (hold the lock)."""
    if _someone_waits():
        return False
    return admission_used_mb() + broker_weight_mb(broker) <= admission_capacity_mb()


def admission_enter(*, user_id: int, broker: str, start: Start, front: bool = False) -> Sandbox:
    """Join the queue (once per user and broker) and admit in order whoever fits; this user's sandbox, or
    SandboxQueued with their place. ``front`` (a reset giving back the slot it just held) goes first."""
    with admission_lock():
        _join(user_id, broker, front=front)
        admitted = _advance_locked(start)
    admission_announce()
    if (user_id, broker) in admitted:
        return admitted[user_id, broker]
    place = next((p for p in admission_places(user_id=user_id) if p.broker == broker), None)
    if place is None:  # dropped as it was admitted (an error already told): ask again
        raise SandboxError(BUSY)
    refusal_count(reason="admission_queued", user_id=user_id, broker=broker, place=place.place)
    raise SandboxQueued(place)


def admission_hold_front(*, user_id: int, broker: str) -> None:
    """Put the user first in the queue for ``broker`` (a reset about to give back its own slot)."""
    _join(user_id, broker, front=True)


def admission_advance(*, start: Start) -> list[int]:
    """Admit from the head of the queue whoever fits now (after a release); returns the sandboxes started."""
    if not _someone_waits():
        return []
    with admission_lock():
        admitted = _advance_locked(start)
    admission_announce()
    return [sandbox.pk for sandbox in admitted.values()]


def admission_leave(*, user_id: int, broker: str) -> bool:
    """Give up a place in the queue (the learner pressed Stop while waiting); True if there was one."""
    removed = _drop(user_id, broker)
    if removed:
        _tell(user_id, {"broker": broker, "place": None})
        admission_announce()
    return removed


def _advance_locked(start: Start) -> dict[Place, Sandbox]:
    admitted: dict[Place, Sandbox] = {}
    free = admission_capacity_mb() - admission_used_mb()
    for user_id, broker in _queue():
        held = Sandbox.objects.filter(user_id=user_id, broker=broker, purpose=Purpose.LEARNER, state__in=ACTIVE_STATES).first()
        if held is not None and held.state == State.STOPPING:
            break  # a reset at the head: its own stop gives back the slot it will take
        if held is not None:  # admitted meanwhile (a reset's two paths racing): nothing more to spend
            _drop(user_id, broker)
            admitted[user_id, broker] = held
            continue
        # A learner with kept data resumes it on a unit of its own (actions._sandbox_start): a pooled unit is
        # no use to them, and may be stopped to make room like any other kind's.
        resumes = KeptState.objects.filter(user_id=user_id, broker=broker).exists()
        pooled = (
            not resumes
            and Sandbox.objects.filter(purpose=Purpose.POOL, user__isnull=True, broker=broker, state=State.READY).exists()
        )
        cost = 0 if pooled else broker_weight_mb(broker)
        if cost > free:
            _pool_evict(need=cost - free, keep=None if resumes else broker)
            break  # strict FIFO: nobody overtakes the head
        _drop(user_id, broker)
        try:
            admitted[user_id, broker] = start(user_id, broker)
        except SandboxError as exc:  # e.g. the user reached their own quota meanwhile
            _tell(user_id, {"broker": broker, "place": None, "error": str(exc)})
            continue
        except Exception:  # a place that cannot be served (its user deleted) must not block the queue
            log.exception("queued request dropped", extra={"user_id": user_id, "broker": broker})
            continue
        free -= cost
        log.info("sandbox admitted", extra={"user_id": user_id, "broker": broker})
    return admitted


def _pool_evict(*, need: int, keep: str | None) -> None:
    """Stop idle pooled units of kinds other than ``keep`` (None: of any kind) until ``need`` MB are on their
    way back to the head."""
    stopping = Sandbox.objects.filter(purpose=Purpose.POOL, user__isnull=True, state=State.STOPPING)
    need -= sum(broker_weight_mb(s.broker) for s in stopping)
    idle = Sandbox.objects.filter(purpose=Purpose.POOL, user__isnull=True, state=State.READY)
    if keep is not None:
        idle = idle.exclude(broker=keep)
    for sandbox in idle.order_by("pk"):
        if need <= 0:
            return
        sandbox_transition(sandbox, State.STOPPING, stage="stopping")
        transaction.on_commit(partial(jobs.job_enqueue, jobs.STOP, sandbox.pk))
        need -= broker_weight_mb(sandbox.broker)
        log.info("pooled sandbox stopped to make room for the queue", extra={"sandbox_id": sandbox.pk})


# -- what the learner is told ------------------------------------------------


def _estimates(count: int) -> list[tuple[int, str]]:
    """(seconds, basis) for places 1..count (see the module's docstring)."""
    now = timezone.now()
    since = now - timedelta(seconds=RELEASE_WINDOW_S)
    released = Sandbox.objects.filter(stopped_at__gte=since).aggregate(n=Count("pk"), first=Min("stopped_at"))
    if released["n"] >= 2:
        gap = max(60.0, (now - released["first"]).total_seconds()) / released["n"]
        return [(round(place * gap), "releases") for place in range(1, count + 1)]
    deadlines = [
        deadline
        for deadline in Sandbox.objects.filter(purpose=Purpose.LEARNER, state=State.READY, expires_at__isnull=False)
        .order_by("expires_at")
        .values_list("expires_at", flat=True)[:count]
        if deadline is not None
    ]
    timeout = settings.SANDBOX_IDLE_TIMEOUT_S
    estimates = []
    for place in range(1, count + 1):
        if place <= len(deadlines):
            estimates.append((max(0, round((deadlines[place - 1] - now).total_seconds())), "idle"))
        else:
            estimates.append((place * timeout, "timeout"))
    return estimates


def admission_places(*, user_id: int | None = None) -> list[QueuePlace]:
    """Places in the queue, in order: everyone's, or only ``user_id``'s (for the page's hello)."""
    return [place for owner, place in _places() if user_id is None or owner == user_id]


def admission_announce() -> None:
    """Tell every waiting learner's pages their place and estimate (places move as the head leaves)."""
    for user_id, place in _places():
        _tell(user_id, place.as_dict())


def _places() -> list[tuple[int, QueuePlace]]:
    queue = _queue()
    if not queue:
        return []
    places = []
    for index, ((user_id, broker), (seconds, basis)) in enumerate(zip(queue, _estimates(len(queue)), strict=True)):
        places.append((user_id, QueuePlace(broker=broker, place=index + 1, estimate_s=seconds, basis=basis)))
    return places


def _tell(user_id: int, queue: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(f"user-{user_id}", {"type": "sandbox.queue", "queue": queue})
    except Exception:  # a page not hearing its place is not worth failing the decision for
        log.warning("could not tell a queue place", extra={"user_id": user_id}, exc_info=True)
