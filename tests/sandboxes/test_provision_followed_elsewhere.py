"""A caller that needs its broker now (an exercise proof) waits for it even when another follower holds it.

The periodic adoption may queue a follower for a sandbox in the moment between its unit's start and
its own follower's lease; the caller's follower then finds the lease taken and returns at once. The
caller must still get the broker ready, not "the broker did not start".
"""

from __future__ import annotations

import threading
import time

import pytest
import redis
from django.conf import settings

from sandboxes.models import Purpose, Sandbox, State
from sandboxes.services import provisioning, readiness
from tests.services import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_provision_whose_sandbox_another_follower_holds_returns_it_ready(learner, units_cleanup):
    sandbox = Sandbox.objects.create(
        user=learner, broker="nats", purpose=Purpose.VERIFY, state=State.REQUESTED, stage="requested"
    )
    lease = readiness._lease_key(sandbox.pk)
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.set(lease, "another-follower", ex=60)  # the adoption's follower got there first

    outcome: list[Sandbox] = []
    caller = threading.Thread(target=lambda: outcome.append(provisioning.sandbox_provision(sandbox_id=sandbox.pk)))
    caller.start()
    try:
        # The caller has started the unit and its follower has found the lease taken.
        wait_for(lambda: Sandbox.objects.get(pk=sandbox.pk).state == State.PROVISIONING, timeout=30, what="started")
        time.sleep(1)
        assert caller.is_alive(), "the caller gave up while another follower held its sandbox"
        # The other follower does its work: here, this process's follower once the lease is its to take.
        client.delete(lease)
        readiness.sandbox_follow(sandbox_id=sandbox.pk).result(timeout=120)
        caller.join(120)
        assert outcome and outcome[0].state == State.READY, outcome and (outcome[0].state, outcome[0].error)
    finally:
        provisioning.sandbox_unit_stop(sandbox_id=sandbox.pk)
