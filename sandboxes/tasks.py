"""Celery tasks: thin wrappers over services, idempotent, time-limited, safe to redeliver.

Services queue these by name (``services.jobs``), so this module imports the
services and never the other way round.
"""

from __future__ import annotations

import time

from celery import shared_task
from celery.signals import worker_ready

from .services import jobs
from .services.actions import sandbox_queue_advance, sandbox_reset_finish
from .services.pool import sandbox_pool_fill
from .services.provisioning import sandbox_provision_start, sandbox_provision_step, sandbox_unit_stop
from .services.reconcile import sandboxes_reap_idle, sandboxes_reconcile

COMMON = {"acks_late": True, "reject_on_worker_lost": True, "time_limit": 240, "soft_time_limit": 200}


#: How often a starting unit is looked at. Each look is its own short task, so a worker slot is never
#: held while a broker boots: two slots provision thirty sandboxes side by side.
FOLLOW_EVERY_S = 0.1


@shared_task(name=jobs.PROVISION, **COMMON)
def sandbox_provision_task(sandbox_id: int) -> str:
    started_at = time.time()
    sandbox = sandbox_provision_start(sandbox_id=sandbox_id)
    if sandbox.state == "provisioning":
        sandbox_provision_follow_task.apply_async((sandbox_id, started_at), countdown=FOLLOW_EVERY_S)
    return sandbox.state


@shared_task(name=jobs.PROVISION_FOLLOW, **COMMON)
def sandbox_provision_follow_task(sandbox_id: int, started_at: float) -> bool:
    done = sandbox_provision_step(sandbox_id=sandbox_id, started_at=started_at)
    if not done:
        sandbox_provision_follow_task.apply_async((sandbox_id, started_at), countdown=FOLLOW_EVERY_S)
    return done


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
    """A worker that starts after a crash repairs what the crash left, admits who waits, then fills the warm pool."""
    (sandboxes_reconcile_task.si() | sandbox_admit_task.si() | sandbox_pool_fill_task.si()).delay()
