"""Keeping records and units in agreement: the idle reaper, the repair after a crash, stopping everything."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from asgiref.sync import async_to_sync, sync_to_async
from django.utils import timezone
from django.utils.translation import gettext_noop

from .. import agent_client
from ..backends import get_backend
from ..models import ACTIVE_STATES, Purpose, Sandbox, State
from . import jobs
from .kept import sandbox_unit_release
from .lifecycle import sandbox_transition, unit_name
from .provisioning import PROVISION_TIMEOUT_S

# Kept in Sandbox.error as source text and translated when shown, so each reader gets their language.
UNIT_GONE = gettext_noop("Песочница больше не работала.")
INTERRUPTED = gettext_noop("Запуск песочницы прервался; запустите её снова.")
BROKER_GONE = gettext_noop("Брокер песочницы остановился; запустите песочницу снова.")
#: Agents asked for their status at once by a reconcile (each answer is a few milliseconds).
AGENTS_AT_ONCE = 32
#: A sandbox still requested after this long has lost its provision task (a worker killed with the task
#: prefetched, a Redis that restarted empty): reconcile sends it again. A task merely late in a long queue
#: is harmless to send twice: the second finds the sandbox provisioning, or its follower's lease held.
REQUEUE_AFTER_S = 30


def sandboxes_reap_idle() -> list[int]:
    """Stop ready sandboxes whose idle deadline has passed; returns their ids."""
    expired = list(Sandbox.objects.filter(state=State.READY, purpose=Purpose.LEARNER, expires_at__lt=timezone.now()))
    for sandbox in expired:
        sandbox_transition(sandbox, State.STOPPING, stage="stopping")
        jobs.job_enqueue(jobs.STOP, sandbox.pk)
    return [s.pk for s in expired]


def sandboxes_reconcile(*, stale_after_s: int = PROVISION_TIMEOUT_S + 30) -> dict[str, list]:
    """Make records and units agree after any crash.

    Units with no active record are stopped; ready records whose unit is gone
    are marked stopped, and those whose agent lives on but whose broker died are
    failed (their unit removed); records still requested after REQUEUE_AFTER_S have their provision
    task sent again; records stuck in requested/provisioning longer than a provision can take are
    failed and their unit removed. (A provisioning record whose follower died with its worker is
    adopted by ``readiness.sandboxes_adopt``, on beat and at a worker's start.)
    """
    backend = get_backend()
    # Units first, records after: a record is written before its unit starts, so every unit listed
    # has its record by the time the records are read. The other order took a sandbox started in
    # between for an orphan and stopped its new unit.
    units = backend.list_units()
    active = {unit_name(s): s for s in Sandbox.objects.filter(state__in=ACTIVE_STATES)}
    orphans = [name for name in units if name not in active]
    for name in orphans:
        backend.stop(name)
    gone, stuck, requeued = [], [], []
    cutoff = timezone.now() - timedelta(seconds=stale_after_s)
    requeue_cutoff = timezone.now() - timedelta(seconds=REQUEUE_AFTER_S)
    # Every ready unit at once: one request of a backend that lists its units, each agent asked concurrently.
    ready = [name for name, sandbox in active.items() if sandbox.state == State.READY]
    exited = backend.poll_many(ready)
    failed = async_to_sync(_brokers_failed)(backend, [name for name in ready if exited[name] is None])
    for name, sandbox in active.items():
        if sandbox.state == State.READY and exited[name] is not None:
            backend.stop(name)
            sandbox_transition(sandbox, State.STOPPED, error=UNIT_GONE)
            gone.append(sandbox.pk)
        elif sandbox.state == State.READY and name in failed:
            backend.stop(name)
            sandbox_transition(sandbox, State.FAILED, error=BROKER_GONE)
            gone.append(sandbox.pk)
        elif sandbox.state in (State.REQUESTED, State.PROVISIONING) and sandbox.created_at < cutoff:
            backend.stop(name)
            sandbox_transition(sandbox, State.FAILED, error=INTERRUPTED)
            stuck.append(sandbox.pk)
        elif sandbox.state == State.REQUESTED and sandbox.created_at < requeue_cutoff:
            jobs.job_enqueue(jobs.PROVISION, sandbox.pk)
            requeued.append(sandbox.pk)
        elif sandbox.state == State.STOPPING and sandbox.last_activity_at < cutoff:
            backend.stop(name)
            sandbox_transition(sandbox, State.STOPPED)
            gone.append(sandbox.pk)
    return {"orphans": orphans, "gone": gone, "stuck": stuck, "requeued": requeued}


async def _brokers_failed(backend, names: list[str]) -> set[str]:
    """The units whose agent answers but says its broker has exited (it watches it): nothing would ever
    mark their records otherwise, and the page would offer a ready sandbox that refuses every cell."""
    limit = asyncio.Semaphore(AGENTS_AT_ONCE)

    async def failed(name: str) -> bool:
        async with limit:
            try:
                address = await sync_to_async(backend.agent_address, thread_sensitive=False)(name)
                status = await agent_client.status(address)
            except (agent_client.AgentUnavailable, OSError):  # TimeoutError is an OSError
                return False  # an agent that is gone is poll()'s case; a busy one is looked at next time
            return status.get("stage") == "failed"

    answers = await asyncio.gather(*(failed(name) for name in names))
    return {name for name, answer in zip(names, answers, strict=True) if answer}


def sandboxes_stop_all() -> int:
    """Stop every unit of this platform instance and mark the records stopped (make run's Ctrl+C).

    Learners' broker data is kept as at any stop, so a restart of the platform loses none of it.
    """
    backend = get_backend()
    names = backend.list_units()
    for sandbox in Sandbox.objects.filter(state__in=ACTIVE_STATES):
        if sandbox.state != State.STOPPING:
            sandbox_transition(sandbox, State.STOPPING)
        sandbox_unit_release(sandbox=sandbox, keep=True)
        sandbox_transition(sandbox, State.STOPPED)
    for name in backend.list_units():  # units no record accounts for
        backend.stop(name)
    return len(names)
