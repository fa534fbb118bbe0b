"""The Docker backend's cells, attacked from inside: privileges, the broker, and processes left behind.

A real NATS container (the image built from this tree), cells run through its agent as on the
page. In a container the cell has no PID namespace of its own (bubblewrap cannot make one without
privileges): it is the unit's uid under setpriv, no capabilities, no-new-privs and the agent's
seccomp filter, beside its broker's processes. Each attack must be refused, and nothing a cell
starts may outlive its run (a daemon would share the uid of the next run and of exercise checks).
"""

from __future__ import annotations

import asyncio
import base64
import subprocess
import time

import pytest

from sandboxes import agent_client
from sandboxes.agent import protocol
from sandboxes.backends.docker import DockerBackend
from tests.security.units import Unit, cell_found, unit_running
from tests.services import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.docker]

CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWNET = 0x00020000, 0x10000000, 0x40000000


@pytest.fixture(scope="module")
def unit():
    """A NATS unit in a container of the image this tree builds (built now when missing; fails, never skips)."""
    for argv in (["scripts/docker-engine.sh"], [".venv/bin/python", "-m", "sandboxes.images.build", "nats"]):
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=1500, check=False)
        if done.returncode != 0:
            pytest.fail(f"`{' '.join(argv)}` failed: {(done.stdout + done.stderr)[-3000:]}", pytrace=False)
    with unit_running(DockerBackend(), "nats") as started:
        yield started


def test_a_docker_cell_holds_no_privilege_and_cannot_reach_its_broker(unit):
    found = cell_found(
        unit,
        f"""
        import signal
        def call(result):
            return "ok" if result == 0 else os.strerror(ctypes.get_errno())
        for argv in (["unshare", "-Ur", "true"], ["unshare", "-n", "true"], ["mount", "-t", "tmpfs", "none", "/tmp"]):
            r = subprocess.run(argv, capture_output=True, text=True)
            found[" ".join(argv)] = "ok" if r.returncode == 0 else r.stderr.strip()[:120]
        found["unshare(2) user"] = call(libc.unshare({CLONE_NEWUSER}))
        found["unshare(2) net"] = call(libc.unshare({CLONE_NEWNET}))
        found["unshare(2) mount"] = call(libc.unshare({CLONE_NEWNS}))
        found["mount(2)"] = call(libc.mount(b"none", b"/tmp", b"tmpfs", 0, None))
        status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
        found["status"] = {{k: v.strip() for k, v in status.items() if k.startswith("Cap") or k in ("NoNewPrivs", "Seccomp", "Uid")}}
        me = os.getuid()
        others = []
        for p in os.listdir("/proc"):
            if p.isdigit() and os.stat(f"/proc/{{p}}").st_uid != me:
                others.append(int(p))
        for pid in others:
            try:
                os.kill(pid, signal.SIGKILL)
                found[f"kill {{pid}}"] = "ok"
            except OSError as error:
                found[f"kill {{pid}}"] = error.strerror
            found[f"ptrace {{pid}}"] = call(libc.ptrace(16, pid, None, None))
        found["others"] = others
        """,
    )
    print(found)
    status = found.pop("status")
    for key in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
        assert int(status[key], 16) == 0, f"{key} {status[key]}"
    assert status["NoNewPrivs"] == "1" and status["Seccomp"] == "2", status
    assert "0" not in status["Uid"].split(), status
    assert found.pop("others"), "no process of the broker or agent seen: the attack below tried nothing"
    for key, outcome in found.items():
        assert outcome != "ok", f"{key}: {outcome}"
    status_code, output, _ = unit.run("print('still here')")
    assert status_code == 0 and "still here" in output, output


DAEMON = """
import os, subprocess, sys, time
SLEEP = [sys.executable, "-c", "import time; time.sleep(300)"]
# Ways to outlive a run: a child in the background, one in a session of its own, a double fork (all
# three away from the run's output, as a daemon is), and a child that keeps the run's output open.
QUIET = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
subprocess.Popen([*SLEEP, "leftover-a"], **QUIET)
subprocess.Popen([*SLEEP, "leftover-b"], start_new_session=True, **QUIET)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        fd = os.open(os.devnull, os.O_RDWR)
        for n in (0, 1, 2):
            os.dup2(fd, n)
        os.execv(sys.executable, [*SLEEP, "leftover-c"])
    os._exit(0)
subprocess.Popen([*SLEEP, "leftover-d"])
time.sleep(0.5)
print("alive:", sum(b"leftover-" in open(f"/proc/{p}/cmdline", "rb").read() for p in os.listdir("/proc") if p.isdigit()))
"""

SEEN_FROM_A_CELL = """
import os
print("seen:", sum(b"leftover-" in open(f"/proc/{p}/cmdline", "rb").read() for p in os.listdir("/proc") if p.isdigit() and p != str(os.getpid())))
"""


def _leftovers(unit: Unit) -> list[str]:
    found = []
    for pid in unit.backend.processes(unit.name):
        try:
            command = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "leftover-" in command:
            found.append(f"{pid} {command}")
    return found


def test_nothing_a_docker_cell_starts_outlives_its_run(unit):
    status, output, _ = unit.run(DAEMON)
    assert status == 0 and "alive: 4" in output, output
    deadline = time.monotonic() + 5
    while _leftovers(unit) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _leftovers(unit) == [], "processes of a finished run survive"
    # Seen from the next run too: nothing of the last one is there.
    status, output, _ = unit.run(SEEN_FROM_A_CELL)
    assert status == 0 and "seen: 0" in output, output


def test_the_learners_terminal_and_its_jobs_are_spared_when_a_run_ends(unit):
    """The terminal is the learner's own shell, not a run: a cell ending must not kill it nor its jobs."""

    async def session() -> str:
        reader, writer = await agent_client.terminal(unit.socket, rows=24, cols=100)
        seen = b""

        async def until(marker: bytes) -> None:
            nonlocal seen
            while marker not in seen:
                message = await asyncio.wait_for(protocol.read_message(reader), timeout=20)
                assert message is not None and message.get("type") == "output", message
                seen += base64.b64decode(message["data"])

        try:
            await protocol.send(writer, {"op": "input", "data": "python3 -c 'import time; time.sleep(300)' term-job &\n"})
            await protocol.send(writer, {"op": "input", "data": "echo ready-$((20+1))\n"})
            await until(b"ready-21")
            status, output, _ = await asyncio.to_thread(unit.run, "print('a run ends')")
            assert status == 0, output
            await protocol.send(writer, {"op": "input", "data": "echo jobs-$(jobs -r | wc -l)-alive-$((40+2))\n"})
            await until(b"-alive-42")
            return seen.decode(errors="replace")
        finally:
            writer.close()

    seen = asyncio.run(session())
    assert "jobs-1-alive-42" in seen, seen[-500:]


#: The learner's terminal job: for up to 20 s, the first process not root's running Python isolated (a check) is
#: noted with what a signal to it does. With the check under the cells' uid it would be "reached".
WATCHER = """
import os, time
seen = {}
end = time.monotonic() + 20
while time.monotonic() < end and len(seen) < 1:
    for pid in os.listdir("/proc"):
        try:
            argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\\0")
            uid = next(int(line.split()[1]) for line in open(f"/proc/{pid}/status") if line.startswith("Uid:"))
        except (OSError, StopIteration, ValueError):
            continue
        # Not root's: the agent and setpriv, before it becomes the check's uid, are out of reach anyway.
        if b"-I" in argv and uid != 0 and pid not in seen and int(pid) != os.getpid():
            try:
                os.kill(int(pid), 0)
                seen[pid] = "reached"
            except PermissionError:
                seen[pid] = "refused"
            except ProcessLookupError:
                pass
    time.sleep(0.005)
open("/tmp/watched", "w").write(repr(sorted(seen.values())))
"""


def test_the_learners_terminal_cannot_reach_a_check_that_runs_beside_it(unit):
    """In a container a check shares the learner's PID namespace: it runs as a uid of its own, so a job of
    theirs that watches for it can neither signal it, nor trace it, nor open its memory."""
    status, output, _ = unit.run(f"open('/tmp/watcher.py', 'w').write({WATCHER!r})")
    assert status == 0, output

    async def attack() -> dict:
        _reader, writer = await agent_client.terminal(unit.socket, rows=24, cols=100)
        try:
            await protocol.send(writer, {"op": "input", "data": "python3 /tmp/watcher.py &\n"})
            await asyncio.sleep(1.0)
            return await agent_client.check(unit.socket, code="import time\ntime.sleep(2)\nprint('check done')", timeout=30)
        finally:
            writer.close()

    result = asyncio.run(attack())
    assert result["status"] == 0 and "check done" in result["output"], result
    status, output, _ = unit.run(
        "import time, os\nfor _ in range(250):\n    if os.path.exists('/tmp/watched'): break\n    time.sleep(0.1)\n"
        "print('watched', open('/tmp/watched').read())"
    )
    assert "watched ['refused']" in output, output
