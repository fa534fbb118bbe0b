"""Celery tasks: thin wrappers over services, idempotent, time-limited, safe to redeliver."""

from __future__ import annotations

import time

from celery import shared_task
from celery.signals import worker_ready

from . import services

COMMON = {"acks_late": True, "reject_on_worker_lost": True, "time_limit": 240, "soft_time_limit": 200}


#: How often a starting unit is looked at. Each look is its own short task, so a worker slot is never
#: held while a broker boots: two slots provision thirty sandboxes side by side.
FOLLOW_EVERY_S = 0.1


@shared_task(name="sandboxes.provision", **COMMON)
def sandbox_provision_task(sandbox_id: int) -> str:
    started_at = time.time()
    sandbox = services.sandbox_provision_start(sandbox_id=sandbox_id)
    if sandbox.state == "provisioning":
        sandbox_provision_follow_task.apply_async((sandbox_id, started_at), countdown=FOLLOW_EVERY_S)
    return sandbox.state


@shared_task(name="sandboxes.provision_follow", **COMMON)
def sandbox_provision_follow_task(sandbox_id: int, started_at: float) -> bool:
    done = services.sandbox_provision_step(sandbox_id=sandbox_id, started_at=started_at)
    if not done:
        sandbox_provision_follow_task.apply_async((sandbox_id, started_at), countdown=FOLLOW_EVERY_S)
    return done


@shared_task(name="sandboxes.stop", **COMMON)
def sandbox_stop_task(sandbox_id: int) -> str:
    return services.sandbox_unit_stop(sandbox_id=sandbox_id).state


@shared_task(name="sandboxes.reset", **COMMON)
def sandbox_reset_task(sandbox_id: int) -> str:
    """A fresh broker for the same learner: stop the unit, then provision a new sandbox."""
    sandbox = services.sandbox_unit_stop(sandbox_id=sandbox_id)
    if sandbox.user_id is None:
        return sandbox.state  # a pooled sandbox: the pool fill replaces it
    return services.sandbox_ensure(user_id=sandbox.user_id, broker=sandbox.broker).state


@shared_task(name="sandboxes.reap_idle", time_limit=120)
def sandboxes_reap_idle_task() -> list[int]:
    return services.sandboxes_reap_idle()


@shared_task(name="sandboxes.reconcile", time_limit=600)
def sandboxes_reconcile_task() -> dict[str, list]:
    return services.sandboxes_reconcile()


@shared_task(name="sandboxes.exercise_verify", time_limit=900, soft_time_limit=840)
def exercise_verify_task(user_id: int, broker: str, check: list, solution: list) -> dict:
    return services.exercise_verify(
        user_id=user_id, broker=broker, check=(check[0], int(check[1])), solution=(solution[0], int(solution[1]))
    )


@shared_task(name="sandboxes.pool_fill", time_limit=60)
def sandbox_pool_fill_task() -> list[int]:
    return services.sandbox_pool_fill()


@worker_ready.connect
def reconcile_on_start(sender, **_: object) -> None:
    """A worker that starts after a crash repairs what the crash left, then fills the warm pool."""
    (sandboxes_reconcile_task.si() | sandbox_pool_fill_task.si()).delay()
