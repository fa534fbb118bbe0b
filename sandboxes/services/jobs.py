"""Queuing the worker's tasks by name: services enqueue, ``sandboxes.tasks`` runs, neither imports the other's module."""

from __future__ import annotations

import logging

from celery import signature

log = logging.getLogger(__name__)

PROVISION = "sandboxes.provision"
ADOPT = "sandboxes.adopt"
STOP = "sandboxes.stop"
RESET = "sandboxes.reset"
REAP_IDLE = "sandboxes.reap_idle"
RECONCILE = "sandboxes.reconcile"
POOL_FILL = "sandboxes.pool_fill"
ADMIT = "sandboxes.admit"


def job_enqueue(name: str, *args: object) -> None:
    """Send the task ``name`` with ``args`` to the worker (the registered task's own options apply).

    Fire and forget: no caller reads a job's result, so the sender does not subscribe to one (with a
    result subscription, sending while Redis is down retried for 20 s before it failed).
    """
    signature(name, args=args).apply_async(ignore_result=True)


def job_nudge(name: str, *args: object) -> None:
    """Send a job that a periodic task also runs (its beat entry is the backstop): failing to send is logged, not raised.

    For wake-ups sent after a commit, such as the admission queue's when capacity frees: a stop that
    succeeded must not fail because the queue could not be told (make run's Ctrl+C stops Redis too).
    """
    try:
        job_enqueue(name, *args)
    except Exception:
        log.warning("could not send %s; its periodic run will do it", name, exc_info=True)
