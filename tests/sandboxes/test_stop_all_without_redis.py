"""make run's Ctrl+C stops Redis with the rest; stopping every sandbox afterwards must still stop them all."""

from __future__ import annotations

import pytest
from kombu.exceptions import OperationalError

from sandboxes.models import Sandbox, State
from sandboxes.services import jobs
from sandboxes.services.reconcile import sandboxes_stop_all

pytestmark = pytest.mark.django_db(transaction=True)


def test_every_sandbox_is_stopped_when_the_task_queue_cannot_be_reached(learner, monkeypatch):
    for broker in ("nats", "rabbitmq", "kafka"):
        Sandbox.objects.create(user=learner, broker=broker, state=State.READY, stage="ready", unit=f"ba-test-gone-{broker}")

    def unreachable(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(jobs, "job_enqueue", unreachable)  # the failure on purpose: Redis is already gone
    sandboxes_stop_all()
    assert sorted(Sandbox.objects.values_list("broker", "state")) == [
        ("kafka", State.STOPPED),
        ("nats", State.STOPPED),
        ("rabbitmq", State.STOPPED),
    ]
