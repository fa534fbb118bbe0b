"""An exercise's check cannot be made to pass by what the learner's own code leaves behind.

A check is the instructor's code run in the learner's sandbox; it passes when it exits 0. The
learner's cells (and their terminal) share the sandbox's uid and its /tmp, which is also where a
cell starts and Python's HOME. So whatever a cell writes there, Python may find first: a module
named like one the check imports (the start folder is first on ``sys.path``), or a ``.pth`` file in
the user's site folder (``~/.local/lib/pythonX.Y/site-packages``), run at each interpreter start.
Here the learner plants both, kills the process their runs are forked from so the next one starts
anew, and asks for a check that must fail: it still fails, with its own message.
"""

from __future__ import annotations

import re

import pytest

from sandboxes import agent_client
from sandboxes.backends.process import ProcessBackend
from tests.aio import run
from tests.security.units import unit_running

pytestmark = [pytest.mark.integration]

PLANT = """
import os, pathlib, site, signal
# A module named like one the check imports, in the folder a cell starts in.
pathlib.Path("statistics.py").write_text("import os\\nos._exit(0)\\n")
# A .pth in the user's site folder: any interpreter that starts here afterwards exits 0, whatever it ran.
user_site = pathlib.Path(site.getusersitepackages())
user_site.mkdir(parents=True, exist_ok=True)
(user_site / "zz_pass.pth").write_text("import atexit, os; atexit.register(os._exit, 0)\\n")
print("planted", user_site)
"""

#: What the learner's cell does next: ends the interpreter its runs are forked from, so the next one starts anew.
RESTART = "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n"

#: A check of a state the broker is not in; it imports a module the learner's /tmp shadows.
CHECK = "import statistics\nassert statistics.mean([1, 3]) == 2\nassert False, 'the stream orders does not exist'\n"


@pytest.fixture(scope="module")
def unit():
    with unit_running(ProcessBackend(), "nats") as started:
        yield started


def test_a_check_does_not_import_or_start_with_what_the_learners_cells_planted(unit):
    status, output, _ = unit.run(PLANT)
    assert status == 0 and "planted" in output, output
    unit.run(RESTART)  # its own status is the kill's; the next run finds a new template or a fresh interpreter
    # The learner's own runs may use their files (a module of theirs in /tmp imports, as in Jupyter).
    status, output, _ = unit.run("import statistics\nprint('not reached')")
    assert status == 0 and "not reached" not in output, output

    result = run(agent_client.check(unit.socket, code=CHECK, timeout=30))
    assert result["status"] != 0, result
    assert "the stream orders does not exist" in result["output"], result


def test_a_check_is_not_dumpable_so_no_process_of_the_learners_uid_can_open_its_memory(unit):
    """In a container a check has no PID namespace of its own: the learner's terminal (same uid) sees it.
    A process that is not dumpable has its /proc files owned by root, so that terminal cannot open them."""
    code = (
        "import ctypes, os\n"
        "print('dumpable', ctypes.CDLL(None).prctl(3, 0, 0, 0, 0), 'mem owner', os.stat('/proc/self/mem').st_uid)\n"
    )
    result = run(agent_client.check(unit.socket, code=code, timeout=30))
    assert result["status"] == 0, result
    assert "dumpable 0 mem owner 0" in result["output"], result
    # A learner's own run stays dumpable, as any process of theirs (debuggers and /proc/self work as usual).
    status, output, _ = unit.run(code)
    assert status == 0 and "dumpable 1" in output, output


def test_a_check_runs_as_a_uid_of_its_own_and_sees_none_of_the_learners_tmp(unit):
    """The learner's processes cannot signal, trace or open a process of another uid; the check's /tmp is its own."""
    status, output, _ = unit.run(
        "import os, pathlib\npathlib.Path('learners-note').write_text('x')\nprint('cells uid', os.getuid())"
    )
    assert status == 0, output
    cells_uid = int(re.search(r"cells uid (\d+)", output).group(1))
    code = "import os\nprint('check uid', os.getuid(), 'tmp', sorted(os.listdir('/tmp')))\nopen('/tmp/mine', 'w').write('y')\n"
    result = run(agent_client.check(unit.socket, code=code, timeout=30))
    assert result["status"] == 0, result
    check_uid = int(re.search(r"check uid (\d+)", result["output"]).group(1))
    assert check_uid not in (0, cells_uid), (check_uid, cells_uid)
    assert "learners-note" not in result["output"], result["output"]
    # What the check wrote stays out of the learner's /tmp.
    status, output, _ = unit.run("import os\nprint('mine' in os.listdir('/tmp'), 'learners-note' in os.listdir('/tmp'))")
    assert "False True" in output, output
