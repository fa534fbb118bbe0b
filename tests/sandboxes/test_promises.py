"""Promises of the sandbox service that had no test: the state table, the per-user quota, extend
and the idle reaper (the last three on a real sandbox, through the real worker)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from sandboxes.backends import get_backend
from sandboxes.models import Sandbox, State
from sandboxes.services import actions, reconcile
from sandboxes.services.lifecycle import TRANSITIONS, SandboxError, TransitionRefused, sandbox_transition
from tests.sandboxes.test_lifecycle import provision
from tests.services import wait_for

STATES = list(TRANSITIONS)


@pytest.mark.django_db
def test_every_transition_the_table_allows_happens_and_every_other_is_refused_leaving_the_row(learner, redis_server):
    seen = {}
    for source in STATES:
        for target in STATES:
            sandbox = Sandbox.objects.create(user=learner, broker="nats", state=source, stage=source)
            try:
                sandbox_transition(sandbox, target)
                seen[source, target] = "moved"
            except TransitionRefused:
                seen[source, target] = "refused"
            assert Sandbox.objects.get(pk=sandbox.pk).state == (target if seen[source, target] == "moved" else source)
            sandbox.delete()
    # A state may be written again (a provisioning stage moves on), and the table says the rest.
    expected = {(s, t): "moved" if t == s or t in TRANSITIONS[s] else "refused" for s in STATES for t in STATES}
    assert seen == expected
    assert seen[State.STOPPED, State.READY] == "refused" and seen[State.STOPPING, State.READY] == "refused"


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_the_quota_refuses_one_more_extend_holds_off_the_reaper_and_the_reaper_stops_an_idle_sandbox(
    celery_worker, learner, units_cleanup, settings
):
    settings.SANDBOX_QUOTA_PER_USER = 1
    sandbox = provision(learner, "nats")
    # The quota: a second broker is refused with the reason, and nothing is recorded for it.
    with pytest.raises(SandboxError, match="это предел"):
        actions.sandbox_ensure(user_id=learner.pk, broker="redis")
    assert not Sandbox.objects.filter(user=learner, broker="redis").exists()
    # Extend: an idle deadline that has passed moves a full timeout ahead, and the reaper leaves it.
    Sandbox.objects.filter(pk=sandbox.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    before = timezone.now()
    actions.sandbox_extend(user_id=learner.pk, broker="nats")
    sandbox.refresh_from_db()
    assert sandbox.expires_at >= before + timedelta(seconds=settings.SANDBOX_IDLE_TIMEOUT_S)
    assert reconcile.sandboxes_reap_idle() == []
    # The reaper: once idle past its deadline, the sandbox is stopped and its unit is gone.
    Sandbox.objects.filter(pk=sandbox.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert reconcile.sandboxes_reap_idle() == [sandbox.pk]
    wait_for(lambda: Sandbox.objects.get(pk=sandbox.pk).state == State.STOPPED, timeout=60, what="reaped sandbox stopped")
    assert get_backend().processes(sandbox.unit) == []
    assert sandbox.unit not in get_backend().list_units()
