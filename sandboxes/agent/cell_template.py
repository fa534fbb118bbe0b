"""The template a unit's cells are forked from: one interpreter, the broker's client libraries imported once.

A cell used to be a fresh interpreter that imported its client library itself: ``import nats``
alone costs about 0.3 s of CPU (it pulls in aiohttp), more than the rest of a short cell. Fifty
learners asking for nine cells a second spent two cores on imports (docs/bench.md). The
template is started under exactly a cell's walls (confinement.py: uid, namespaces, cgroup,
rlimits, seccomp), imports the libraries named for the unit's broker, and then forks once per
run: the run is a copy of that process, with the walls it was born in, that runs
cell_main.main as a fresh interpreter would.

Protocol on the control socket (a socketpair with the agent, agent/cell_template_client.py):
the template says ``ready``; for each run the agent sends ``run`` with four descriptors (the
run's stdin, stdout, stderr and hint pipe), the template answers ``pid N`` once forked and
``exit STATUS`` once the run and, under bubblewrap, everything it left are gone. A run is
stopped (timeout, interrupt, output past its limit) by killing the whole template; the agent
starts another. Runs under bubblewrap share the template's PID namespace: after each run the
template kills every other process in it but its init, as the namespace's end did when each
run had its own. In a container (no namespace of its own) the agent kills the leftovers
(agent/leftovers.py), sparing the template's session.

Runs inside the cell's walls (see cell_program.py): standard library only, and of the
project only the other cell_* modules, imported relatively.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import signal
import socket
import sys

from .cell_main import main as cell_main

PR_SET_DUMPABLE = 4
#: A process that forks as fast as it is killed is bounded by the cells' RLIMIT_NPROC; rounds until none is left.
SWEEP_ROUNDS = 200


def _dumpable(flag: int) -> None:
    """Non-dumpable: a run (same uid) cannot read or write the template's memory through /proc/<pid>/mem."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, flag, 0, 0, 0)


def _preload(names: list[str]) -> None:
    for name in names:
        try:
            __import__(name)
        except Exception:  # a library that does not import fails in the learner's own import, with its hint
            pass


def _others() -> list[int]:
    """Live processes of this PID namespace besides its init and this one."""
    me, found = os.getpid(), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in (1, me):
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                state = stat.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != b"Z":
            found.append(int(entry))
    return found


def _sweep() -> None:
    """Kill what the run left (background children, double forks, new sessions): all of the namespace but init."""
    for _ in range(SWEEP_ROUNDS):
        if not _others():
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(-1, signal.SIGKILL)  # every process this one may signal but init and itself


def _run(control: socket.socket, fds: list[int], variables: list[str]) -> None:
    """In the forked child: become the run (its own session, its pipes as 0-2) and run the cell as cell_main does."""
    control.close()
    os.setsid()
    _dumpable(1)  # the run is the learner's own process, as a fresh interpreter's would be
    stdin, stdout, stderr, hint = fds
    for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
        os.dup2(fd, target)
        os.close(fd)
    gc.unfreeze()
    sys.argv[:] = ["-c", str(hint), *variables]
    try:
        cell_main()
        status = 0
    except SystemExit as exc:
        status = _exit_status(exc.code)
    _finish(status)


def _exit_status(code: object) -> int:
    """The status Python gives a SystemExit's code (a message is printed, and is status 1)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    with contextlib.suppress(Exception):
        print(code, file=sys.stderr)
    return 1


def _finish(status: int) -> None:
    """End the run as an interpreter ends (non-daemon threads joined, atexit handlers run, output flushed),
    without tearing down every module the template imported: that teardown is most of a short run's exit."""
    import atexit
    import threading

    with contextlib.suppress(BaseException):
        threading._shutdown()  # type: ignore[attr-defined]  # what Py_FinalizeEx does first
    with contextlib.suppress(BaseException):
        atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):
            stream.flush()
    os._exit(status)


def main() -> None:
    """argv: the control socket's fd, "sweep" or "keep" (leftovers), the modules to import (comma-separated), the variables."""
    control = socket.socket(fileno=int(sys.argv[1]))
    sweep = sys.argv[2] == "sweep"
    # What cell_main imports when a run starts (its hooks), then the broker's client libraries.
    preload = ["atexit", "linecache", "logging", "threading", "warnings"]
    preload += [name for name in sys.argv[3].split(",") if name]
    variables = sys.argv[4:]
    os.set_inheritable(control.fileno(), False)
    _dumpable(0)
    _preload(preload)
    gc.freeze()  # what the template holds stays shared with each run instead of being copied by the collector
    control.sendall(b"ready\n")
    while True:
        try:
            message, fds, _flags, _address = socket.recv_fds(control, 64, 4)
        except OSError:
            return
        if message != b"run" or len(fds) != 4:
            for fd in fds:
                os.close(fd)
            return  # the agent went away (or said something else): the template ends
        pid = os.fork()
        if pid == 0:
            _run(control, fds, variables)
        for fd in fds:
            os.close(fd)
        control.sendall(f"pid {pid}\n".encode())
        _, status = os.waitpid(pid, 0)
        if sweep:
            _sweep()
        control.sendall(f"exit {os.waitstatus_to_exitcode(status)}\n".encode())
