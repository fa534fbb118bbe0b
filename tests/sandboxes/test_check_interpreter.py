"""Which interpreter an exercise's check runs, and the refusal when a check would share the learner's uid without it.

The effect itself (a check non-dumpable from its exec, out of a watching terminal job's reach) is
attacked in a pod in tests/k8s/test_backend.py; this is the agent's choice, on every backend's shape.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from sandboxes.agent.cells import CellRunner
from sandboxes.agent.confinement import CHECK_PYTHON, CellLimits, ConfinementMissing


def pod_runner() -> CellRunner:
    """A Kubernetes pod's runner: setpriv's mode, no uid of the cells' own, no uid of the checks' own."""
    return CellRunner(env={}, limits=CellLimits(), uid=None, cgroup_procs=[], confinement="setpriv")


def test_a_check_beside_the_learners_uid_is_refused_without_the_execute_only_interpreter():
    assert not Path(sys.executable).with_name(CHECK_PYTHON).exists()  # this checkout's virtualenv has none
    runner = pod_runner()
    assert runner.argv()[0] == sys.executable  # a learner's cell runs as ever
    with pytest.raises(ConfinementMissing, match="execute-only"):
        runner.argv(isolated=True)


def test_a_check_runs_the_execute_only_interpreter_where_the_image_has_it(tmp_path, monkeypatch):
    folder = tmp_path / "venv" / "bin"
    folder.mkdir(parents=True)
    (folder / CHECK_PYTHON).write_bytes(b"")
    (folder / CHECK_PYTHON).chmod(0o111)
    monkeypatch.setattr(sys, "executable", str(folder / "python"))
    command = pod_runner().argv(isolated=True)
    assert command[0] == str(folder / CHECK_PYTHON) and "-I" in command


def test_a_check_with_a_uid_of_its_own_may_run_the_agents_interpreter():
    """Where a check gets a uid of its own (the process backend runs the host's interpreter, which has no
    copy), that uid is the wall (tests/security/test_check_integrity.py): no copy needed, none refused."""
    runner = CellRunner(env={}, limits=CellLimits(), uid=None, cgroup_procs=[], confinement="setpriv", checker_uid=400_123)
    command = runner.argv(isolated=True)
    assert command[0] == "/usr/bin/setpriv" and "--reuid=400123" in command  # the check's own uid...
    assert command[command.index("--") + 1] == sys.executable  # ...running the agent's interpreter
