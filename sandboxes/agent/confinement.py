"""How a cell's process (and the terminal's shell) is walled in: its command line, rlimits and environment.

On Linux as root the process runs under bubblewrap (its own PID namespace, a
read-only view of the system, the unit's one /tmp) as the unit's unprivileged uid,
with rlimits, inside the unit's cells cgroup when there is one. In a container
(confinement "setpriv") bubblewrap cannot make namespaces without privileges, and
the container already is the cell's view of the system: there the process only
switches to the unit's uid, without capabilities, under the same rlimits. Both
run under seccomp.py's filter (no namespaces, mounts or ptrace): bubblewrap loads
it from a pipe (``seccomp_fd``), setpriv's mode installs it before the exec.
"""

from __future__ import annotations

import fcntl
import os
import resource
import shutil
import sys
import termios
from dataclasses import dataclass
from pathlib import Path

from . import seccomp

#: A cell's HOME and working folder, as in every backend: its /tmp, where it may write.
HOME = "/tmp"
#: The cells' /tmp (and HOME) lives in memory, one per unit (agent/mounts.py); this bounds it.
#: The Docker and Kubernetes backends give their containers' /tmp the same size.
TMP_BYTES = 64 * 1024 * 1024
#: An exercise's check runs as a uid of its own, this far above the cells' (theirs are 200,000-299,999 and
#: their brokers' 300,000-399,999: backends/process.py): no process of the learner's can signal it, trace
#: it or open its /proc files, even in a container where it shares their PID namespace.
CHECKER_UID_OFFSET = 200_000
#: A check's own /tmp under bubblewrap: it needs little, and sees nothing the learner wrote.
CHECKER_TMP_BYTES = 8 * 1024 * 1024

#: The interpreter of exercise checks, beside the agent's where the image has it (sandboxes/images/base.Dockerfile):
#: a copy that the cells' uid may execute but not read. The kernel makes a process whose program it could not
#: read non-dumpable at its exec, so a check's /proc/<pid>/mem, environ and fds belong to root from its first
#: instruction, not from the moment cell_main makes it so. That mattered when a Kubernetes pod's checks ran as the
#: learner's uid (they now run in the pod's checker container, agent/checker.py); it stays as a second wall.
CHECK_PYTHON = "python-check"


def checker_uid_for(cell_uid: int | None) -> int | None:
    """The uid a unit's checks run as: another than its cells', never root; None when cells have no uid of their own."""
    return None if not cell_uid else cell_uid + CHECKER_UID_OFFSET


@dataclass(frozen=True, slots=True)
class CellLimits:
    """Limits of one cell run; the wall time comes with each run."""

    #: Address space (RLIMIT_AS); the cgroup caps real use. Go programs (the nats CLI in the
    #: terminal) reserve address space up front: at 768 MiB, 5 in 50 runs of `nats stream ls`
    #: died with "runtime: out of memory" having used 4 MiB; at 1024, none in 60.
    memory_mb: int = 1024
    cpu_s: int = 300
    processes: int = 64
    #: All a run may write (stdout and stderr together); past it the run is stopped, reason "output".
    output_bytes: int = 8 * 1024 * 1024
    file_mb: int = 64


class ConfinementMissing(OSError):
    """A cell's walls cannot be applied: it is not run."""


@dataclass(frozen=True, slots=True)
class Confinement:
    """The walls of one unit's cells: ``mode`` "bwrap" (namespaces) or "setpriv" (a container's uid switch)."""

    limits: CellLimits
    uid: int | None
    cgroup_procs: list[Path]
    mode: str = "bwrap"
    #: The unit's one /tmp (agent/mounts.py: make_cells_tmp), bound at /tmp and HOME under bubblewrap: what a
    #: run writes there the next run and the terminal see, until the unit stops. Required under bubblewrap.
    tmp: Path | None = None
    #: The uid of the unit's exercise checks (checker_uid_for); None: they run as the cells' uid (a pod's one account).
    checker_uid: int | None = None

    def needs_filter_fd(self) -> bool:
        """Whether argv() takes the seccomp filter as a pipe (bubblewrap's mode); see seccomp_fd()."""
        return self.mode != "setpriv" and self.uid is not None

    def seccomp_fd(self) -> int | None:
        """A pipe holding the filter for one spawn under bubblewrap (to pass and then close), else None."""
        return seccomp.pipe() if self.needs_filter_fd() else None

    def argv(
        self, python: list[str], *, read_only: tuple[str, ...] = (), seccomp_fd: int | None = None, checker: bool = False
    ) -> list[str]:
        """``python`` (the cell's interpreter, or the terminal's shell) as a confined command line, with
        ``read_only`` folders of the host seen at their own paths (the broker's tools); ``seccomp_fd``
        from seccomp_fd(), passed to the child. ``checker``: an exercise's check, as the checks' uid, and under
        bubblewrap with a fresh /tmp of its own instead of the unit's."""
        as_checker = checker and self.checker_uid is not None
        uid = self.checker_uid if as_checker else self.uid
        if self.mode == "setpriv" and os.geteuid() == 0 and uid is not None:
            return [*self._setpriv(uid, bounding_set=can_drop_bounding_set()), *python]
        if self.uid is None:
            return python  # the unisolated development mode (no uid given; refused in production)
        bwrap = shutil.which("bwrap")
        if os.geteuid() != 0 or bwrap is None:
            # A unit meant to be confined never runs a cell without its walls (agent/fail_closed.py
            # refuses such a unit at start; this is the last line if something changed since).
            raise ConfinementMissing("bubblewrap is missing or the agent is not root: the cell is not run")
        if seccomp_fd is None:
            raise ConfinementMissing("no seccomp filter for the cell: it is not run")
        if self.tmp is None:
            raise ConfinementMissing("no /tmp of the unit's for the cell: it is not run")
        binds: list[str] = []
        made: set[str] = set()
        interpreter = {sys.prefix, sys.base_prefix, str(Path(sys.executable).resolve().parent.parent)}
        for path in sorted(interpreter | set(read_only)):
            if path.startswith("/usr"):
                continue
            # Parents made explicitly: bubblewrap would otherwise copy a private mode (as /root's 0700).
            # Passed through, never listed: the unit's folder shows nothing of itself but its tools.
            for parent in reversed(Path(path).parents[:-1]):
                if str(parent) not in made:
                    made.add(str(parent))
                    binds += ["--perms", "0711", "--dir", str(parent)]
            binds += ["--ro-bind", path, path]
        return [
            bwrap,
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--die-with-parent",
            "--ro-bind",
            "/usr",
            "/usr",
            "--symlink",
            "usr/lib",
            "/lib",
            "--symlink",
            "usr/lib64",
            "/lib64",
            "--symlink",
            "usr/bin",
            "/bin",
            "--symlink",
            "usr/sbin",
            "/sbin",
            "--ro-bind",
            "/etc",
            "/etc",
            # /tmp first: the interpreter may live below it (a checkout in /tmp), and a later bind would hide it.
            # The unit's one /tmp, not a fresh one per run: the next cell and the terminal see what this one wrote.
            *(
                ["--perms", "1777", "--size", str(CHECKER_TMP_BYTES), "--tmpfs", "/tmp"]
                if as_checker
                else ["--bind", str(self.tmp), "/tmp"]
            ),
            *binds,
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--seccomp",
            str(seccomp_fd),
            "--chdir",
            HOME,
            "--setenv",
            "HOME",
            HOME,
            *self._setpriv(uid, bounding_set=True),
            *python,
        ]

    def check_interpreter(self) -> str:
        """CHECK_PYTHON where the image has it. Without it a check runs the agent's interpreter only where it
        has a uid of its own (the process backend, Docker); a check that would share the learner's uid is refused."""
        execute_only = Path(sys.executable).with_name(CHECK_PYTHON)
        if execute_only.exists():
            return str(execute_only)
        if self.mode == "setpriv" and self.checker_uid is None:
            raise ConfinementMissing(f"no {execute_only} (execute-only) for a check beside the learner's uid: it is not run")
        return sys.executable

    @staticmethod
    def _setpriv(uid: int | None, *, bounding_set: bool) -> list[str]:
        """Become ``uid`` (the cells' or the checks') with no groups and no capabilities, for good."""
        return [
            "/usr/bin/setpriv",
            f"--reuid={uid}",
            f"--regid={uid}",
            "--clear-groups",
            "--inh-caps=-all",
            *(["--bounding-set=-all"] if bounding_set else []),
            "--no-new-privs",
            "--",
        ]

    def preexec(self, *, terminal: bool = False) -> None:
        """Run in the child before it execs: its own session, the cgroup, the rlimits."""
        os.setsid()
        if terminal:
            # The terminal's pty (its stdin) becomes the session's controlling terminal: job control, ^C.
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        for procs in self.cgroup_procs:
            # Not joined, not run: an OSError here fails the spawn (the cell's limits live in that group).
            procs.write_text(str(os.getpid()))
        mb = 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (self.limits.memory_mb * mb, self.limits.memory_mb * mb))
        resource.setrlimit(resource.RLIMIT_CPU, (self.limits.cpu_s, self.limits.cpu_s + 5))
        resource.setrlimit(resource.RLIMIT_FSIZE, (self.limits.file_mb * mb, self.limits.file_mb * mb))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if self.uid is not None and os.geteuid() == 0:
            # Counted per uid once setpriv switches to the unit's own uid.
            resource.setrlimit(resource.RLIMIT_NPROC, (self.limits.processes, self.limits.processes))
        if self.mode == "setpriv":
            # No bubblewrap to load it: the filter goes on here (setpriv needs none of the calls it takes). Also
            # without a uid of the cells' own (a Kubernetes pod, one account for all): ptrace of the agent and
            # the broker, which share that account, is refused with the rest.
            seccomp.install()


def environment(env: dict[str, str]) -> dict[str, str]:
    """What a cell's process (and the terminal's shell) starts with: ``env``, the broker's connection variables."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        # RLIMIT_AS counts address space reserved, not memory used, and glibc reserves a
        # 64 MiB malloc arena for each thread that allocates, up to 8 per core: a cell with
        # a few confluent_kafka clients (librdkafka starts several threads each) ran out of
        # address space at a few MiB of real use. Two arenas; the cgroup still caps real use.
        "MALLOC_ARENA_MAX": "2",
        "HOME": HOME,
        **env,
    }


def can_drop_bounding_set() -> bool:
    """Whether this process holds CAP_SETPCAP, which emptying a child's bounding set takes.

    Without it (a container that grants only what the agent needs) the child keeps
    the container's small bounding set; with no-new-privs and a non-root uid it
    cannot gain any of those capabilities anyway.
    """
    try:
        with open("/proc/self/status") as status:
            effective = next(int(line.split()[1], 16) for line in status if line.startswith("CapEff:"))
    except (OSError, StopIteration, ValueError):
        return False
    return bool(effective & (1 << 8))  # CAP_SETPCAP
