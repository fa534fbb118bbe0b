"""State changes and pool claims stay correct when requests race, on Postgres as in production."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.contrib.auth.models import User
from django.db import connection

from sandboxes.models import Purpose, Sandbox, State
from sandboxes.services import jobs, lifecycle, pool, provisioning

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_suite_runs_on_postgres():
    assert connection.vendor == "postgresql"


def test_a_late_provisioning_step_cannot_write_ready_over_a_stop():
    sandbox = Sandbox.objects.create(broker="nats", state=State.PROVISIONING, stage="starting", purpose=Purpose.POOL)
    late = Sandbox.objects.get(pk=sandbox.pk)  # what the provisioning task read, before the stop
    lifecycle.sandbox_transition(Sandbox.objects.get(pk=sandbox.pk), State.STOPPING)
    late.connection = {"NATS_URL": "nats://127.0.0.1:4222"}
    with pytest.raises(lifecycle.TransitionRefused):
        lifecycle.sandbox_transition(late, State.READY, stage="ready")
    sandbox.refresh_from_db()
    assert (sandbox.state, sandbox.connection) == (State.STOPPING, {})


def test_a_ready_report_overtaken_by_a_stop_ends_quietly(monkeypatch):
    """The follower reads PROVISIONING, the agent said ready, but a stop lands in between: no error, no READY."""
    sandbox = Sandbox.objects.create(broker="nats", state=State.PROVISIONING, stage="starting", unit="x", purpose=Purpose.POOL)
    read = provisioning.Sandbox.objects.get

    def read_then_stop(**lookup):
        found = read(**lookup)
        lifecycle.sandbox_transition(read(pk=sandbox.pk), State.STOPPING)  # the stop arrives right after the read
        monkeypatch.setattr(provisioning.Sandbox.objects, "get", read)
        return found

    monkeypatch.setattr(provisioning.Sandbox.objects, "get", read_then_stop)
    ready = {"ready": True, "stage": "ready", "connection": {"NATS_URL": "nats://127.0.0.1:4222"}}
    assert provisioning.sandbox_provision_apply(sandbox_id=sandbox.pk, status=ready) is True
    sandbox.refresh_from_db()
    assert sandbox.state == State.STOPPING


def test_learners_racing_for_the_warm_pool_each_get_a_different_sandbox_or_none(monkeypatch):
    # Each claim asks for a refill. The session's Celery worker, when a test before this one started it, would run
    # it now and stop these three as surplus (this run's pool size is none) while the racers still race for them.
    refills: list[str] = []
    monkeypatch.setattr(jobs, "job_enqueue", lambda name, *args: refills.append(name))
    pooled = [Sandbox.objects.create(broker="nats", state=State.READY, stage="ready", purpose=Purpose.POOL) for _ in range(3)]
    users = [User.objects.create_user(f"racer{n}", password="x") for n in range(8)]
    barrier = threading.Barrier(len(users))
    claims: dict[int, int | None] = {}

    def claim(user: User) -> None:
        from django.db import connections

        barrier.wait()
        try:
            won = pool.sandbox_pool_claim(user_id=user.pk, broker="nats")
            claims[user.pk] = won.pk if won else None
        finally:
            connections.close_all()

    threads = [threading.Thread(target=claim, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    won = [pk for pk in claims.values() if pk is not None]
    assert len(claims) == len(users)
    assert sorted(won) == sorted(s.pk for s in pooled), "every pooled sandbox goes to exactly one learner"
    owners = Counter(Sandbox.objects.filter(pk__in=won).values_list("user_id", flat=True))
    assert all(n == 1 for n in owners.values()) and len(owners) == 3
    assert refills == [jobs.POOL_FILL] * 3  # one refill asked for each sandbox taken
