"""Fail closed: a cell runs confined by all of bubblewrap, the unit's uid and its cgroup, or not at all.

Each test takes one ingredient away from a unit of the process backend (bwrap off the PATH,
root as the cells' uid, a cells' cgroup that cannot be joined) and sees the unit refused
with the reason, before any learner code could run. The first one proves the cgroup
really holds: from inside a cell, its own /proc/self/cgroup names the unit's cells group
(``ip netns exec`` hid the cgroup tree from the agent, and cells ran in the unit's main
group without their own limits).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sandboxes.backends import cgroups
from sandboxes.backends.process import ProcessBackend
from tests.security.units import Unit

pytestmark = [pytest.mark.integration]

CGROUP_OF_CELL = "print(open('/proc/self/cgroup').read())"


def test_a_cell_runs_inside_its_units_cells_cgroup(units_cleanup):
    backend = ProcessBackend()
    unit = Unit(backend, "nats")
    try:
        status, output, _ = unit.run(CGROUP_OF_CELL)
        assert status == 0, output
        groups = {}
        for line in output.split():
            _, controllers, path = line.split(":", 2)
            groups[controllers] = path
        print(groups)
        cells = f"/{backend.instance}/{unit.name}/cells"
        joined = [path for path in groups.values() if path.endswith(cells)]
        # v2: the one unified line; v1: memory, pids and cpu, each its own line.
        assert len(joined) >= (1 if (cgroups.ROOT / "cgroup.controllers").exists() else 3), (
            f"the cell is not in {cells}: {groups}"
        )
    finally:
        unit.stop()


def _refused(backend: ProcessBackend) -> str:
    with pytest.raises(AssertionError, match="did not start") as refused:
        Unit(backend, "nats")
    return str(refused.value)


def test_a_unit_is_refused_without_bubblewrap(units_cleanup, monkeypatch, tmp_path):
    # The same programs as the PATH has, bwrap aside.
    for folder in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(folder):
            continue
        for entry in os.scandir(folder):
            link = tmp_path / entry.name
            if entry.name != "bwrap" and not link.exists():
                link.symlink_to(entry.path)
    monkeypatch.setenv("PATH", str(tmp_path))
    error = _refused(ProcessBackend())
    assert "bubblewrap (bwrap) not found" in error, error
    assert "cells cannot be confined" in error


def test_a_unit_is_refused_when_its_cells_would_run_as_root(units_cleanup, monkeypatch):
    monkeypatch.setattr(ProcessBackend, "cell_uid", staticmethod(lambda name: 0))
    error = _refused(ProcessBackend())
    assert "no unprivileged uid for the cells" in error, error


def test_a_unit_is_refused_when_its_cells_cgroup_cannot_be_joined(units_cleanup, monkeypatch):
    real = cgroups.UnitCgroups.procs_files

    def cells_nowhere(self, part):
        if part != "cells":
            return real(self, part)
        return [
            Path(
                cgroups.ROOT, "memory" if not (cgroups.ROOT / "cgroup.controllers").exists() else "", "ba-nowhere", "cgroup.procs"
            )
        ]

    monkeypatch.setattr(cgroups.UnitCgroups, "procs_files", cells_nowhere)
    error = _refused(ProcessBackend())
    assert "the cells' cgroups cannot be joined" in error, error


def test_the_cell_runner_itself_refuses_a_cell_it_cannot_wall_in(tmp_path, monkeypatch):
    """The last line behind the agent's check at start: a confinement with a uid but no bubblewrap
    (or an unwritable cells' cgroup) never yields a plain interpreter (which would run as root)."""
    import subprocess

    from sandboxes.agent.confinement import CellLimits, Confinement, ConfinementMissing

    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on it
    walls = Confinement(limits=CellLimits(), uid=200_123, cgroup_procs=[])
    with pytest.raises(ConfinementMissing):
        walls.argv(["python3", "-c", "print(1)"])
    # The development mode (no uid asked for) is the one case that runs unconfined.
    assert Confinement(limits=CellLimits(), uid=None, cgroup_procs=[]).argv(["python3"]) == ["python3"]

    # A cells' cgroup that cannot be joined fails the spawn instead of running outside it.
    missing = tmp_path / "no-such-group" / "cgroup.procs"
    walls = Confinement(limits=CellLimits(), uid=None, cgroup_procs=[missing])
    with pytest.raises(subprocess.SubprocessError):
        subprocess.run(["/bin/true"], preexec_fn=walls.preexec, check=True)
