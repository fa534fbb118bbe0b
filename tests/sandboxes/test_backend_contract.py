"""A sandbox through the real worker, the same on every backend: it starts, serves a cell and stops without leftovers,
its cells reach their own broker only, a runaway cell is stopped, and a worker killed mid-provisioning is repaired.

Each case runs once per backend (the ``backend`` fixture, tests/sandboxes/conftest.py), through a
worker that runs it. What only one backend has (a container's hardening, a docker network's
gateway) is checked in a branch named for it; the rest of each backend's own behaviour is in
test_lifecycle.py (process) and test_docker_backend.py (docker).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User

from courseplatform.celery import app
from sandboxes import agent_client
from sandboxes.backends import get_backend
from sandboxes.backends.docker_labels import LABEL_INSTANCE, LABEL_SANDBOX
from sandboxes.brokers import get_broker
from sandboxes.models import Sandbox, State
from sandboxes.services import actions, provisioning, readiness, reconcile
from tests.sandboxes.backends_under_test import BackendUnderTest
from tests.sandboxes.docker_units import assert_hardened
from tests.sandboxes.test_lifecycle import BROKERS, provision, run_cell, running
from tests.services import reachable_from_the_host, wait_for, worker_in_place_of
from tests.smoke_cells import PRODUCE_CONSUME

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

CONFINED = """
import os
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print("uid", os.getuid(), "caps", status["CapEff"].strip(), "nnp", status["NoNewPrivs"].strip())
for path in ({folder!r}, {folder!r} + "/data", "/opt/probe"):
    try:
        open(path, "w") if path == "/opt/probe" else os.listdir(path)
        print(path, "open")
    except OSError as e:
        print(path, "denied", e.errno)
"""


def console_page(sandbox: Sandbox) -> tuple[int, bytes]:
    """The status and body of the broker console's first page. A first request may outlast the agent client's 40 s on
    a busy machine (ActiveMQ's, on the process backend, did at a load of 30), so a timed-out request is asked again;
    any answer, whatever its status, is the one returned."""
    console = get_broker(sandbox.broker).console
    assert console is not None
    answers: list[tuple[int, bytes]] = []

    def answered() -> bool:
        where = provisioning.sandbox_socket(sandbox=sandbox)
        try:
            status, _, page = asyncio.run(
                agent_client.console(where, method="GET", target=console.path + "/", headers=[], body=b"")
            )
        except agent_client.AgentUnavailable:
            return False
        answers.append((status, page))
        return True

    wait_for(answered, timeout=120, what=f"the {sandbox.broker} console answering", interval=1)
    return answers[0]


@pytest.mark.parametrize("broker", BROKERS)
def test_a_broker_starts_through_the_worker_serves_a_cell_and_stops_without_leftovers(
    backend: BackendUnderTest, learner, units_cleanup, broker, request
):
    sandbox = provision(learner, broker, timeout=150)
    if backend.name == "docker":  # every container of this run is hardened, this one and any other still there
        client = request.getfixturevalue("docker_client")
        for container in client.containers.list(filters={"label": f"{LABEL_INSTANCE}={django_settings.SANDBOX_INSTANCE}"}):
            assert_hardened(client, container, sandbox=Sandbox.objects.get(pk=container.labels[LABEL_SANDBOX]))
    pids = get_backend().processes(sandbox.unit)
    assert len(pids) >= 2  # the agent and the broker at least
    result, output = run_cell(sandbox, PRODUCE_CONSUME[broker], timeout=120)
    assert result["status"] == 0, output
    assert "got hello-" in output
    # The cell runs as an unprivileged uid: no capabilities, no new privileges, nothing of the agent's or broker's.
    folder = backend.folder_in_cells(sandbox.unit)
    result, output = run_cell(sandbox, CONFINED.format(folder=folder))
    assert result["status"] == 0, output
    assert "caps 0000000000000000 nnp 1" in output and "uid 0 " not in output, output
    assert all(f"{path} denied " in output for path in (folder, f"{folder}/data", "/opt/probe")), output
    if backend.name == "docker":  # the unit's folder is the agent's (EACCES), the container's root read-only (EROFS)
        assert f"{folder} denied 13" in output and f"{folder}/data denied 13" in output, output
        assert "/opt/probe denied 30" in output, output
    if get_broker(broker).console is not None:  # the broker's own web console answers its agent
        status, page = console_page(sandbox)
        assert status == 200, page[:2000]
    actions.sandbox_stop(user_id=learner.pk, broker=broker)
    wait_for(lambda: Sandbox.objects.get(pk=sandbox.pk).state == State.STOPPED, timeout=60, what="stopped")
    assert backend.leftovers(sandbox.unit) == {}
    assert get_backend().processes(sandbox.unit) == []
    assert [p for p in pids if running(p)] == []
    assert sandbox.unit not in get_backend().list_units()


PROBE = """
import json, os, socket, threading
def reach(host, port):
    s = socket.socket(); s.settimeout(2)
    try:
        s.connect((host, port)); return "open"
    except OSError as e:
        return "closed"
    finally:
        s.close()
targets = {targets!r}
results = {{}}
def resolve(name):
    try:
        socket.getaddrinfo(name, 443); return "resolved"
    except OSError:
        return "unresolved"
threads = [threading.Thread(target=lambda k=k, h=h, p=p: results.__setitem__(k, reach(h, p))) for k, (h, p) in targets.items()]
threads += [threading.Thread(target=lambda n=n: results.__setitem__("dns " + n, resolve(n))) for n in ("pypi.org", "host.docker.internal", "deb.debian.org")]
[t.start() for t in threads]; [t.join() for t in threads]
results["socket of the other sandbox visible"] = os.path.exists({their_socket!r})
print(json.dumps(results))
"""


def test_a_cell_reaches_its_own_broker_and_nothing_else(backend: BackendUnderTest, learner, units_cleanup, redis_server, request):
    other = User.objects.create_user("other-learner", password="x-pass-12345")
    mine = provision(learner, "nats")
    theirs = provision(other, "nats")
    redis_port = int(redis_server.rsplit(":", 1)[1].split("/")[0])
    # A service of the host's on every address, and an outside server: each answers the host, never a cell.
    with reachable_from_the_host() as host_targets:
        targets = {"own broker": ("127.0.0.1", 4222), "redis on loopback": ("127.0.0.1", redis_port), **host_targets}
        for name, (address, _) in host_targets.items():  # every address of the host: loopback, the uplink's, bridges'
            if name.startswith("host service"):
                targets[f"redis via {address}"] = (address, redis_port)
        if backend.name == "docker":  # a container has addresses of its own: the other one's, its network's gateway
            client = request.getfixturevalue("docker_client")
            their_ip = client.containers.get(theirs.unit).attrs["NetworkSettings"]["Networks"][f"{theirs.unit}-net"]["IPAddress"]
            my_gateway = client.networks.get(f"{mine.unit}-net").attrs["IPAM"]["Config"][0]["Gateway"]
            port = next(p for _, p in host_targets.values())
            targets["other sandbox's broker"] = (their_ip, 4222)
            targets["redis via own gateway"] = (my_gateway, redis_port)
            targets["host service via own gateway"] = (my_gateway, port)
        probe = PROBE.format(targets=targets, their_socket=str(provisioning.sandbox_socket(sandbox=theirs)))
        result, output = run_cell(mine, probe, timeout=60)
    assert result["status"] == 0, output
    seen = json.loads(output)
    # Every host target answered the host a moment ago (reachable_from_the_host), beyond loopback too.
    assert any(not address.startswith("127.") for address, _ in host_targets.values()), host_targets
    assert seen == {
        "own broker": "open",
        **{name: "closed" for name in targets if name != "own broker"},
        "dns pypi.org": "unresolved",
        "dns host.docker.internal": "unresolved",
        "dns deb.debian.org": "unresolved",
        "socket of the other sandbox visible": False,
    }


def settled_count(unit: str) -> int:
    """How many processes the unit has once that number has not changed for a second."""
    counts: list[int] = []

    def steady() -> bool:
        counts.append(len(get_backend().processes(unit)))
        return len(counts) >= 5 and len(set(counts[-5:])) == 1

    wait_for(steady, timeout=30, what="the unit's processes settled", interval=0.25)
    return counts[-1]


def test_a_runaway_cell_is_stopped_and_the_sandbox_keeps_working(backend: BackendUnderTest, learner, units_cleanup):
    sandbox = provision(learner, "nats")
    # The unit at rest after a run: the agent, the broker, the cell template and the process it forked for the
    # next run (docker: and its init). Counted once that count holds for a second.
    result, _ = run_cell(sandbox, "print('warm')", timeout=30)
    assert result["status"] == 0
    before = settled_count(sandbox.unit)
    started = time.monotonic()
    result, _ = run_cell(sandbox, "while True:\n    pass\n", timeout=2)
    assert result["reason"] == "timeout"
    assert time.monotonic() - started < 10
    # A fork bomb meets the cells' process limit, well inside the unit's: the broker keeps its threads.
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
    # Nothing of those cells is left behind (one warm process waits for the next).
    wait_for(lambda: len(get_backend().processes(sandbox.unit)) == before, timeout=10, what="only the unit's own processes left")


def test_a_worker_killed_while_brokers_boot_leaves_each_sandbox_ready_or_failed(
    backend: BackendUnderTest, learner, units_cleanup
):
    # A second worker of this backend takes these sandboxes; it is killed while their brokers boot, and its follower with it.
    other = User.objects.create_user("other-learner", password="x-pass-12345")
    units_of = get_backend()
    with backend.environment(), worker_in_place_of(backend.worker, "doomed") as doomed:
        adopted, stale = (actions.sandbox_ensure(user_id=user.pk, broker="rabbitmq") for user in (learner, other))
        units = [f"{django_settings.SANDBOX_INSTANCE}-{s.pk}" for s in (adopted, stale)]
        # Kill once both brokers boot (their agents told the follower), so that what happens below is the repair's doing.
        wait_for(
            lambda: all(Sandbox.objects.get(pk=s.pk).stage == "waiting" for s in (adopted, stale)),
            timeout=60,
            what="both brokers booting",
            interval=0.05,
        )
        os.killpg(doomed.process.pid, signal.SIGKILL)
        doomed.process.wait()
        # What the crash took with it: tasks it held must not reach the next worker here.
        app.control.purge()
        for sandbox in (adopted, stale):
            sandbox.refresh_from_db()
            assert sandbox.state == State.PROVISIONING  # nobody follows them now
        assert [units_of.poll(unit) for unit in units] == [None, None]  # their units run on, owned by nobody
        orphans = units_of.processes(units[1])
        assert orphans, "the unit's processes outlive the worker that started them"
        # One provisioning for longer than a provision can take is failed and its unit removed.
        Sandbox.objects.filter(pk=stale.pk).update(created_at=stale.created_at.replace(year=2000))
        report = reconcile.sandboxes_reconcile()
        stale.refresh_from_db()
        assert stale.state == State.FAILED
        assert stale.pk in report["stuck"]
        assert backend.leftovers(units[1]) == {}
        assert units_of.processes(units[1]) == [] and units_of.poll(units[1]) == -1
        assert [p for p in orphans if running(p)] == []
        # The other is handed to a follower again once the dead one's lease has lapsed.
        wait_for(
            lambda: not readiness.sandbox_followed(sandbox_id=adopted.pk),
            timeout=readiness.LEASE_S + 10,
            what="the dead follower's lease lapsed",
        )
        first = backend.first_pid(units[0])
        assert readiness.sandboxes_adopt() == [adopted.pk]
    # This backend's worker is back and takes the queued provision: the same unit, followed from where it is.
    wait_for(lambda: Sandbox.objects.get(pk=adopted.pk).state != State.PROVISIONING, timeout=120, what="adopted sandbox ready")
    adopted.refresh_from_db()
    assert adopted.state == State.READY, adopted.error
    assert running(first) and backend.first_pid(units[0]) == first, "the unit was followed, not started again"
    result, output = run_cell(adopted, PRODUCE_CONSUME["rabbitmq"], timeout=60)
    assert result["status"] == 0 and "got hello-" in output, output
