"""The process backend's sandboxes through the real worker: the warm pool; and the helpers every sandbox test uses.

What every backend must do (start, serve, isolate, stop, repair) is in test_backend_contract.py,
run on this backend and on the others.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from django.contrib.auth.models import User

from sandboxes import agent_client
from sandboxes.models import Sandbox, State
from sandboxes.services import actions, pool, provisioning
from tests.aio import run
from tests.services import wait_for, worker_in_place_of
from tests.smoke_cells import PRODUCE_CONSUME

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

BROKERS = ["nats", "rabbitmq", "activemq", "kafka", "redis"]


def running(pid: int) -> bool:
    """Alive and not a zombie (a zombie holds nothing; this machine's PID 1 does not reap orphans)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def provision(user: User, broker: str, timeout: float = 120) -> Sandbox:
    sandbox = actions.sandbox_ensure(user_id=user.pk, broker=broker)
    wait_for(
        lambda: Sandbox.objects.get(pk=sandbox.pk).state in (State.READY, State.FAILED),
        timeout=timeout,
        what=f"{broker} ready",
        interval=0.1,
    )
    sandbox.refresh_from_db()
    assert sandbox.state == State.READY, sandbox.error
    return sandbox


def run_cell(sandbox: Sandbox, code: str, timeout: float = 30) -> tuple[dict, str]:
    output: list[str] = []

    async def collect(message):
        output.append(message.get("text", ""))

    result = run(agent_client.run(provisioning.sandbox_socket(sandbox=sandbox), code=code, timeout=timeout, on_message=collect))
    return result, "".join(output)


def test_a_learner_gets_a_ready_broker_at_once_from_the_warm_pool_which_the_worker_refills(
    celery_worker, learner, units_cleanup, settings
):
    settings.SANDBOX_WARM_POOL = {"nats": 1}  # this process's view; the worker below gets the same from its environment
    with worker_in_place_of(celery_worker, "pooler", env={"SANDBOX_WARM_POOL": "nats=1"}):
        # The worker fills the pool as it starts (reconcile, then fill).
        def pooled() -> list[int]:
            return list(Sandbox.objects.filter(purpose="pool", broker="nats", state=State.READY).values_list("pk", flat=True))

        wait_for(pooled, timeout=120, what="the worker's pooled sandbox ready")
        (pooled_id,) = pooled()
        assert pool.sandbox_pool_fill() == []  # the pool is full: nothing more starts
        started = time.monotonic()
        sandbox = actions.sandbox_ensure(user_id=learner.pk, broker="nats")
        assert time.monotonic() - started < 0.5
        assert (sandbox.pk, sandbox.state, sandbox.user_id) == (pooled_id, State.READY, learner.pk)
        assert sandbox.expires_at is not None
        result, output = run_cell(sandbox, PRODUCE_CONSUME["nats"])
        assert result["status"] == 0 and "got hello-nats" in output
        # The claim queued a fill; the worker, seeing the same pool size, starts a new pooled sandbox.
        wait_for(
            lambda: pooled() and pooled_id not in pooled(),
            timeout=120,
            what="the worker topping the pool up",
        )
