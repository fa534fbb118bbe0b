"""A pooled broker is free room only for a learner who will take it: one who resumes kept data starts a unit
of their own, so admission counts its cost and may stop the idle pooled one of the same kind to make room.

Seen in the booked burst of the bench: thirty learners with kept RabbitMQ data came back to a pool of thirty
booked RabbitMQs; admission counted each as free, started thirty more units past capacity, and most waited.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from sandboxes.brokers import BROKERS
from sandboxes.models import KeptState, Purpose, QueuedRequest, Sandbox, State
from sandboxes.services import admission

pytestmark = pytest.mark.django_db


@pytest.fixture
def full_of_one_pooled_nats(settings):
    """Room for one NATS unit, held by a ready pooled one."""
    settings.SANDBOX_CAPACITY_MB = BROKERS["nats"].memory_mb
    QueuedRequest.objects.all().delete()
    return Sandbox.objects.create(purpose=Purpose.POOL, user=None, broker="nats", state=State.READY, stage="ready")


def starts():
    started: list[int] = []

    def start(user_id: int, broker: str) -> Sandbox:
        started.append(user_id)
        return Sandbox.objects.create(user_id=user_id, broker=broker, state=State.REQUESTED, purpose=Purpose.LEARNER)

    return started, start


def test_a_learner_resuming_kept_data_waits_and_the_idle_pooled_unit_is_stopped_for_them(full_of_one_pooled_nats):
    returning = User.objects.create_user("returning", password="x")
    KeptState.objects.create(user=returning, broker="nats", key="ba-kept-1", saved_at=timezone.now())
    started, start = starts()
    with pytest.raises(admission.SandboxQueued):
        admission.admission_enter(user_id=returning.pk, broker="nats", start=start)
    assert started == []  # not past capacity
    full_of_one_pooled_nats.refresh_from_db()
    assert full_of_one_pooled_nats.state == State.STOPPING  # its room goes to the head of the queue


def test_a_new_learner_takes_the_pooled_unit_at_no_cost(full_of_one_pooled_nats):
    newcomer = User.objects.create_user("newcomer", password="x")
    started, start = starts()
    admission.admission_enter(user_id=newcomer.pk, broker="nats", start=start)
    assert started == [newcomer.pk]
    full_of_one_pooled_nats.refresh_from_db()
    assert full_of_one_pooled_nats.state == State.READY
