"""Per-unit control groups (v1 or v2): memory, process and CPU limits, and a list of every pid.

Each unit gets two groups: ``main`` (agent and broker) and ``cells`` (learners'
code, with tighter limits), so a fork bomb in a cell cannot starve its broker.
Every unit has the same CPU weight, and its cells at most CELLS_CPUS of CPU time,
so one learner's busy loops leave the others their share. All of an instance's units
together weigh UNITS_CPU_WEIGHT of one of the platform's own processes: when the box
is saturated, the web server, the worker, Redis and Postgres are served first, so
one class's brokers cannot stall every page (an idle box still gives the units all
it has; weights only matter under contention).
Where cgroups cannot be written, ``available()`` is False and the process backend
refuses to start isolated units (fail closed).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
CONTROLLERS = ("memory", "pids", "cpu")
CFS_PERIOD_US = 100_000
#: The instance's units together against one platform process (cpu.shares 1024, cpu.weight 100 by default).
#: Measured with 50 learners each producing 100 msg/s on 2 cores (docs/bench.md, 2026-12-03): at the
#: default weight the ASGI server's threads waited 1.3 s per second for a core, and the pages' events
#: were seconds behind (p50 2.0-6.1 s); at 1/8 the same run showed them at p50 0.3 s.
UNITS_CPU_WEIGHT = 1 / 8


def _v2() -> bool:
    return (ROOT / "cgroup.controllers").exists()


def available() -> bool:
    if os.geteuid() != 0:
        return False
    if _v2():
        controllers = (ROOT / "cgroup.controllers").read_text().split()
        return set(CONTROLLERS) <= set(controllers)
    return all(os.access(ROOT / c, os.W_OK) for c in CONTROLLERS)


class UnitCgroups:
    def __init__(self, instance: str, name: str) -> None:
        self.instance = instance
        self.name = name

    def _dirs(self, part: str | None = None) -> list[Path]:
        rel = Path(self.instance) / self.name / (part or "")
        if _v2():
            return [ROOT / rel]
        return [ROOT / controller / rel for controller in CONTROLLERS]

    def create(self, *, memory_mb: int, pids: int, cells_memory_mb: int, cells_pids: int, cells_cpus: float) -> None:
        """Make both groups with their limits; safe to call again."""
        if _v2():
            for path in (ROOT / self.instance, ROOT / self.instance / self.name):
                path.mkdir(exist_ok=True)
                with contextlib.suppress(OSError):
                    (path / "cgroup.subtree_control").write_text("+memory +pids +cpu")
            (ROOT / self.instance / "cpu.weight").write_text(str(max(1, round(100 * UNITS_CPU_WEIGHT))))
        else:
            instance = ROOT / "cpu" / self.instance
            instance.mkdir(exist_ok=True)
            (instance / "cpu.shares").write_text(str(max(2, round(1024 * UNITS_CPU_WEIGHT))))
        for part, mem, count, cpus in (("main", memory_mb, pids, None), ("cells", cells_memory_mb, cells_pids, cells_cpus)):
            for directory in self._dirs(part):
                directory.mkdir(parents=True, exist_ok=True)
            self._limit(part, mem, count, cpus)

    def _limit(self, part: str, memory_mb: int, pids: int, cpus: float | None) -> None:
        limit = str(memory_mb * 1024 * 1024)
        quota = int(cpus * CFS_PERIOD_US) if cpus else None
        if _v2():
            (directory,) = self._dirs(part)
            (directory / "memory.max").write_text(limit)
            (directory / "pids.max").write_text(str(pids))
            (directory / "cpu.max").write_text(f"{quota or 'max'} {CFS_PERIOD_US}")
            return
        memory, pid_dir, cpu = self._dirs(part)
        (memory / "memory.limit_in_bytes").write_text(limit)
        (pid_dir / "pids.max").write_text(str(pids))
        (cpu / "cpu.cfs_period_us").write_text(str(CFS_PERIOD_US))
        (cpu / "cpu.cfs_quota_us").write_text(str(quota or -1))

    def procs_files(self, part: str) -> list[Path]:
        """The cgroup.procs files a process writes its pid to, to join ``part``."""
        return [d / "cgroup.procs" for d in self._dirs(part)]

    def pids(self) -> set[int]:
        found: set[int] = set()
        for part in ("main", "cells"):
            for procs in self.procs_files(part):
                with contextlib.suppress(OSError):
                    found.update(int(p) for p in procs.read_text().split())
        return found

    def kill_all(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while (pids := self.pids()) and time.monotonic() < deadline:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)

    def remove(self) -> None:
        for part in ("main", "cells", None):
            for directory in self._dirs(part):
                with contextlib.suppress(FileNotFoundError, OSError):
                    directory.rmdir()
        for directory in self._dirs():
            with contextlib.suppress(OSError):
                directory.parent.rmdir()  # the instance's folder, once its last unit is gone

    def exists(self) -> bool:
        return any(d.exists() for d in self._dirs())


def unit_names(instance: str) -> set[str]:
    """Names of unit groups of this instance (for reconciliation)."""
    bases = [ROOT / instance] if _v2() else [ROOT / controller / instance for controller in CONTROLLERS]
    names: set[str] = set()
    for base in bases:
        if base.is_dir():
            names.update(p.name for p in base.iterdir() if p.is_dir())
    return names
