"""Celery tasks: thin wrappers over services, idempotent, time-limited, safe to redeliver.

Services queue these by name (``services.jobs``), so this module imports the
services and never the other way round.
"""

from __future__ import annotations

from celery import shared_task
from celery.signals import worker_process_shutdown, worker_ready

from .services import jobs
from .services.actions import sandbox_queue_advance, sandbox_reset_finish
from .services.pool import sandbox_pool_fill
from .services.provisioning import sandbox_unit_stop
from .services.readiness import LEASE_S, sandbox_follow, sandboxes_adopt, sandboxes_follow_release
from .services.reconcile import sandboxes_reap_idle, sandboxes_reconcile

COMMON = {"acks_late": True, "reject_on_worker_lost": True, "time_limit": 240, "soft_time_limit": 200}


@shared_task(name=jobs.PROVISION, **COMMON)
def sandbox_provision_task(sandbox_id: int) -> None:
    """Hand the sandbox to this process's follower, which starts its unit and waits for it: the slot is free at once."""
    sandbox_follow(sandbox_id=sandbox_id, start=True)


@shared_task(name=jobs.ADOPT, time_limit=60)
def sandboxes_adopt_task() -> list[int]:
    return sandboxes_adopt()


@shared_task(name=jobs.STOP, **COMMON)
def sandbox_stop_task(sandbox_id: int) -> str:
    return sandbox_unit_stop(sandbox_id=sandbox_id).state


@shared_task(name=jobs.RESET, **COMMON)
def sandbox_reset_task(sandbox_id: int) -> str:
    """A fresh broker for the same learner: stop the unit, then provision a new sandbox."""
    return sandbox_reset_finish(sandbox_id=sandbox_id).state


@shared_task(name=jobs.REAP_IDLE, time_limit=120)
def sandboxes_reap_idle_task() -> list[int]:
    return sandboxes_reap_idle()


@shared_task(name=jobs.RECONCILE, time_limit=600)
def sandboxes_reconcile_task() -> dict[str, list]:
    return sandboxes_reconcile()


@shared_task(name=jobs.POOL_FILL, time_limit=60)
def sandbox_pool_fill_task() -> list[int]:
    return sandbox_pool_fill()


@shared_task(name=jobs.ADMIT, time_limit=60)
def sandbox_admit_task() -> list[int]:
    """After a sandbox stopped or failed: start whoever's turn has come in the admission queue."""
    return sandbox_queue_advance()


@worker_ready.connect
def reconcile_on_start(sender, **_: object) -> None:
    """A worker that starts after a crash repairs what the crash left, admits who waits, then fills the warm pool.

    Sandboxes the crash left booting are followed again once the dead follower's leases have lapsed.
    """
    (sandboxes_reconcile_task.si() | sandbox_admit_task.si() | sandbox_pool_fill_task.si()).delay()
    sandboxes_adopt_task.apply_async(countdown=LEASE_S + 1)


@worker_process_shutdown.connect
def release_followed(**_: object) -> None:
    """A worker process that ends in order gives its starting sandboxes back at once, for the next to adopt."""
    sandboxes_follow_release()
