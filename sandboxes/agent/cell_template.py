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
run's stdin, stdout, stderr and hint pipe), the run's process answers ``pid N`` and the
template ``exit STATUS`` once the run and, under bubblewrap, everything it left are gone.
The process of a run is forked before the run is asked for (pre-fork): at start, and again
once the last run and what it left are gone, so that a run's start costs the hand-over of
its descriptors and code, not a fork. That process waits for ``run`` on the control socket
itself. Under bubblewrap the template kills what a run left before forking the next one; in
a container (no namespace of its own) the template is a child subreaper, kills everything below
itself, and the agent then kills the leftovers of the cells' uid (agent/leftovers.py; not in a
Kubernetes pod, where that uid is also the agent's), sparing the template's session, and says ``next``. A run is stopped (timeout, interrupt,
output past its limit) by killing the whole template; the agent starts another. Runs under
bubblewrap share the template's PID namespace: after each run the template kills every other
process in it but its init, as the namespace's end did when each run had its own.

Runs inside the cell's walls (see cell_program.py): standard library only, and of the
project only the other cell_* modules, imported relatively.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import socket
import sys

from .cell_main import PR_SET_DUMPABLE, Reporter, prctl
from .cell_main import main as cell_main
from .cell_tracebacks import CELL

PR_SET_CHILD_SUBREAPER = 36
#: A process that forks as fast as it is killed is bounded by the cells' RLIMIT_NPROC; rounds until none is left.
SWEEP_ROUNDS = 200
#: What the agent sends once it has killed a run's leftovers itself ("keep"): the next run's process may be forked.
NEXT = b"next\n"


def _dumpable(flag: int) -> None:
    """Non-dumpable: a run (same uid) cannot read or write the template's memory through /proc/<pid>/mem."""
    prctl(PR_SET_DUMPABLE, flag)


#: Compiled once by the template and again by each process waiting for its run, on nothing: a process's first
#: compile costs milliseconds (the compiler's first use, then the pages it writes being copied after the fork).
REHEARSAL = """
import os
def f(x, *args, **kwargs):
    return [y for y in args if y], {k: v for k, v in kwargs.items()}, (z async for z in x), lambda: f"{x!r:>4}"
class C:
    async def g(self):
        with open(os.devnull) as handle:
            try:
                await self.g()
            except (OSError, ValueError) as exc:
                raise RuntimeError(exc) from None
            finally:
                print('', end='', file=handle)
"""


def _rehearse() -> None:
    compile(REHEARSAL, CELL, "exec")


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


def _descendants() -> list[int]:
    """Every live process below this one: what a run left (its children, and, this being a subreaper,
    the orphans of double forks and new sessions, which come back here instead of to the container's init)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue  # ended meanwhile
        if fields[0] != b"Z":
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, below = [], [os.getpid()]
    while below:
        for child in children.get(below.pop(), ()):
            found.append(child)
            below.append(child)
    return found


def _reap() -> None:
    """Collect the exit of every child that has ended (the killed leftovers came back to this process)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _end_leftovers() -> None:
    """Without a PID namespace of the cells' own ("keep"): kill everything below the template, in rounds while a
    leftover forks, and reap it. Nothing else of the container is touched: the agent, the broker and the learner's
    terminal are not below the template. In a Kubernetes pod (one account for all) this is the only way a run's
    leftovers end; in a Docker container the agent's kill by the cells' uid follows (agent/leftovers.py)."""
    for _ in range(SWEEP_ROUNDS):
        left = _descendants()
        if not left:
            break
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _reap()
    _reap()


def _run(control: socket.socket, fds: list[int], reporter: Reporter) -> None:
    """In the forked child: become the run (its own session, its pipes as 0-2) and run the cell as cell_main does."""
    control.close()
    os.setsid()
    _dumpable(1)  # the run is the learner's own process, as a fresh interpreter's would be
    stdin, stdout, stderr, hint = fds
    for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
        os.dup2(fd, target)
        os.close(fd)
    gc.unfreeze()
    reporter.hint_fd = hint
    try:
        cell_main(reporter)
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


def _wait_for_run(control: socket.socket, said: int, variables: list[str]) -> None:
    """In the child forked ahead of its run: wait for the run, tell the template it came (``said``), become it.

    What every run does first is done while it waits: the compiler's rehearsal, and the run's reporter (its
    hooks for tracebacks, hints and warnings) installed, its hint pipe given when the run comes."""
    _rehearse()
    reporter = Reporter(hint_fd=-1, variables=variables)
    reporter.install()
    try:
        message, fds, _flags, _address = socket.recv_fds(control, 64, 4)
    except OSError:
        message, fds = b"", []
    if message != b"run" or len(fds) != 4:
        for fd in fds:
            os.close(fd)
        os.write(said, b"x")  # the agent went away (or said something else): the template ends
        os._exit(0)
    os.write(said, b"r")
    os.close(said)
    control.sendall(f"pid {os.getpid()}\n".encode())
    _run(control, fds, reporter)


def _fork_next(control: socket.socket, variables: list[str]) -> tuple[int, int]:
    """Fork the next run's process ahead of its request: (its pid, the pipe it says ``r`` on when its run came)."""
    said_r, said_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(said_r)
        try:
            _wait_for_run(control, said_w, variables)
        finally:
            os._exit(1)  # never back into the template's loop
    os.close(said_w)
    return pid, said_r


def _hung_up(control: socket.socket) -> bool:
    """Whether the agent closed its end (a waiting child killed from outside leaves the socket as it was)."""
    try:
        return control.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def _line(control: socket.socket, expected: bytes) -> bool:
    """Read exactly ``expected`` (no byte more: the next run's message is its child's to read)."""
    got = b""
    while len(got) < len(expected):
        chunk = control.recv(len(expected) - len(got))
        if not chunk:
            return False
        got += chunk
    return got == expected


def main() -> None:
    """argv: the control socket's fd, "sweep" or "keep" (leftovers), the modules to import (comma-separated), the variables.

    The process of each run is forked before its request, once the last run and what it left are gone:
    at start, after the sweep ("sweep"), or once the agent says ``next`` after killing the leftovers itself
    ("keep"). It waits for the run's descriptors on the control socket, so starting a run costs no fork.
    """
    control = socket.socket(fileno=int(sys.argv[1]))
    sweep = sys.argv[2] == "sweep"
    # What cell_main imports when a run starts (its hooks), then the broker's client libraries.
    preload = ["atexit", "linecache", "logging", "threading", "warnings"]
    preload += [name for name in sys.argv[3].split(",") if name]
    variables = sys.argv[4:]
    os.set_inheritable(control.fileno(), False)
    _dumpable(0)
    if not sweep:
        # What a run leaves comes back here when its parent ends, not to the container's init (_end_leftovers).
        prctl(PR_SET_CHILD_SUBREAPER, 1)
    _preload(preload)
    _rehearse()
    gc.freeze()  # what the template holds stays shared with each run instead of being copied by the collector
    try:
        control.sendall(b"ready\n")
    except OSError:
        return  # the agent went away while the libraries were imported
    while True:
        pid, said = _fork_next(control, variables)
        _, status = os.waitpid(pid, 0)
        with os.fdopen(said, "rb", 0) as pipe:
            came = pipe.read(1)
        if came != b"r":
            if came == b"x" or _hung_up(control):
                return  # the agent went away (or said something else): the template ends
            continue  # killed while it waited (by the learner's terminal, say): another waits instead
        try:
            if sweep:
                _sweep()
            else:
                _end_leftovers()
            control.sendall(f"exit {os.waitstatus_to_exitcode(status)}\n".encode())
            if not sweep and not _line(control, NEXT):
                return
        except OSError:
            return
