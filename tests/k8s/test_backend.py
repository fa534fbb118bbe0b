"""The kubernetes backend on the two-node lab, through the real Celery worker.

A learner's sandbox of each broker kind becomes a Pod (with its Secret and NetworkPolicy) in the lab,
made by the platform's limited account; its agent is reached over the pod network with
the unit's token. The image is the one `make images` builds for the docker backend,
flattened with this checkout's agent and pushed to the lab's registry
(sandboxes/images/registry.py): nothing is pulled from the internet.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import signal
import time
from datetime import datetime
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from kubernetes.utils import parse_quantity

from courseplatform.celery import app
from sandboxes import agent_client
from sandboxes.agent import protocol
from sandboxes.backends import get_backend
from sandboxes.backends.base import AgentAddress
from sandboxes.backends.kubernetes import (
    AGENT_PORT,
    ANNOTATION_OWNER,
    LABEL_BROKER,
    LABEL_INSTANCE,
    LABEL_SANDBOX,
    LABEL_UNIT,
    KubernetesBackend,
)
from sandboxes.backends.kubernetes_manifests import CHECKER_PORT
from sandboxes.backends.unit_memory import unit_memory
from sandboxes.brokers import broker_entry
from sandboxes.models import KeptState, Sandbox, State
from sandboxes.services import actions, kept, lifecycle, provisioning, readiness, reconcile
from tests.aio import in_thread, run
from tests.k8s.lab import Lab, get_json, k8s_settings, lab_images, leftovers, memory_mib
from tests.sandboxes.test_kept_state import NATS_PUBLISH, NATS_READ, cell_json, cell_ok, kept_cleanup, stop  # noqa: F401
from tests.sandboxes.test_lifecycle import provision, run_cell
from tests.security.test_platform_without_root import assert_runs_as_the_platforms_user
from tests.services import PLATFORM_USER, wait_for, worker_in_place_of
from tests.smoke_cells import PRODUCE_CONSUME

pytestmark = [
    pytest.mark.k8s,
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(1200),
    pytest.mark.usefixtures("k8s_backend"),
]

#: Every kind, started side by side as a learner in chapter 6.1 holds them: their four pods fill the lab's two nodes.
BROKERS = ["nats", "kafka", "rabbitmq", "activemq"]


@pytest.fixture(scope="module")
def images(lab: Lab) -> dict[str, str]:
    """Each broker's image in the lab's registry; the Docker images are built first when missing."""
    try:
        return lab_images(lab, BROKERS)
    except RuntimeError as exc:
        pytest.fail(str(exc))


def assert_hardened(pod: dict[str, Any], *, sandbox: Sandbox) -> None:
    """What every sandbox pod must be: see sandboxes/backends/kubernetes.py for why each."""
    spec = pod["spec"]
    assert pod["metadata"]["name"] == sandbox.unit
    labels = {
        LABEL_INSTANCE: django_settings.SANDBOX_INSTANCE,
        LABEL_UNIT: sandbox.unit,
        LABEL_SANDBOX: str(sandbox.pk),
        LABEL_BROKER: sandbox.broker,
    }
    assert {k: pod["metadata"]["labels"].get(k) for k in labels} == labels
    assert pod["metadata"]["annotations"][ANNOTATION_OWNER] == str(sandbox.user_id)
    assert spec["automountServiceAccountToken"] is False
    assert spec["enableServiceLinks"] is False
    assert not any(spec.get(key) for key in ("hostNetwork", "hostPID", "hostIPC"))
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    # No host paths, and no volume the API server would add (a ServiceAccount token is a projected one).
    kinds = sorted(next(k for k in v if k != "name") for v in spec["volumes"])
    assert kinds == ["emptyDir", "emptyDir", "emptyDir", "secret", "secret"]
    assert all("sizeLimit" in v["emptyDir"] for v in spec["volumes"] if "emptyDir" in v)
    assert [c["name"] for c in spec["containers"]] == ["agent", "checker"]
    # The network fence (kubernetes_fence.py): the pod's one root process, with one capability, before the agent.
    [fence] = spec["initContainers"]
    assert fence["name"] == "fence" and fence["command"][0] == "/usr/sbin/nft"
    assert fence["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["NET_ADMIN"]}
    assert fence["securityContext"]["allowPrivilegeEscalation"] is False
    assert fence["securityContext"]["readOnlyRootFilesystem"] is True
    assert fence["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not fence.get("volumeMounts")
    [fence_status] = pod["status"]["initContainerStatuses"]
    assert fence_status["state"]["terminated"]["exitCode"] == 0
    container, checker = spec["containers"]
    for context in (container["securityContext"], checker["securityContext"]):
        assert context["allowPrivilegeEscalation"] is False
        assert context["privileged"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    # Checks: another uid than the learner's (the pod's), and no volume of the agent's container but the image.
    assert checker["securityContext"]["runAsUser"] not in (0, spec["securityContext"]["runAsUser"])
    agent_volumes = {m["name"] for m in container["volumeMounts"]}
    checker_volumes = {m["name"] for m in checker["volumeMounts"]}
    assert not agent_volumes & checker_volumes, (agent_volumes, checker_volumes)
    assert "memory" in checker["resources"]["limits"]
    resources = container["resources"]
    assert set(resources["requests"]) == set(resources["limits"]) == {"memory", "cpu", "ephemeral-storage"}
    assert resources["requests"]["ephemeral-storage"] == resources["limits"]["ephemeral-storage"]
    # The pod asks the scheduler for the agent's CPU limit, the checker's share taken from the agent's request.
    millicores = [parse_quantity(r["cpu"]) * 1000 for r in (resources["requests"], checker["resources"]["requests"])]
    assert sum(millicores) == parse_quantity(resources["limits"]["cpu"]) * 1000, (resources, checker["resources"])
    # Memory by broker kind: its admission weight reserved, its wall above what the kind grows to.
    memory = unit_memory(sandbox.broker)
    assert memory_mib(resources, "requests") == broker_entry(sandbox.broker).memory_mb == memory.request_mb
    assert memory_mib(resources, "limits") == memory.limit_mb
    assert not any("serviceaccount" in m["mountPath"] for m in container["volumeMounts"])


#: What the cell sees of its own confinement: uid, capabilities, no_new_privs, seccomp, a read-only root.
CONFINED = """
import os
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print("uid", os.getuid(), "caps", status["CapEff"].strip(), "nnp", status["NoNewPrivs"].strip(), "seccomp", status["Seccomp"].strip())
try:
    open("/opt/probe", "w")
    print("root writable")
except OSError as e:
    print("root denied", e.errno)
print("token in env", any("token" in k.lower() for k in os.environ))
# The agent runs under the pod's one uid too: the cells' own filter (agent/seccomp.py) refuses ptrace, which the
# runtime's default profile allows. PTRACE_SEIZE does not stop the tracee; a success is undone at once.
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
agent = next(int(p) for p in os.listdir("/proc") if p.isdigit() and b"-m\\x00sandboxes.agent" in open(f"/proc/{p}/cmdline", "rb").read())
if libc.ptrace(0x4206, agent, 0, 0) == 0:
    libc.ptrace(17, agent, 0, 0)
    print("ptrace of the agent allowed")
else:
    print("ptrace of the agent refused", ctypes.get_errno())
# /proc/<pid>/mem needs no ptrace call: without the kernel's Yama policy (not on this one) a process of the same
# uid may open it to read and write, unless the agent is not dumpable (agent/__main__.py).
for part in ("mem", "environ"):
    try:
        open(f"/proc/{agent}/{part}", "rb").close()
        print(f"agent {part} opened")
    except OSError as e:
        print(f"agent {part} refused", e.errno)
"""


def produced(event: dict[str, Any]) -> bool:
    """The smoke cell's message, as the broker's tap saw it arrive (tests/smoke_cells.py)."""
    return event["direction"] == "produced" and event["value"]["text"].startswith("hello-")


async def cell_with_events(address: AgentAddress, code: str) -> tuple[dict[str, Any], str, list[dict[str, Any]]]:
    """Run a cell while subscribed to the agent's events; both over the pod network."""
    events: list[dict[str, Any]] = []
    output: list[str] = []

    async def listen() -> None:
        async for message in agent_client.subscribe(address):
            if message.get("type") == "events":
                events.extend(message["events"])
            if any(produced(e) for e in events):
                return

    async def collect(message: dict[str, Any]) -> None:
        output.append(message.get("text", ""))

    listener = asyncio.create_task(listen())
    result = await agent_client.run(address, code=code, timeout=60, on_message=collect)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(listener, timeout=30)
    listener.cancel()
    return result, "".join(output), events


def refused(address: AgentAddress) -> bool:
    try:
        run(agent_client.status(address))
    except agent_client.AgentRefused:
        return True
    return False


def assert_serves_as_a_hardened_pod(lab: Lab, sandbox: Sandbox) -> str:
    """One ready sandbox's pod, Secret and NetworkPolicy, its agent over the network with the unit's token only,
    a cell producing and consuming with the broker's tap seeing it, and the cell's confinement; returns the node."""
    broker = sandbox.broker
    pod = get_json(lab, f"pod/{sandbox.unit}")
    ready_at = next(c["lastTransitionTime"] for c in pod["status"]["conditions"] if c["type"] == "Ready")
    pod_s = (datetime.fromisoformat(ready_at) - datetime.fromisoformat(pod["metadata"]["creationTimestamp"])).total_seconds()
    print(f"k8s {broker}: pod created to Ready in {pod_s:.0f} s on {pod['spec']['nodeName']}")

    assert_hardened(pod, sandbox=sandbox)
    for kind, name in (("secret", f"{sandbox.unit}-agent"), ("networkpolicy", sandbox.unit)):
        found = get_json(lab, f"{kind}/{name}")
        assert found["metadata"]["labels"][LABEL_UNIT] == sandbox.unit, kind
    policy = get_json(lab, f"networkpolicy/{sandbox.unit}")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"] and not policy.get("egress")

    # The agent is reached at the pod's address, over the network, with the unit's token.
    address = provisioning.sandbox_socket(sandbox=sandbox)
    assert (address.path, address.host, address.port) == (None, pod["status"]["podIP"], AGENT_PORT)
    assert address.checker is not None and (address.checker.host, address.checker.port) == (address.host, CHECKER_PORT)
    assert address.checker.token not in ("", address.token)
    result, output, events = run(cell_with_events(address, PRODUCE_CONSUME[broker]))
    assert result["status"] == 0, (broker, output)
    assert "got hello-" in output, (broker, output)
    assert any(produced(e) for e in events), (broker, events)
    # A check of this kind reaches the same broker from the pod's checker container (over the pod's loopback).
    checked = run(agent_client.check(address, code=PRODUCE_CONSUME[broker], timeout=60))
    assert checked["status"] == 0 and "got hello-" in checked["output"], (broker, checked)

    result, output = run_cell(sandbox, CONFINED)
    assert result["status"] == 0, output
    assert "caps 0000000000000000 nnp 1 seccomp 2" in output and "uid 0 " not in output, output
    assert "root denied 30" in output, output  # EROFS
    assert "token in env False" in output, output
    assert "ptrace of the agent refused 1" in output, output  # EPERM, from the cells' filter
    assert "agent mem refused 13" in output and "agent environ refused 13" in output, output  # EACCES

    # Every connection shows the unit's own token: none, a guess, or another unit's opens nothing.
    other_unit = f"{django_settings.SANDBOX_INSTANCE}-{sandbox.pk + 1}"
    for token in ("", "0" * len(address.token), KubernetesBackend.token(other_unit)):
        assert refused(AgentAddress(host=address.host, port=address.port, token=token)), repr(token[:8])
    assert run(agent_client.status(address))["ready"] is True
    return str(pod["spec"]["nodeName"])


def test_every_broker_kind_is_a_hardened_pod_reached_over_the_network_and_stops_without_leftovers(
    k8s_worker, lab: Lab, learner, units_cleanup
):
    started = time.monotonic()
    asked = [actions.sandbox_ensure(user_id=learner.pk, broker=broker) for broker in BROKERS]
    wait_for(
        lambda: all(Sandbox.objects.get(pk=s.pk).state in (State.READY, State.FAILED) for s in asked),
        timeout=300,
        what="four pods ready",
        interval=0.2,
    )
    print(f"\nk8s: {', '.join(BROKERS)} provisioned side by side through the worker in {time.monotonic() - started:.1f} s")
    sandboxes = [Sandbox.objects.get(pk=s.pk) for s in asked]
    assert [(s.broker, s.state, s.error) for s in sandboxes] == [(b, State.READY, "") for b in BROKERS]

    nodes = [assert_serves_as_a_hardened_pod(lab, sandbox) for sandbox in sandboxes]
    assert len(set(nodes)) == 2, nodes  # a CPU each: the two nodes share them

    # Stopped through the worker: each pod, its Secret and its NetworkPolicy are gone.
    for broker in BROKERS:
        actions.sandbox_stop(user_id=learner.pk, broker=broker)
    wait_for(
        lambda: all(Sandbox.objects.get(pk=s.pk).state == State.STOPPED for s in sandboxes),
        timeout=120,
        what="the sandboxes stopped",
        interval=0.2,
    )
    for sandbox in sandboxes:
        assert leftovers(lab, sandbox.unit) == [], sandbox.broker
        assert sandbox.unit not in get_backend().list_units()
    # Stopping what is gone is done, not an error (404s all the way).
    get_backend().stop(sandboxes[0].unit)


def test_a_worker_killed_while_pods_boot_leaves_no_orphan_pod_and_each_sandbox_ready_or_failed(
    k8s_worker, lab: Lab, images: dict[str, str], learner, units_cleanup
):
    """A worker is killed once it has created two Kafka pods, and its follower with it. Reconcile fails the sandbox that
    has provisioned for too long and removes its pod, Secret and NetworkPolicy; the other is handed to the next
    worker once the dead follower's lease lapses, which follows the same pod to ready (not a new one)."""
    other = User.objects.create_user("other-k8s-learner", password="x-pass-12345")
    units_of = get_backend()
    with worker_in_place_of(k8s_worker, "doomed", env=k8s_settings(lab, images)) as doomed:
        adopted, stale = (actions.sandbox_ensure(user_id=user.pk, broker="kafka") for user in (learner, other))
        units = {s.pk: lifecycle.unit_name(s) for s in (adopted, stale)}
        # Killed as soon as both pods exist, long before a Kafka in them is ready (the image may still be pulling):
        # the pods run on with nobody following them, and what follows is the repair's doing.
        wait_for(
            lambda: all(f"pod/{unit}" in leftovers(lab, unit) for unit in units.values()),
            timeout=120,
            what="both Kafka pods created",
            interval=0.1,
        )
        os.killpg(doomed.process.pid, signal.SIGKILL)
        doomed.process.wait()
        app.control.purge()  # tasks the crash took with it must not reach the next worker here
        for sandbox in (adopted, stale):
            sandbox.refresh_from_db()
            assert sandbox.state == State.PROVISIONING  # nobody follows them now
        assert [units_of.poll(unit) for unit in units.values()] == [None, None]  # their pods run on, owned by nobody
        first_uid = get_json(lab, f"pod/{units[adopted.pk]}")["metadata"]["uid"]

        # One provisioning for longer than a provision can take is failed, and nothing of its unit is left.
        Sandbox.objects.filter(pk=stale.pk).update(created_at=stale.created_at.replace(year=2000))
        report = in_thread(reconcile.sandboxes_reconcile)  # Playwright's loop may hold this thread (tests.aio)
        stale.refresh_from_db()
        assert stale.state == State.FAILED and stale.pk in report["stuck"], report
        assert leftovers(lab, units[stale.pk]) == []
        # The other is handed to a follower again once the dead one's lease has lapsed.
        wait_for(
            lambda: not readiness.sandbox_followed(sandbox_id=adopted.pk),
            timeout=readiness.LEASE_S + 10,
            what="the dead follower's lease lapsed",
        )
        assert in_thread(readiness.sandboxes_adopt) == [adopted.pk]
    # This backend's worker is back and takes the queued provision: the same pod, followed from where it is.
    wait_for(lambda: Sandbox.objects.get(pk=adopted.pk).state != State.PROVISIONING, timeout=180, what="adopted sandbox ready")
    adopted.refresh_from_db()
    assert adopted.state == State.READY, adopted.error
    assert get_json(lab, f"pod/{units[adopted.pk]}")["metadata"]["uid"] == first_uid, "the pod was followed, not started again"
    result, output = run_cell(adopted, PRODUCE_CONSUME["kafka"], timeout=60)
    assert result["status"] == 0 and "got hello-" in output, output


@pytest.mark.usefixtures("kept_cleanup")
def test_a_stop_keeps_the_data_off_the_pod_and_the_next_pod_starts_on_it(k8s_worker, lab: Lab, learner, units_cleanup):
    """Kept state on Kubernetes: a pod's data folder goes with the pod, so at the learner's stop the agent
    sends its broker's data to the platform (export), and the next pod of that kind waits for it
    (--restore) before its broker starts: the JetStream stream is back, and nothing is kept twice. The worker
    doing it runs as the platform's user (no root, no capability), its archive that user's."""
    assert_runs_as_the_platforms_user(k8s_worker)
    first = provision(learner, "nats", timeout=240)
    assert "MSGS 3" in cell_ok(first, NATS_PUBLISH)
    stop(learner, first)
    assert leftovers(lab, first.unit) == []
    key = kept.kept_key(user_id=learner.pk, broker="nats")
    assert get_backend().kept_exists(key)
    archive = get_backend().kept.path(key).stat()
    assert KeptState.objects.get(key=key).size_bytes == archive.st_size > 0
    assert archive.st_uid == pwd.getpwnam(PLATFORM_USER).pw_uid != 0

    again = provision(learner, "nats", timeout=240)
    assert "--restore" in get_json(lab, f"pod/{again.unit}")["spec"]["containers"][0]["args"]
    assert cell_json(again, NATS_READ) == [3, "order-0"]
    assert not get_backend().kept_exists(key)  # the pod runs on it now


def test_a_pod_whose_network_fence_cannot_be_set_up_never_starts_its_agent(lab: Lab, monkeypatch, units_cleanup):
    """Fail closed: the fence's init step without NET_ADMIN (as a cluster policy that strips capabilities
    would leave it) cannot write its rules; the start fails naming the fence and nft's own words, and the
    agent's container, and so any cell, never runs in a pod open to the network."""
    from sandboxes.backends import kubernetes_manifests
    from sandboxes.backends.base import UnitSpec

    fence_container = kubernetes_manifests.fence_container

    def without_net_admin(**kwargs: Any) -> dict[str, Any]:
        container = fence_container(**kwargs)
        container["securityContext"]["capabilities"] = {"drop": ["ALL"]}
        return container

    monkeypatch.setattr(kubernetes_manifests, "fence_container", without_net_admin)
    backend = get_backend()
    name = f"{django_settings.SANDBOX_INSTANCE}-{990000 + os.getpid() % 10000}"
    try:
        with pytest.raises(RuntimeError) as failed:
            backend.start(UnitSpec(name=name, broker="nats", owner="fence-test"))
        message = str(failed.value)
        assert "network fence could not be set up" in message and "Operation not permitted" in message, message
        pod = get_json(lab, f"pod/{name}")
        statuses = pod["status"]["containerStatuses"]
        assert sorted(status["name"] for status in statuses) == ["agent", "checker"]
        for status in statuses:
            assert set(status["state"]) == {"waiting"} and not status.get("started"), status
    finally:
        backend.stop(name)
    assert leftovers(lab, name) == []


#: The learner's terminal job: for up to 20 s, every process it can see running Python isolated (a check) or the
#: checker's server is noted. In a pod, checks run in a container of their own (agent/checker.py): none is in sight.
WATCHER = """
import os, time
seen = set()
end = time.monotonic() + 20
while time.monotonic() < end and not os.path.exists("/tmp/check-ended"):
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\\0")
        except OSError:
            continue
        if b"-I" in argv or b"--checks-only" in argv:
            seen.add(pid)
open("/tmp/watched", "w").write(f"seen {len(seen)}")
"""

#: A check's view: its uid, the uids of every process it can see, any process beside itself and its server (what
#: an earlier check left behind, a zombie included), and whether anything of the learner's container is there.
CHECK_VIEW = """
import os
uids, others = set(), []
for pid in (p for p in os.listdir("/proc") if p.isdigit()):
    try:
        status = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status"))
    except OSError:
        continue
    uids.add(int(status["Uid"].split()[0]))
    if int(pid) not in (1, os.getpid()):
        others.append(status["Name"].strip() + ":" + status["State"].split()[0])
planted = os.path.exists("/tmp/planted")
print("uid", os.getuid(), "uids", sorted(uids), "others", others, "planted", planted, "agent token", os.path.exists("/run/agent"))
"""

#: A check that leaves a daemon behind (nothing of its output held): the checker must kill and collect it.
CHECK_LEAVES_A_DAEMON = """
import subprocess
subprocess.Popen(["sleep", "300"], start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print("left a sleeper")
"""

#: From the learner's cell: the checker's port on the pod's loopback, with the only token the learner can read.
DIAL_CHECKER = """
import json, os, socket
agent_token = open("/run/agent/token").read().strip()
for label, token in (("agent token", agent_token), ("no token", "")):
    with socket.create_connection(("127.0.0.1", CHECKER_PORT), timeout=5) as s:
        s.sendall((json.dumps({"op": "check", "code": "print(1)", "timeout": 5, "token": token}) + "\\n").encode())
        print(label, s.makefile().readline().strip())
print("checker token here", os.path.exists("/run/checker"))
"""


def test_a_check_runs_beside_the_learner_as_another_uid_out_of_their_sight_and_behind_a_token_they_cannot_read(
    k8s_worker, lab: Lab, learner, units_cleanup
):
    """A pod's agent cannot give checks a uid of their own (no capabilities), and the learner's cells, terminal and
    leftovers share its container. So checks run in the pod's checker container: another uid, another PID namespace,
    another /tmp, reached on its own port with a token mounted there only. Attacked from the learner's side: a
    terminal job watching /proc for a check sees none; a file planted in /tmp is not in the check's; the checker's
    port, dialled from a cell with the agent's token (which the cell can read) or none, refuses; a check sees only its
    own uid, and what an earlier check left running is gone (killed and collected, no zombie)."""
    sandbox = provision(learner, "nats", timeout=240)
    address = provisioning.sandbox_socket(sandbox=sandbox)
    result, output = run_cell(
        sandbox,
        f"open('/tmp/watcher.py', 'w').write({WATCHER!r})\nopen('/tmp/planted', 'w').write('x')\nimport os\nprint(os.getuid())",
    )
    assert result["status"] == 0, output
    cell_uid = int(output.split()[-1])

    async def attack() -> list[dict[str, Any]]:
        _reader, writer = await agent_client.terminal(address, rows=24, cols=100)
        try:
            await protocol.send(writer, {"op": "input", "data": "python3 /tmp/watcher.py &\n"})
            await asyncio.sleep(1.0)
            left = await agent_client.check(address, code=CHECK_LEAVES_A_DAEMON, timeout=30)
            assert left["status"] == 0 and "left a sleeper" in left["output"], left
            checks = [await agent_client.check(address, code=CHECK_VIEW, timeout=30) for _ in range(5)]
            await protocol.send(writer, {"op": "input", "data": "touch /tmp/check-ended\n"})
            return checks
        finally:
            writer.close()

    checks = run(attack())
    for checked in checks:
        assert checked["status"] == 0, checked
    view = checks[0]["output"].strip()
    print(f"k8s check (cells' uid {cell_uid}): {view}")
    check_uid = int(view.split()[1])
    assert check_uid not in (0, cell_uid), view
    assert f"uids [{check_uid}] others [] planted False agent token False" in view, view

    watched = ""
    for _ in range(50):
        watched = run_cell(sandbox, "import os\nprint(open('/tmp/watched').read() if os.path.exists('/tmp/watched') else '')")[1]
        if watched.strip():
            break
        time.sleep(0.2)
    print(f"k8s check watcher: {watched.strip()}")
    assert watched.strip() == "seen 0", watched

    result, output = run_cell(sandbox, DIAL_CHECKER.replace("CHECKER_PORT", str(CHECKER_PORT)))
    print(f"k8s checker dialled from a cell: {output.strip()}")
    assert result["status"] == 0, output
    assert output.count('"code":"unauthorized"') == 2 and "checker token here False" in output, output
