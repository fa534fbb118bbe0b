"""Provisioning without polling: starting a sandbox costs the worker one task, however long its broker boots.

Counted on the real worker: its task events (``task-received``) are switched on and
read from the real Celery broker (Redis) while a NATS and a RabbitMQ sandbox start.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from sandboxes.models import Sandbox, State
from sandboxes.services import actions, jobs
from tests.services import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


class TaskLog:
    """Names of the tasks the worker received, in order, from its task events."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.lock = threading.Lock()

    def add(self, event: dict) -> None:
        with self.lock:
            self.names.append(event["name"])

    def since(self, mark: int) -> list[str]:
        with self.lock:
            return self.names[mark:]

    def fence(self) -> int:
        """Queue a task that does nothing here (no warm pool) and wait until the worker received it.

        Everything queued before the fence was received before it: the log is complete up to here.
        """
        mark = len(self.since(0))
        while True:
            jobs.job_enqueue(jobs.POOL_FILL)
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:
                if jobs.POOL_FILL in self.since(mark):
                    return len(self.since(0))
                time.sleep(0.02)


@pytest.fixture
def task_log(celery_worker) -> Iterator[TaskLog]:
    from courseplatform.celery import app

    log = TaskLog()
    with app.connection_for_read() as connection:
        receiver = app.events.Receiver(connection, handlers={"task-received": log.add})
        reading = threading.Thread(target=receiver.capture, kwargs={"limit": None, "timeout": None}, daemon=True)
        reading.start()
        app.control.enable_events()
        try:
            yield log
        finally:
            app.control.disable_events()
            receiver.should_stop = True
            reading.join(timeout=10)


def test_starting_a_sandbox_costs_the_worker_one_task_however_long_its_broker_boots(task_log, learner, units_cleanup):
    start = task_log.fence()  # events flow, and nothing from before is counted
    # A quick broker and a slow one at once: the count must not follow the boot time.
    sandboxes = [actions.sandbox_ensure(user_id=learner.pk, broker=broker) for broker in ("nats", "rabbitmq")]
    wait_for(
        lambda: all(Sandbox.objects.get(pk=s.pk).state in (State.READY, State.FAILED) for s in sandboxes),
        timeout=120,
        what="nats and rabbitmq ready",
        interval=0.05,
    )
    for sandbox in sandboxes:
        sandbox.refresh_from_db()
        assert sandbox.state == State.READY, sandbox.error
    end = task_log.fence()
    booted = ", ".join(f"{s.broker} {(s.ready_at - s.created_at).total_seconds():.2f} s" for s in sandboxes)
    tasks = [name for name in task_log.since(start)[: end - start] if name != jobs.POOL_FILL]
    # One task each starts the unit and returns; the agent tells the worker's follower of every stage after that.
    assert tasks == [jobs.PROVISION, jobs.PROVISION], f"{len(tasks)} tasks while the brokers booted ({booted}): {tasks}"
