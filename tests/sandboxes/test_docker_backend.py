"""The docker backend through the real worker: every broker in a hardened container, isolation, stop, and repair.

The same behaviours as test_lifecycle.py, with settings.SANDBOX_BACKEND switched to
the docker backend here and in this module's own Celery worker (``docker_worker``,
tests/sandboxes/conftest.py). The session starts a Docker Engine and builds the images
when they are missing (``docker_client``), and fails, never skips, when it cannot.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import docker
import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User

from courseplatform.celery import app
from sandboxes import agent_client
from sandboxes.backends import get_backend
from sandboxes.backends.base import UnitSpec
from sandboxes.backends.docker import DockerBackend
from sandboxes.backends.docker_containers import CAPABILITIES
from sandboxes.backends.docker_labels import LABEL_BROKER, LABEL_INSTANCE, LABEL_OWNER, LABEL_SANDBOX, LABEL_UNIT
from sandboxes.brokers import get_broker
from sandboxes.images import SOURCE_LABEL, UNIT_DIR
from sandboxes.models import Sandbox, State
from sandboxes.services import actions, provisioning, reconcile
from tests.sandboxes.docker_workers import DOCKER_BACKEND, docker_environment, docker_worker_start, wait_for_a_worker
from tests.sandboxes.test_lifecycle import BROKERS, PRODUCE_CONSUME, provision, run_cell, running
from tests.services import reachable_from_the_host, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.docker, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def docker_backend(settings) -> None:
    settings.SANDBOX_BACKEND = DOCKER_BACKEND


def leftovers(client: docker.DockerClient, unit: str) -> dict[str, list[str]]:
    """Everything of a unit that still exists: containers, networks (by label or by name), its folder."""
    labelled = {"label": [f"{LABEL_INSTANCE}={django_settings.SANDBOX_INSTANCE}", f"{LABEL_UNIT}={unit}"]}
    return {
        "containers": sorted(
            {c.name for c in client.containers.list(all=True, filters=labelled)}
            | {c.name for c in client.containers.list(all=True) if c.name == unit}
        ),
        "networks": sorted(
            {n.name for n in client.networks.list(filters=labelled)}
            | {n.name for n in client.networks.list() if n.name == f"{unit}-net"}
        ),
        "folder": [str(p) for p in [Path(django_settings.SANDBOX_ROOT) / unit] if p.exists()],
    }


NOTHING: dict[str, list[str]] = {"containers": [], "networks": [], "folder": []}


def assert_hardened(client: docker.DockerClient, container, *, sandbox: Sandbox) -> None:
    """What every sandbox container must be: see sandboxes/backends/docker_containers.py for why each."""
    container.reload()
    host = container.attrs["HostConfig"]
    assert host["CapDrop"] == ["ALL"]
    assert sorted(host["CapAdd"]) == sorted(CAPABILITIES)
    assert "no-new-privileges:true" in host["SecurityOpt"]
    assert host["Privileged"] is False
    assert host["PidsLimit"] == django_settings.SANDBOX_DOCKER_PIDS
    assert host["Memory"] == django_settings.SANDBOX_DOCKER_MEMORY_MB * 1024 * 1024
    assert host["MemorySwap"] == host["Memory"]  # no swap on top
    assert host["NanoCpus"] == int(django_settings.SANDBOX_DOCKER_CPUS * 1e9)
    assert host["ReadonlyRootfs"] is True
    assert set(host["Tmpfs"]) == {"/tmp"}
    # No published ports at all (one would have to be bound to 127.0.0.1).
    assert host["PublishAllPorts"] is False
    for bindings in list((host.get("PortBindings") or {}).values()) + list(
        (container.attrs["NetworkSettings"]["Ports"] or {}).values()
    ):
        assert all(b["HostIp"] == "127.0.0.1" for b in bindings or []), bindings
    # The one mount is the unit's folder; no Docker socket anywhere.
    mounts = container.attrs["Mounts"]
    assert [(m["Type"], m["Source"], m["Destination"]) for m in mounts] == [
        ("bind", str(Path(django_settings.SANDBOX_ROOT) / sandbox.unit), UNIT_DIR)
    ]
    assert not any("docker.sock" in str(m) for m in mounts + (host.get("Binds") or []))
    # One internal network of its own, labelled like the container.
    labels = {
        LABEL_INSTANCE: django_settings.SANDBOX_INSTANCE,
        LABEL_UNIT: sandbox.unit,
        LABEL_SANDBOX: str(sandbox.pk),
        LABEL_OWNER: str(sandbox.user_id),
        LABEL_BROKER: sandbox.broker,
    }
    assert container.name == sandbox.unit
    assert {k: container.labels.get(k) for k in labels} == labels
    assert container.labels[SOURCE_LABEL]  # from the image: which sources it was built from
    assert list(container.attrs["NetworkSettings"]["Networks"]) == [f"{sandbox.unit}-net"]
    network = client.networks.get(f"{sandbox.unit}-net")
    assert network.attrs["Internal"] is True
    assert network.attrs["Labels"] == labels
    assert network.attrs["Options"].get("com.docker.network.bridge.inhibit_ipv4") == "true"
    # Only docker-init and the agent run as root (with the capabilities above); the broker and cells do not.
    uids = {}
    for pid in get_backend().processes(sandbox.unit):
        status = Path(f"/proc/{pid}/status").read_text()
        uids[pid] = (int(status.split("Uid:")[1].split()[0]), Path(f"/proc/{pid}/comm").read_text().strip())
    assert sum(1 for uid, _ in uids.values() if uid == 0) == 2, uids
    assert len(uids) >= 3, uids


CONFINED = """
import os
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print("uid", os.getuid(), "caps", status["CapEff"].strip(), "nnp", status["NoNewPrivs"].strip())
for path in ("/unit", "/unit/data", "/opt/probe"):
    try:
        open(path, "w") if path == "/opt/probe" else os.listdir(path)
        print(path, "open")
    except OSError as e:
        print(path, "denied", e.errno)
"""


@pytest.mark.parametrize("broker", BROKERS)
def test_a_broker_runs_in_a_hardened_container_serves_a_cell_and_stops_without_leftovers(
    docker_worker, docker_client, learner, units_cleanup, broker
):
    sandbox = provision(learner, broker, timeout=150)
    for container in docker_client.containers.list(filters={"label": f"{LABEL_INSTANCE}={django_settings.SANDBOX_INSTANCE}"}):
        assert_hardened(docker_client, container, sandbox=Sandbox.objects.get(pk=container.labels[LABEL_SANDBOX]))
    backend = get_backend()
    assert isinstance(backend, DockerBackend)
    pids = backend.processes(sandbox.unit)
    result, output = run_cell(sandbox, PRODUCE_CONSUME[broker], timeout=120)
    assert result["status"] == 0, output
    assert "got hello-" in output
    # The cell runs as an unprivileged uid: no capabilities, no new privileges, nothing of the agent's or broker's.
    result, output = run_cell(sandbox, CONFINED)
    assert result["status"] == 0, output
    assert "caps 0000000000000000 nnp 1" in output and "uid 0 " not in output
    assert "/unit denied 13" in output and "/unit/data denied 13" in output
    assert "/opt/probe denied 30" in output  # EROFS: the root is read-only
    console = get_broker(broker).console
    if console is not None:  # the broker's own web console answers its agent inside the container
        status, _, page = asyncio.run(
            agent_client.console(
                provisioning.sandbox_socket(sandbox=sandbox), method="GET", target=console.path + "/", headers=[], body=b""
            )
        )
        assert status == 200, page[:2000]
    actions.sandbox_stop(user_id=learner.pk, broker=broker)
    wait_for(lambda: Sandbox.objects.get(pk=sandbox.pk).state == State.STOPPED, timeout=60, what="stopped")
    assert leftovers(docker_client, sandbox.unit) == NOTHING
    assert backend.processes(sandbox.unit) == []
    assert [p for p in pids if running(p)] == []
    assert sandbox.unit not in backend.list_units()


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


def test_a_cell_reaches_its_own_broker_and_nothing_else(docker_worker, docker_client, learner, units_cleanup, redis_server):
    other = User.objects.create_user("other-learner", password="x-pass-12345")
    mine = provision(learner, "nats")
    theirs = provision(other, "nats")
    redis_port = int(redis_server.rsplit(":", 1)[1].split("/")[0])
    # A service of the host's on every address, and an outside server: each answers the host, never a cell.
    with reachable_from_the_host() as host_targets:
        port = next(p for _, p in host_targets.values())
        their_ip = docker_client.containers.get(theirs.unit).attrs["NetworkSettings"]["Networks"][f"{theirs.unit}-net"][
            "IPAddress"
        ]
        my_gateway = docker_client.networks.get(f"{mine.unit}-net").attrs["IPAM"]["Config"][0]["Gateway"]
        targets = {
            "own broker": ("127.0.0.1", 4222),
            "other sandbox's broker": (their_ip, 4222),
            "redis on loopback": ("127.0.0.1", redis_port),
            "redis via own gateway": (my_gateway, redis_port),
            "host service via own gateway": (my_gateway, port),
            **host_targets,
        }
        for name, (address, _) in host_targets.items():  # every address of the host: docker0's, the uplink's, ...
            if name.startswith("host service"):
                targets[f"redis via {address}"] = (address, redis_port)
        probe = PROBE.format(targets=targets, their_socket=str(provisioning.sandbox_socket(sandbox=theirs)))
        result, output = run_cell(mine, probe, timeout=60)
    assert result["status"] == 0, output
    seen = json.loads(output)
    assert seen.pop("own broker") == "open"
    assert seen == {
        **{name: "closed" for name in targets if name != "own broker"},
        "dns pypi.org": "unresolved",
        "dns host.docker.internal": "unresolved",
        "dns deb.debian.org": "unresolved",
        "socket of the other sandbox visible": False,
    }


def test_a_runaway_cell_is_stopped_and_the_sandbox_keeps_working(docker_worker, learner, units_cleanup):
    sandbox = provision(learner, "nats")
    backend = get_backend()
    before = len(backend.processes(sandbox.unit))  # docker-init, the agent, the broker, one warm cell
    started = time.monotonic()
    result, _ = run_cell(sandbox, "while True:\n    pass\n", timeout=2)
    assert result["reason"] == "timeout"
    assert time.monotonic() - started < 10
    # A fork bomb meets the cell uid's process limit, well inside the container's: the broker keeps its threads.
    result, output = run_cell(
        sandbox, "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n", timeout=3
    )
    assert result["reason"] == "timeout"
    result, output = run_cell(sandbox, "x = bytearray(4 * 1024 ** 3)\n", timeout=10)
    assert result["status"] != 0 and "MemoryError" in output
    result, output = run_cell(sandbox, "print('x' * 100000)\nwhile True:\n    print('y' * 10000)\n", timeout=3)
    assert result["truncated"] is True
    result, output = run_cell(sandbox, PRODUCE_CONSUME["nats"])
    assert result["status"] == 0 and "got hello-nats" in output
    # Nothing of those cells is left behind (one warm process waits for the next).
    wait_for(lambda: len(backend.processes(sandbox.unit)) == before, timeout=10, what="only the unit's own processes left")


def test_a_worker_killed_while_provisioning_is_repaired_by_reconciliation(docker_worker, docker_client, learner, units_cleanup):
    # A second worker takes this sandbox; it is killed mid-provisioning, so nothing finishes it.
    docker_worker.stop()
    doomed = docker_worker_start("doomed", concurrency=1)
    backend = get_backend()
    try:
        sandbox = actions.sandbox_ensure(user_id=learner.pk, broker="rabbitmq")
        unit = f"{django_settings.SANDBOX_INSTANCE}-{sandbox.pk}"
        # Killed once its container runs and before the broker is ready (RabbitMQ takes seconds).
        wait_for(lambda: backend.poll(unit) is None, timeout=60, what="the unit's container running", interval=0.05)
        os.killpg(doomed.process.pid, signal.SIGKILL)
        doomed.process.wait()
    finally:
        doomed.stop()
        app.control.purge()  # the follow-up tasks the crash would lose, not left for the next worker to finish
        with docker_environment():
            docker_worker.__init__(docker_worker.name, docker_worker.process.args)  # this module's worker, back
        wait_for_a_worker()
    sandbox.refresh_from_db()
    assert sandbox.state == State.PROVISIONING  # stuck, as a crash leaves it
    assert backend.poll(unit) is None  # and its container runs on, owned by nobody
    Sandbox.objects.filter(pk=sandbox.pk).update(created_at=sandbox.created_at.replace(year=2000))
    report = reconcile.sandboxes_reconcile()
    sandbox.refresh_from_db()
    assert sandbox.state == State.FAILED
    assert sandbox.pk in report["stuck"]
    assert leftovers(docker_client, unit) == NOTHING
    assert backend.processes(unit) == [] and backend.poll(unit) == -1


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
    assert leftovers(docker_client, orphaned.unit) == NOTHING
    assert leftovers(docker_client, vanished.unit) == NOTHING
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
    assert leftovers(docker_client, name) == NOTHING
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
        assert leftovers(docker_client, first) == NOTHING and backend.kept_exists(key)
        backend.start(UnitSpec(name=second, broker=broker, restore=key))
        assert not backend.kept_exists(key)  # the unit runs on it now
        assert json.loads(cell(second, read).strip().splitlines()[-1]) == expected
    finally:
        backend.stop(first)
        backend.stop(second)
        backend.discard_kept(key)
    assert leftovers(docker_client, second) == NOTHING and backend.kept_keys() == []


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
    assert leftovers(docker_client, sandbox.unit) == NOTHING
