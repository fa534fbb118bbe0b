"""What a learner's cell sees, pinned the same on every backend: its /tmp and its tools.

The rule is Jupyter's: a file a cell writes (in /tmp, which is also HOME and the working
folder) is there for the next cell of the same sandbox and for the learner's terminal in it,
until the sandbox stops or is reset; a reset starts empty. /tmp is bounded (64 MiB). The
broker's tools and kcat are on a cell's PATH, as on the terminal's.

The process backend binds one tmpfs per unit at every cell's and the shell's /tmp
(agent/mounts.py: make_cells_tmp); the docker backend's container has its own tmpfs /tmp
(the Kubernetes backend's Pod an emptyDir /tmp, in the same images). Each case runs through
the real worker of its backend (the ``backend`` fixture, tests/sandboxes/conftest.py), with a NATS
sandbox, the lightest broker.
"""

from __future__ import annotations

import json
import secrets

import pytest
from django.contrib.auth.models import User

from sandboxes.backends import get_backend
from sandboxes.backends.process import ProcessBackend
from sandboxes.models import Sandbox, State
from sandboxes.services import actions, provisioning
from sandboxes.terminal_typing import terminal_commands_typed
from tests.aio import run
from tests.sandboxes.test_lifecycle import provision, run_cell
from tests.services import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def cell(sandbox: Sandbox, code: str) -> str:
    result, output = run_cell(sandbox, code, timeout=60)
    assert result["status"] == 0, output
    return output


def fresh_after_reset(learner: User, old: Sandbox) -> Sandbox:
    assert actions.sandbox_reset(user_id=learner.pk, broker=old.broker) is not None

    def fresh() -> Sandbox | None:
        return Sandbox.objects.filter(user=learner, broker=old.broker, state=State.READY).exclude(pk=old.pk).first()

    wait_for(lambda: fresh() is not None, timeout=150, what="a fresh sandbox after the reset", interval=0.2)
    new = fresh()
    assert new is not None
    return new


WRITE = """
import os
os.makedirs("/tmp/notes", exist_ok=True)
with open("/tmp/notes/order.txt", "w") as out:
    out.write({nonce!r})
with open("relative.txt", "w") as out:  # the working folder is /tmp, as HOME
    out.write("here")
print("written")
"""

READ = """
import json, os
found = {}
for path in ("/tmp/notes/order.txt", "/tmp/relative.txt", os.path.expanduser("~/from-terminal.txt")):
    try:
        found[path] = open(path).read().strip()
    except OSError as error:
        found[path] = error.strerror
print(json.dumps(found))
"""


def test_a_file_in_tmp_is_there_for_the_next_cell_and_the_terminal_until_a_reset(backend, learner, units_cleanup):
    sandbox = provision(learner, "nats", timeout=150)
    nonce = secrets.token_hex(8)
    assert "written" in cell(sandbox, WRITE.format(nonce=nonce))
    # The terminal (the same /tmp, its HOME): reads the cell's file, leaves one of its own.
    typed = run(
        terminal_commands_typed(
            where=provisioning.sandbox_socket(sandbox=sandbox),
            commands="cat /tmp/notes/order.txt\necho from-the-shell > ~/from-terminal.txt\n",
            timeout=60,
        )
    )
    assert typed["status"] == 0 and nonce in typed["output"], typed
    found = json.loads(cell(sandbox, READ).strip().splitlines()[-1])
    assert found == {"/tmp/notes/order.txt": nonce, "/tmp/relative.txt": "here", "/tmp/from-terminal.txt": "from-the-shell"}
    if isinstance(get_backend(), ProcessBackend):
        # The unit's /tmp is mounted in its agent's namespace only: from the host (or another unit) its folder is empty.
        host_side = get_backend().unit_dir(sandbox.unit) / "cells-tmp" / "tmp"
        assert host_side.is_dir() and list(host_side.iterdir()) == []

    new = fresh_after_reset(learner, sandbox)
    found = json.loads(cell(new, READ).strip().splitlines()[-1])
    assert found == dict.fromkeys(found, "No such file or directory"), found


TOOLS = """
import json, os, shutil, subprocess
found = {"HOME": os.environ.get("HOME"), "cwd": os.getcwd()}
for tool, argv in {"kcat": ["kcat", "-V"], "nats": ["nats", "--version"], "python3": ["python3", "-c", "print('py')"]}.items():
    found[tool] = shutil.which(tool) is not None
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    found[tool + " runs"] = done.returncode == 0 or done.stderr[-300:]
print(json.dumps(found))
"""

FILL = """
import errno
written = 0
try:
    for name in ("a", "b"):  # two files: one is limited to 64 MiB by RLIMIT_FSIZE on its own
        with open(f"/tmp/fill-{name}", "wb") as out:
            for _ in range(40):
                out.write(b"x" * 2**20)
                written += 1
    print("NOT BOUNDED", written)
except OSError as error:
    print("bounded", errno.errorcode[error.errno], written)
"""


def test_a_cell_has_home_in_tmp_the_tools_on_its_path_and_a_bounded_tmp(backend, learner, units_cleanup):
    sandbox = provision(learner, "nats", timeout=150)
    found = json.loads(cell(sandbox, TOOLS).strip().splitlines()[-1])
    assert found == {
        "HOME": "/tmp",
        "cwd": "/tmp",
        **{tool: True for tool in ("kcat", "nats", "python3")},
        **{f"{tool} runs": True for tool in ("kcat", "nats", "python3")},
    }, found
    output = cell(sandbox, FILL)
    assert "bounded ENOSPC" in output, output
    written = int(output.split()[-1])
    assert 56 <= written <= 64, output  # 64 MiB, less what the tmpfs already holds
    assert "freed" in cell(sandbox, "import os\nfor n in 'ab':\n    os.remove(f'/tmp/fill-{n}')\nprint('freed')\n")


LEAVE = """
import builtins, json, os, subprocess, sys, time
found = {"preloaded": "nats" in sys.modules, "pid": os.getpid(), "parent": os.getppid()}
import nats
nats.LEFT_BY_A_RUN = builtins.LEFT_BY_A_RUN = 1
found["left"] = [subprocess.Popen(["sleep", "300"]).pid, subprocess.Popen(["sleep", "300"], start_new_session=True).pid]
print(json.dumps(found))
"""

FIND = """
import builtins, json, os, sys
found = {"preloaded": "nats" in sys.modules, "pid": os.getpid(), "parent": os.getppid()}
import nats
found["module"], found["builtins"] = hasattr(nats, "LEFT_BY_A_RUN"), hasattr(builtins, "LEFT_BY_A_RUN")
found["alive"] = []
for pid in PIDS:
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        continue
    if state != "Z":
        found["alive"].append(pid)
print(json.dumps(found))
"""


def test_runs_fork_from_a_template_with_the_client_loaded_and_leave_nothing_to_the_next(backend, learner, units_cleanup):
    # Every backend runs cells the agent's way (agent/cell_template.py): the broker's client is imported
    # once in the template, and each run is a fork of it that the next run never meets.
    sandbox = provision(learner, "nats", timeout=150)
    first = json.loads(cell(sandbox, LEAVE).strip().splitlines()[-1])
    second = json.loads(cell(sandbox, FIND.replace("PIDS", repr(first["left"]))).strip().splitlines()[-1])
    assert first["preloaded"] and second["preloaded"], (first, second)
    assert first["parent"] == second["parent"] and first["pid"] != second["pid"], (first, second)
    assert (second["module"], second["builtins"], second["alive"]) == (False, False, []), (first, second)
