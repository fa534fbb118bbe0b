"""Per-unit control groups (v1 or v2): memory, process and CPU limits, and a list of every pid.

Each unit gets two groups: ``main`` (agent and broker) and ``cells`` (learners'
code, with tighter limits), so a fork bomb in a cell cannot starve its broker.
Every unit has the same CPU weight, and its cells at most CELLS_CPUS of CPU time,
so one learner's busy loops leave the others their share.
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
