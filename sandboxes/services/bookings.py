"""Class bookings: an instructor says when a class starts and how many learners come, and the warm pool
has their brokers ready by then (pool.sandbox_pool_sizes reads ``bookings_warm_now``).

A booking is warm from SANDBOX_BOOKING_LEAD_S before its start until SANDBOX_BOOKING_HOLD_S after
it. While warm, the pool keeps as many ready sandboxes of each booked broker as the booking names,
less the learners who already hold one (a class that has arrived needs no more). Booked sandboxes
are pooled ones: they spend admission capacity, start only into room nobody waits for, and are
stopped again once the booking has passed and demand does not keep them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models import Count, QuerySet
from django.utils import timezone
from django.utils.translation import gettext

from sandboxes.brokers import BROKERS

from ..models import ACTIVE_STATES, Purpose, Sandbox, State, WarmBooking
from . import jobs
from .admission import admission_capacity_mb, broker_weight_mb
from .lifecycle import SandboxError


@dataclass(frozen=True, slots=True)
class BookingStatus:
    """What the class view shows of a booking: its window, and per broker wanted, ready in the pool, held."""

    booking: WarmBooking
    warm_from: datetime
    warm_until: datetime
    warm: bool  # in its window now
    brokers: list[tuple[str, int, int, int]]  # (broker, wanted, ready in the pool, held by learners)
    fits: bool  # all booked sandboxes fit the platform's capacity


def _lead_hold() -> tuple[timedelta, timedelta]:
    """How long before its start a booking is warm, and how long after."""
    return timedelta(seconds=settings.SANDBOX_BOOKING_LEAD_S), timedelta(seconds=settings.SANDBOX_BOOKING_HOLD_S)


def _window(booking: WarmBooking) -> tuple[datetime, datetime]:
    lead, hold = _lead_hold()
    return booking.starts_at - lead, booking.starts_at + hold


def _warm_bookings(now: datetime) -> list[WarmBooking]:
    lead, hold = _lead_hold()
    return list(WarmBooking.objects.filter(starts_at__lte=now + lead, starts_at__gte=now - hold))


def bookings_warm_now() -> dict[str, int]:
    """Broker -> sandboxes the bookings in their window want warm now, less the learners already holding one."""
    wanted: dict[str, int] = {}
    for booking in _warm_bookings(timezone.now()):
        for broker, count in booking.brokers.items():
            if broker in BROKERS:
                wanted[broker] = wanted.get(broker, 0) + int(count)
    if not wanted:
        return {}
    held = _held(list(wanted))
    return {broker: max(0, count - held.get(broker, 0)) for broker, count in wanted.items()}


def by_broker(sandboxes: QuerySet[Sandbox]) -> dict[str, int]:
    """How many of ``sandboxes`` there are of each broker kind (one query)."""
    return dict(sandboxes.order_by().values_list("broker").annotate(n=Count("pk")).values_list("broker", "n"))


def _held(brokers: list[str]) -> dict[str, int]:
    return by_broker(Sandbox.objects.filter(purpose=Purpose.LEARNER, broker__in=brokers, state__in=ACTIVE_STATES))


def booking_create(
    *, course_slug: str, label: str, brokers: list[str], learners: int, starts_at: datetime, user_id: int
) -> WarmBooking:
    """Book ``learners`` sandboxes of each of ``brokers`` for ``starts_at``; SandboxError says what is wrong."""
    limit = settings.SANDBOX_BOOKING_MAX_LEARNERS
    if not 1 <= learners <= limit:
        raise SandboxError(gettext("Учеников в классе: от 1 до {limit}.").format(limit=limit))
    if starts_at + _lead_hold()[1] < timezone.now():
        raise SandboxError(gettext("Это время уже прошло."))
    known = [b for b in brokers if b in BROKERS]
    if not known:
        raise SandboxError(gettext("В главе нет ячеек с брокером: разогревать нечего."))
    booking = WarmBooking.objects.create(
        course_slug=course_slug,
        label=label,
        brokers={b: learners for b in known},
        learners=learners,
        starts_at=starts_at,
        created_by_id=user_id,
    )
    warm_from, _ = _window(booking)
    if warm_from <= timezone.now():
        transaction.on_commit(partial(jobs.job_enqueue, jobs.POOL_FILL))  # already in its window: warm now
    return booking


def booking_cancel(*, course_slug: str, booking_id: int) -> bool:
    """Drop a booking of the course; the pool shrinks back at its next fill. True if there was one."""
    deleted, _ = WarmBooking.objects.filter(pk=booking_id, course_slug=course_slug).delete()
    if deleted:
        transaction.on_commit(partial(jobs.job_enqueue, jobs.POOL_FILL))
    return deleted > 0


def bookings_of_course(*, course_slug: str) -> list[BookingStatus]:
    """The course's bookings that have not passed yet, soonest first, each with what the pool holds for it."""
    now = timezone.now()
    bookings = list(WarmBooking.objects.filter(course_slug=course_slug, starts_at__gte=now - _lead_hold()[1]))
    if not bookings:
        return []
    kinds = sorted({b for booking in bookings for b in booking.brokers})
    ready = by_broker(Sandbox.objects.filter(purpose=Purpose.POOL, user__isnull=True, broker__in=kinds, state=State.READY))
    held = _held(kinds)
    capacity = admission_capacity_mb()
    statuses = []
    for booking in bookings:
        warm_from, warm_until = _window(booking)
        need = sum(broker_weight_mb(b) * int(n) for b, n in booking.brokers.items())
        statuses.append(
            BookingStatus(
                booking=booking,
                warm_from=warm_from,
                warm_until=warm_until,
                warm=warm_from <= now <= warm_until,
                brokers=[(b, int(n), ready.get(b, 0), held.get(b, 0)) for b, n in sorted(booking.brokers.items())],
                fits=need <= capacity,
            )
        )
    return statuses
