"""Sandboxes through the real worker: provision, run, isolate, stop, and repair after a killed worker."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from django.contrib.auth.models import User

from sandboxes import agent_client
from sandboxes.backends import get_backend
from sandboxes.models import Sandbox, State
from sandboxes.services import actions, pool, provisioning, reconcile
from tests.aio import run
from tests.services import reachable_from_the_host, wait_for, worker_in_place_of
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


@pytest.mark.parametrize("broker", BROKERS)
def test_a_broker_starts_through_the_worker_serves_a_cell_and_stops_without_leftovers(
    celery_worker, learner, units_cleanup, broker
):
    sandbox = provision(learner, broker)
    backend = get_backend()
    pids = backend.processes(sandbox.unit)
    assert len(pids) >= 2  # the agent and the broker at least
    result, output = run_cell(sandbox, PRODUCE_CONSUME[broker], timeout=120)
    assert result["status"] == 0, output
    assert "got hello-" in output
    actions.sandbox_stop(user_id=learner.pk, broker=broker)
    wait_for(lambda: Sandbox.objects.get(pk=sandbox.pk).state == State.STOPPED, timeout=60, what="stopped")
    assert backend.processes(sandbox.unit) == []
    assert [p for p in pids if running(p)] == []
    assert sandbox.unit not in backend.list_units()


def test_a_cell_reaches_its_own_broker_and_nothing_else(celery_worker, learner, units_cleanup, redis_server):
    other = User.objects.create_user("other-learner", password="x-pass-12345")
    mine = provision(learner, "nats")
    theirs = provision(other, "nats")
    redis_port = int(redis_server.rsplit(":", 1)[1].split("/")[0])
    with reachable_from_the_host() as host_targets:
        targets = {"own broker": ("127.0.0.1", 4222), "redis": ("127.0.0.1", redis_port), **host_targets}
        probe = f"""
import json, os, socket
def reach(host, port):
    s = socket.socket(); s.settimeout(1)
    try:
        s.connect((host, port)); return "open"
    except OSError as e:
        return "closed"
    finally:
        s.close()
seen = {{name: reach(*address) for name, address in {targets!r}.items()}}
seen["socket of the other sandbox visible"] = os.path.exists({str(provisioning.sandbox_socket(sandbox=theirs))!r})
print(json.dumps(seen))
"""
        result, output = run_cell(mine, probe)
    assert result["status"] == 0, output
    seen = json.loads(output)
    # Every one of these answered the host a moment ago (reachable_from_the_host), beyond loopback too.
    assert any(not address.startswith("127.") for address, _ in host_targets.values()), host_targets
    assert seen == {
        "own broker": "open",
        **{name: "closed" for name in targets if name != "own broker"},
        "socket of the other sandbox visible": False,
    }


def test_a_runaway_cell_is_stopped_and_the_sandbox_keeps_working(celery_worker, learner, units_cleanup):
    sandbox = provision(learner, "nats")
    started = time.monotonic()
    result, _ = run_cell(sandbox, "while True:\n    pass\n", timeout=2)
    assert result["reason"] == "timeout"
    assert time.monotonic() - started < 10
    result, output = run_cell(
        sandbox, "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n", timeout=3
    )
    assert result["reason"] == "timeout"
    result, output = run_cell(sandbox, "x = bytearray(4 * 1024 ** 3)\n", timeout=10)
    assert result["status"] != 0 and "MemoryError" in output
    result, output = run_cell(sandbox, "print('x' * 100000)\nwhile True:\n    print('y' * 10000)\n", timeout=3)
    assert result["truncated"] is True
    # Still working means the broker still answers a cell, not only that Python still prints.
    result, output = run_cell(sandbox, PRODUCE_CONSUME["nats"])
    assert result["status"] == 0 and "got hello-nats" in output, output


def test_a_worker_killed_while_provisioning_is_repaired_by_reconciliation(celery_worker, learner, units_cleanup, settings):
    # A second worker takes this sandbox; it is killed mid-provisioning, so nothing finishes it.
    with worker_in_place_of(celery_worker, "doomed") as doomed:
        sandbox = actions.sandbox_ensure(user_id=learner.pk, broker="rabbitmq")
        wait_for(
            lambda: Sandbox.objects.get(pk=sandbox.pk).state == State.PROVISIONING, timeout=30, what="provisioning", interval=0.05
        )
        # Kill once the unit's processes exist, so that "nothing left" below is the repair's doing.
        unit = f"{settings.SANDBOX_INSTANCE}-{sandbox.pk}"
        wait_for(lambda: get_backend().processes(unit), timeout=60, what="the unit's processes", interval=0.05)
        os.killpg(doomed.process.pid, signal.SIGKILL)
        doomed.process.wait()
        # What the crash took with it: the follow-up tasks it held must not reach the next worker here.
        __import__("courseplatform.celery").celery.app.control.purge()

    # Reconcile (at the worker's start, then every SANDBOX_RECONCILE_EVERY_S from beat, called here in its
    # place) takes the look at the unit that died with the doomed worker: the sandbox is finished or
    # failed within a few passes, never left "provisioning" until the stuck deadline.
    def repaired() -> bool:
        reconcile.sandboxes_reconcile()
        return Sandbox.objects.get(pk=sandbox.pk).state in (State.READY, State.FAILED)

    wait_for(repaired, timeout=60, what="repaired", interval=1)
    reconcile.sandboxes_reconcile()  # the next pass removes the unit of a failed one
    sandbox.refresh_from_db()
    if sandbox.state == State.FAILED:
        assert sandbox.error
        assert get_backend().processes(unit) == []
    else:
        assert get_backend().poll(unit) is None
    # A record stuck past the provisioning deadline is still failed and its unit removed.
    Sandbox.objects.filter(pk=sandbox.pk).update(state=State.PROVISIONING, created_at=sandbox.created_at.replace(year=2000))
    report = reconcile.sandboxes_reconcile()
    sandbox.refresh_from_db()
    assert sandbox.state == State.FAILED
    assert sandbox.pk in report["stuck"]
    assert get_backend().processes(unit) == []


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
