"""Queuing the worker's tasks by name: services enqueue, ``sandboxes.tasks`` runs, neither imports the other's module."""

from __future__ import annotations

from celery import signature

PROVISION = "sandboxes.provision"
ADOPT = "sandboxes.adopt"
STOP = "sandboxes.stop"
RESET = "sandboxes.reset"
REAP_IDLE = "sandboxes.reap_idle"
RECONCILE = "sandboxes.reconcile"
POOL_FILL = "sandboxes.pool_fill"
ADMIT = "sandboxes.admit"


def job_enqueue(name: str, *args: object) -> None:
    """Send the task ``name`` with ``args`` to the worker (the registered task's own options apply)."""
    signature(name, args=args).delay()
