"""What a cell leaves running when its run ends is killed, where no PID namespace does it for us.

Under bubblewrap (the process backend) a cell is its own PID namespace: when its first process
ends, the kernel kills everything else in it. In a container (setpriv's mode: no namespaces
without privileges) a cell's background child, a child in a session of its own or a double
fork outlives the run: it shares the uid of the next run and of exercise checks, and holding
the run's output pipes it kept the run from ever ending. After each run the agent kills every
process of the cells' uid, except the terminal's sessions (the learner's shell and what it runs).
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator

#: A process that forks as fast as it is killed is bounded by the cells' RLIMIT_NPROC; rounds until none is seen.
ROUNDS = 50


def _processes() -> Iterator[tuple[int, int, int]]:
    """(pid, real uid, session) of each process this agent can see."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                session = int(stat.read().rsplit(b")", 1)[1].split()[3])
            with open(f"/proc/{entry}/status") as status:
                uid = next(int(line.split()[1]) for line in status if line.startswith("Uid:"))
        except (OSError, StopIteration, ValueError, IndexError):
            continue  # ended meanwhile
        yield int(entry), uid, session


def kill_leftovers(*, uid: int, spare_sessions: set[int], collect: bool = False) -> int:
    """SIGKILL every process of ``uid`` whose session is not in ``spare_sessions``; returns how many were.

    ``collect``: this process is its container's init (a pod's checker, agent/checker.py), to which orphans
    come: their exit is collected too, or each would stay a zombie, counted against the container's pids."""
    if uid == 0:
        raise ValueError("the cells' uid is never root")
    killed = 0
    for _ in range(ROUNDS):
        found = [pid for pid, owner, session in _processes() if owner == uid and session not in spare_sessions]
        if not found:
            break
        for pid in found:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if collect:
            for pid in found:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)  # not dead yet: seen, killed and collected in the next round
        killed += len(found)
    return killed
