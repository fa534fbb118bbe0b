"""The warm pool's size follows demand: recent requests make it grow within its memory budget, and it shrinks back.

Counted in the run's real Redis; the database transaction of each test is rolled back, so the
provisions and stops the fill queues after commit are never sent.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from sandboxes.brokers import BROKERS
from sandboxes.models import Purpose, Sandbox, State
from sandboxes.services import pool

pytestmark = pytest.mark.django_db


@pytest.fixture
def pooled_kinds(settings, request):
    # A demand count of this test's own (the key names the instance), whatever other tests asked for.
    settings.SANDBOX_INSTANCE = f"demand-{request.node.name[-20:]}"
    settings.SANDBOX_WARM_POOL = {"nats": 1, "rabbitmq": 1}
    # Room for the floors and four NATS more: a fifth, or one RabbitMQ more, would not fit.
    settings.SANDBOX_WARM_POOL_MEMORY_MB = BROKERS["nats"].idle_mb * 5 + BROKERS["rabbitmq"].idle_mb
    settings.SANDBOX_WARM_POOL_DEMAND_WINDOW_S = 600
    return settings


def pooled(broker: str) -> list[Sandbox]:
    return list(Sandbox.objects.filter(purpose=Purpose.POOL, broker=broker).exclude(state=State.STOPPING))


def test_a_class_asking_for_a_broker_grows_its_pool_within_the_budget_and_the_pool_shrinks_when_demand_passes(
    pooled_kinds, learner
):
    assert pool.sandbox_pool_fill() and pool.sandbox_pool_sizes() == {"nats": 1, "rabbitmq": 1}
    # Seven learners ask for NATS (none waits ready yet), one for RabbitMQ, one for Kafka (not pooled here).
    for _ in range(7):
        assert pool.sandbox_pool_claim(user_id=learner.pk, broker="nats") is None
    pool.sandbox_pool_claim(user_id=learner.pk, broker="rabbitmq")
    pool.sandbox_pool_claim(user_id=learner.pk, broker="kafka")
    assert pool.sandbox_pool_demand(broker="nats") == 7
    assert pool.sandbox_pool_sizes() == {"nats": 5, "rabbitmq": 1}  # 7 wanted; the budget holds 4 beyond the floor
    # Three of them start brokers of their own meanwhile: those are served, the pool need not race them.
    starting = [
        Sandbox.objects.create(user=user, broker="nats", state=State.PROVISIONING, purpose=Purpose.LEARNER)
        for user in [learner, *(User.objects.create_user(f"classmate{n}", password="x") for n in range(2))]
    ]
    assert pool.sandbox_pool_sizes() == {"nats": 4, "rabbitmq": 1}
    Sandbox.objects.filter(pk__in=[s.pk for s in starting]).update(state=State.READY)
    pool.sandbox_pool_fill()
    assert (len(pooled("nats")), len(pooled("rabbitmq")), len(pooled("kafka"))) == (5, 1, 0)
    # They boot; then the class has its brokers and nobody asks any more.
    Sandbox.objects.filter(purpose=Purpose.POOL).update(state=State.READY, stage="ready")
    pooled_kinds.SANDBOX_WARM_POOL_DEMAND_WINDOW_S = 0
    assert pool.sandbox_pool_fill() == []
    assert (len(pooled("nats")), len(pooled("rabbitmq"))) == (1, 1)
    assert Sandbox.objects.filter(purpose=Purpose.POOL, broker="nats", state=State.STOPPING).count() == 4
