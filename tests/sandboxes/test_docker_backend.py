"""What only the docker backend does: reconciliation of containers gone behind its back, idempotent starts of
containers, kept data handed over as an image, and the three-broker Kafka cluster in one hardened container.

What every backend does (a broker in a hardened container serves a cell and stops without
leftovers, isolation, runaway cells, a killed worker's repair) is in test_backend_contract.py.
settings.SANDBOX_BACKEND is the docker backend here and in this module's own Celery worker
(``docker_worker``, tests/sandboxes/conftest.py). The session starts a Docker Engine and
builds the images when they are missing (``docker_client``), and fails, never skips, when it cannot.
"""

from __future__ import annotations

import json
from pathlib import Path

import psutil
import pytest
from django.contrib.auth.models import User

from sandboxes import agent_client
from sandboxes.backends import get_backend
from sandboxes.backends.base import UnitSpec
from sandboxes.backends.docker_labels import LABEL_SANDBOX
from sandboxes.models import Sandbox, State
from sandboxes.services import actions, reconcile
from tests.sandboxes.docker_units import assert_hardened, leftovers
from tests.sandboxes.docker_workers import DOCKER_BACKEND, docker_settings
from tests.sandboxes.test_lifecycle import provision, run_cell
from tests.services import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.docker, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def docker_backend(settings) -> None:
    settings.SANDBOX_BACKEND = DOCKER_BACKEND


def test_reconciliation_removes_units_without_a_live_record_and_stops_records_whose_container_is_gone(
    docker_worker, docker_client, learner, units_cleanup
):
    other = User.objects.create_user("other-learner", password="x-pass-12345")
    vanished = provision(learner, "nats")
    orphaned = provision(other, "nats")
    backend = get_backend()
    docker_client.containers.get(vanished.unit).remove(force=True)  # gone behind the platform's back
    assert backend.poll(vanished.unit) == -1
    Sandbox.objects.filter(pk=orphaned.pk).update(state=State.STOPPED)  # a record that no longer holds its unit
    assert backend.poll(orphaned.unit) is None
    report = reconcile.sandboxes_reconcile()
    assert report["orphans"] == [orphaned.unit]
    assert report["gone"] == [vanished.pk]
    vanished.refresh_from_db()
    assert vanished.state == State.STOPPED and vanished.error
    assert leftovers(docker_client, orphaned.unit) == {}
    assert leftovers(docker_client, vanished.unit) == {}
    assert backend.list_units() == []


def test_starting_is_idempotent_a_dead_unit_is_replaced_and_stopping_what_is_gone_is_fine(docker_client, settings):
    backend = get_backend()
    name = f"{settings.SANDBOX_INSTANCE}-990001"
    unit = UnitSpec(name=name, broker="nats", owner="")
    try:
        backend.start(unit)
        first = docker_client.containers.get(name).id
        backend.start(unit)  # a redelivered task: the same container, the same network
        assert docker_client.containers.get(name).id == first
        assert len(docker_client.networks.list(names=[f"{name}-net"])) == 1
        assert backend.list_units() == [name]
        docker_client.containers.get(name).kill()
        wait_for(lambda: backend.poll(name) is not None, timeout=30, what="the killed container seen as ended")
        backend.start(unit)  # a unit that died is replaced by a fresh one
        assert docker_client.containers.get(name).id != first and backend.poll(name) is None
        assert backend.socket_path(name) == Path(settings.SANDBOX_ROOT) / name / "agent.sock"
        assert backend.socket_path(name).is_socket()
    finally:
        backend.stop(name)
    backend.stop(name)
    backend.stop(f"{settings.SANDBOX_INSTANCE}-990002")  # never existed
    assert leftovers(docker_client, name) == {}
    assert backend.poll(name) == -1 and backend.processes(name) == [] and backend.list_units() == []


@pytest.mark.parametrize("broker", ["nats", "rabbitmq"])
def test_a_stop_that_keeps_the_data_hands_the_same_image_to_the_next_unit_of_that_broker(docker_client, settings, broker):
    """Kept state in the docker backend: the unit's capped image outlives its container and carries the broker's data
    (a JetStream stream; a durable queue's persistent messages, whose node hands its folder to its own account)."""
    from tests.aio import run
    from tests.sandboxes import test_kept_state as kept_cells

    write, read, expected = {
        "nats": (kept_cells.NATS_PUBLISH, kept_cells.NATS_READ, [3, "order-0"]),
        "rabbitmq": (kept_cells.RABBIT_PUBLISH, kept_cells.RABBIT_READ, ["order-0", "order-1"]),
    }[broker]
    backend = get_backend()
    first, second = f"{settings.SANDBOX_INSTANCE}-990011", f"{settings.SANDBOX_INSTANCE}-990012"
    key = f"{settings.SANDBOX_INSTANCE}-u990-{broker}"

    def cell(name: str, code: str) -> str:
        def status() -> dict:
            return run(agent_client.status(backend.agent_address(name)))

        wait_for(lambda: status()["stage"] in ("ready", "failed"), timeout=120, what=f"{broker} ready or failed", interval=0.2)
        assert status()["ready"], status()["error"]
        output: list[str] = []

        async def collect(message):
            output.append(message.get("text", ""))

        result = run(agent_client.run(backend.agent_address(name), code=code, timeout=60, on_message=collect))
        assert result["status"] == 0, output
        return "".join(output)

    try:
        backend.start(UnitSpec(name=first, broker=broker))
        cell(first, write)
        assert (backend.stop_keeping(first, key=key) or 0) > 0
        assert leftovers(docker_client, first) == {} and backend.kept_exists(key)
        backend.start(UnitSpec(name=second, broker=broker, restore=key))
        assert not backend.kept_exists(key)  # the unit runs on it now
        assert json.loads(cell(second, read).strip().splitlines()[-1]) == expected
    finally:
        backend.stop(first)
        backend.stop(second)
        backend.discard_kept(key)
    assert leftovers(docker_client, second) == {} and backend.kept_keys() == []


CLUSTER_CELL = """
import json, os, urllib.request
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError

bootstrap = os.environ["BOOTSTRAP_SERVERS"].split(",")
admin = KafkaAdminClient(bootstrap_servers=bootstrap)
admin.create_topics([NewTopic("payments", 1, 3, topic_configs={"min.insync.replicas": "2"})])
admin.close()

def broker(node, action):
    request = urllib.request.Request(f"{os.environ['CLUSTER_CONTROL_URL']}/brokers/{node}/{action}", method="POST")
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.load(answer)

def write():
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", retries=0, request_timeout_ms=10000)
    try:
        return "accepted %d" % producer.send("payments", b"payment").get(timeout=30).offset
    except KafkaError as error:
        return "refused " + type(error).__name__
    finally:
        producer.close()

print("all three:", write())
(described,) = KafkaAdminClient(bootstrap_servers=bootstrap).describe_topics(["payments"])
(partition,) = described["partitions"]
leader = partition.get("leader", partition.get("leader_id"))
assert leader in (1, 2, 3), partition
followers = [n for n in (1, 2, 3) if n != leader]
broker(followers[0], "stop")
print("one stopped:", write())
broker(followers[1], "stop")
import time
deadline = time.time() + 60
answer = write()
while answer.startswith("accepted") and time.time() < deadline:  # the leader learns of the shrunk ISR a moment later
    time.sleep(1)
    answer = write()
print("two stopped:", answer)
"""


def test_the_three_broker_kafka_cluster_runs_in_one_hardened_container_and_refuses_acks_all_below_min_isr(
    docker_worker, docker_client, learner, units_cleanup
):
    sandbox = provision(learner, "kafka-cluster", timeout=240)
    (container,) = docker_client.containers.list(filters={"label": f"{LABEL_SANDBOX}={sandbox.pk}"})
    assert_hardened(docker_client, container, sandbox=sandbox)
    result, output = run_cell(sandbox, CLUSTER_CELL, timeout=180)
    assert result["status"] == 0, output
    assert "all three: accepted 0" in output and "one stopped: accepted 1" in output, output
    assert "two stopped: refused NotEnoughReplicas" in output, output
    actions.sandbox_stop(user_id=learner.pk, broker="kafka-cluster")
    wait_for(lambda: Sandbox.objects.get(pk=sandbox.pk).state == State.STOPPED, timeout=90, what="stopped")
    assert leftovers(docker_client, sandbox.unit) == {}


def test_the_docker_backends_worker_runs_without_root_through_a_launcher_of_its_own(
    docker_worker, docker_client, learner, units_cleanup, settings
):
    """The worker makes no loop mount and never dials the engine: the docker backend's unit launcher does (root).

    What it needs of a unit, the agent, it reaches through the platform's group, as for the process backend.
    """
    import pwd
    import stat

    from tests.security.test_platform_without_root import as_platform_user, credentials
    from tests.services import PLATFORM_USER

    sandbox = provision(learner, "nats")  # started by the worker, through its launcher; READY once the worker heard the agent
    platform = pwd.getpwnam(PLATFORM_USER)
    processes = [docker_worker.process.pid, *(c.pid for c in psutil.Process(docker_worker.process.pid).children(recursive=True))]
    for pid in processes:
        seen = credentials(pid)
        assert set(seen["uids"]) == {platform.pw_uid} and set(seen["gids"]) == {platform.pw_gid}, (pid, seen)
        assert set(seen["groups"]) <= {platform.pw_gid} and seen["cap_eff"] == 0, (pid, seen)  # no docker group, no root group
    assert docker_client.containers.get(sandbox.unit).status == "running"
    # The container's agent (its root, with CAP_CHOWN) gives its socket to the platform's group on the host.
    sock = get_backend().socket_path(sandbox.unit).stat()
    assert (sock.st_uid, sock.st_gid, stat.S_IMODE(sock.st_mode)) == (0, platform.pw_gid, 0o660)

    # As the platform's user: a cell on that agent runs; the engine's socket is closed; and without the launcher
    # the backend refuses, naming what to start, rather than failing on the engine or the loop device.
    seen = as_platform_user(
        f"""
        import asyncio, json, socket
        from sandboxes import agent_client
        from sandboxes.backends.base import UnitSpec
        from sandboxes.backends.docker import DockerBackend
        out = []
        async def collect(message):
            out.append(message.get("text", ""))
        result = asyncio.run(agent_client.run({str(get_backend().socket_path(sandbox.unit))!r}, code="import os; print(os.getuid())",
                                             timeout=30, on_message=collect))
        try:
            socket.socket(socket.AF_UNIX).connect("/var/run/docker.sock")
            engine = "open"
        except OSError as exc:
            engine = type(exc).__name__
        try:
            DockerBackend().start(UnitSpec(name={settings.SANDBOX_INSTANCE + "-990009"!r}, broker="nats", owner=""))
            alone = "started"
        except Exception as exc:
            alone = type(exc).__name__ + ": " + str(exc)
        print(json.dumps({{"status": result.get("status"), "output": "".join(out), "engine": engine, "alone": alone}}))
        """,
        env={**docker_settings(), "SANDBOX_LAUNCHER_SOCKET": "/nonexistent/launcher.sock"},
    )
    assert seen.returncode == 0, seen.stderr
    answers = json.loads(seen.stdout.splitlines()[-1])
    assert answers["status"] == 0 and int(answers["output"]) not in (0, platform.pw_uid), answers
    assert answers["engine"] == "PermissionError", answers
    assert answers["alone"].startswith("EngineUnavailable") and "sandboxes.launcher" in answers["alone"], answers
