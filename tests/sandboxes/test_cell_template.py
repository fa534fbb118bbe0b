"""Runs forked from the unit's cell template (agent/cell_template.py), on a real NATS unit of the process backend.

A run starts with the broker's client library already imported, yet each run is as fresh as a
new interpreter: what one run changes in a module or leaves running is gone for the next, its
random numbers are its own, a run that kills its template or outlives its time limit does not
take the next run down, and no run can reach into the template's memory.
"""

from __future__ import annotations

import json
import textwrap
import time

import pytest

from sandboxes import agent_client
from sandboxes.backends.process import ProcessBackend
from tests.aio import run
from tests.security.units import cell_found, unit_running

pytestmark = [pytest.mark.integration]


@pytest.fixture(scope="module")
def unit():
    with unit_running(ProcessBackend(), "nats") as started:
        yield started


def facts(unit) -> dict:
    return cell_found(
        unit,
        """
        import random, sys
        found["preloaded"] = "nats" in sys.modules  # before this cell imports anything of its own
        found["pid"], found["parent"] = os.getpid(), os.getppid()
        found["random"] = random.random()
        """,
    )


def test_a_run_starts_with_the_brokers_client_imported_and_each_run_is_a_new_process_with_its_own_randomness(unit):
    first, second = facts(unit), facts(unit)
    assert first["preloaded"] and second["preloaded"], (first, second)
    # Forked from the same template, one process per run.
    assert first["parent"] == second["parent"] and first["pid"] != second["pid"], (first, second)
    assert first["random"] != second["random"]


def test_what_a_run_changes_or_leaves_running_is_gone_for_the_next_run(unit):
    left = cell_found(
        unit,
        """
        import builtins, nats, time
        nats.LEFT_BY_A_RUN = 1
        builtins.LEFT_BY_A_RUN = 1
        # a background child, a child in a session of its own, and a double fork
        found["pids"] = [subprocess.Popen(["sleep", "300"]).pid,
                         subprocess.Popen(["sleep", "300"], start_new_session=True).pid]
        if os.fork() == 0:
            if os.fork() == 0:
                time.sleep(300)
            os._exit(0)
        time.sleep(0.2)
        found["pids"] += [int(p) for p in subprocess.run(["pgrep", "-u", str(os.getuid()), "-x", "python3.11|python3|python"],
                                                         capture_output=True, text=True).stdout.split() if int(p) != os.getpid()]
        """,
    )
    after = cell_found(
        unit,
        f"""
        import builtins, nats
        found["module"] = hasattr(nats, "LEFT_BY_A_RUN")
        found["builtins"] = hasattr(builtins, "LEFT_BY_A_RUN")
        alive = []
        for pid in {left["pids"]!r}:
            try:
                state = open(f"/proc/{{pid}}/stat").read().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state != "Z" and pid not in (1, os.getppid()):
                alive.append(pid)
        found["alive"] = alive
        """,
    )
    assert after == {"module": False, "builtins": False, "alive": []}, (left, after)


def test_a_run_that_kills_its_template_or_runs_out_of_time_leaves_the_next_run_working(unit):
    status, output, _ = unit.run(
        "import os, signal\nprint('killing', flush=True)\nos.kill(os.getppid(), signal.SIGKILL)\nimport time; time.sleep(30)"
    )
    assert status != 0 and "killing" in output, (status, output)
    assert facts(unit)["preloaded"]
    result: list[dict] = []

    async def collect(message):
        result.append(message)

    ended = run(
        agent_client.run(
            unit.socket, code="import time\nprint('sleeping', flush=True)\ntime.sleep(60)", timeout=2, on_message=collect
        )
    )
    assert ended["reason"] == "timeout", ended
    after = facts(unit)
    assert after["preloaded"], after


def test_a_run_cannot_read_or_write_the_templates_memory(unit):
    found = cell_found(
        unit,
        """
        # A process that is not dumpable has the files of its /proc folder (mem, environ) owned by root: a process of the same uid
        # gets no access to its memory, whatever the host's ptrace policy (Yama) says.
        found["owner"] = os.stat(f"/proc/{os.getppid()}/mem").st_uid
        found["own_owner"] = os.stat("/proc/self/mem").st_uid
        found["uid"] = os.getuid()
        for mode in ("rb", "r+b"):
            try:
                with open(f"/proc/{os.getppid()}/mem", mode):
                    found[mode] = "opened"
            except OSError as exc:
                found[mode] = type(exc).__name__
        """,
    )
    assert found["uid"] != 0
    # The run itself is dumpable again: its own /proc is its own, as a fresh interpreter's would be.
    assert (found["owner"], found["own_owner"]) == (0, found["uid"]), found
    assert (found["rb"], found["r+b"]) == ("PermissionError", "PermissionError"), found


def test_a_runs_code_and_output_are_its_own(unit):
    status, output, _ = unit.run(
        textwrap.dedent(
            """
        import sys
        data = sys.stdin.read()
        print(json.dumps({"stdin": data, "argv": sys.argv[:1]}))
        """
        ).replace("import sys", "import json, sys")
    )
    assert status == 0, output
    assert json.loads(output.strip().splitlines()[-1]) == {"stdin": "", "argv": ["-c"]}


def test_a_run_ends_as_an_interpreter_does_threads_joined_atexit_run_exit_codes_kept(unit):
    program = textwrap.dedent(
        """
        import atexit, threading, time
        atexit.register(lambda: print("atexit ran", flush=True))
        threading.Thread(target=lambda: (time.sleep(0.3), print("thread finished"))).start()
        print("main done")
        """
    )
    status, output, _ = unit.run(program)
    assert status == 0 and output.splitlines() == ["main done", "thread finished", "atexit ran"], (status, output)
    assert unit.run("import sys\nsys.exit(3)")[0] == 3
    status, output, _ = unit.run("import sys\nsys.exit('bye')")
    assert (status, output.strip()) == (1, "bye")


def test_code_larger_than_a_pipe_reaches_the_run_whole(unit):
    lines = [f"x{n} = {n}" for n in range(20_000)]  # about 200 KB, past the pipe's 64 KiB
    status, output, _ = unit.run("\n".join([*lines, "print(x19999 + len(globals()))"]))
    assert status == 0 and output.strip().isdigit() and int(output.strip()) > 20_000, output[-500:]


def test_a_run_that_stops_its_template_ends_at_its_time_limit_and_the_next_run_works(unit):
    result: list[dict] = []

    async def collect(message):
        result.append(message)

    code = "import os, signal\nos.kill(os.getppid(), signal.SIGSTOP)\nprint('stopped it', flush=True)"
    ended = run(agent_client.run(unit.socket, code=code, timeout=3, on_message=collect))
    # The run itself ended at once, but its stopped template never said so: the time limit did.
    assert ended["reason"] == "timeout", ended
    assert "stopped it" in "".join(m.get("text", "") for m in result)
    assert facts(unit)["preloaded"]


def _status_of(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as status:
        return dict(line.rstrip("\n").split(":\t", 1) for line in status if ":\t" in line)


def _waiting_children(unit, template_ns_pid: int) -> list[tuple[int, int]]:
    """(host pid, pid in the cell's namespace) of each process the unit's template has forked and that lives now."""
    found = {}
    for pid in unit.backend.processes(unit.name):
        try:
            found[pid] = _status_of(pid)
        except OSError:
            continue
    templates = [pid for pid, status in found.items() if int(status["NSpid"].split()[-1]) == template_ns_pid]
    return [
        (pid, int(status["NSpid"].split()[-1]))
        for pid, status in found.items()
        if int(status["PPid"]) in templates and status["State"][0] != "Z"
    ]


def test_the_process_of_the_next_run_is_forked_before_it_is_asked_for_and_after_the_last_run_is_gone(unit):
    left = cell_found(
        unit,
        """
        import builtins, nats
        nats.LEFT_BY_A_RUN = builtins.LEFT_BY_A_RUN = 1
        os.environ["LEFT_BY_A_RUN"] = "1"
        found["template"] = os.getppid()
        found["sleeper"] = subprocess.Popen(["sleep", "300"], start_new_session=True).pid
        """,
    )
    time.sleep(0.5)  # the run has ended; nothing is asked of the unit now
    waiting = _waiting_children(unit, left["template"])
    # One process of the template's waits for the next run, and it is not what the last run left.
    assert len(waiting) == 1 and waiting[0][1] != left["sleeper"], (left, waiting)
    after = cell_found(
        unit,
        f"""
        import builtins, nats
        found["pid"], found["parent"] = os.getpid(), os.getppid()
        found["left"] = [hasattr(nats, "LEFT_BY_A_RUN"), hasattr(builtins, "LEFT_BY_A_RUN"), "LEFT_BY_A_RUN" in os.environ]
        found["sleeper"] = os.path.exists("/proc/{left["sleeper"]}")
        """,
    )
    # The run is the process that was already waiting, and it saw nothing of the run before it.
    assert (after["pid"], after["parent"]) == (waiting[0][1], left["template"]), (waiting, after)
    assert after["left"] == [False, False, False] and not after["sleeper"], after
