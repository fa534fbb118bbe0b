"""Running one learner's cell: a fresh Python process, confined and limited.

On Linux as root the process runs under bubblewrap (its own PID namespace, a
read-only view of the system, a private /tmp) as the unit's unprivileged uid,
with rlimits, inside the unit's cells cgroup when there is one. In a container
(confinement "setpriv") bubblewrap cannot make namespaces without privileges, and
the container already is the cell's view of the system: there the process only
switches to the unit's uid, without capabilities, under the same rlimits. A warm
process waits for code so that a run costs a pipe write, not an interpreter start.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import resource
import shutil
import signal
import sys
import termios
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import cell_errors
from .output import OutputWindow

#: Executed by the cell process (``python -c RUNNER HINT_FD VARIABLE...``): read the code from stdin, run it as
#: __main__ of ``<cell>``, print tracebacks the learner's way and write hints to the pipe (cell_errors.main).
RUNNER = Path(cell_errors.__file__).read_text(encoding="utf-8") + "\nmain()\n"

#: The private /tmp of a cell lives in memory; this bounds it.
TMP_BYTES = 64 * 1024 * 1024

#: The environment variable naming the unit in each of its processes (see ProcessBackend.processes).
UNIT_MARKER = "BA_UNIT"

#: Receives each output message of a run: {"stream", "text"} and, for the tail, "tail" and "skipped" (see output.py).
OutputCallback = Callable[[dict[str, Any]], Awaitable[None]]

#: Output is sent at most this often: a loop of tiny prints becomes a few messages a second.
OUTPUT_EVERY_S = 0.1


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


@dataclass(frozen=True, slots=True)
class CellResult:
    status: int
    reason: str | None  # None, "timeout", "output", "interrupted", "memory", "killed"
    duration_ms: int
    truncated: bool
    hint: dict[str, Any] | None = None  # the last hint the cell wrote (cell_errors.hint_parse)


@dataclass(slots=True)
class _CellProcess:
    """A cell's process and the read end of its hint pipe (closed once read)."""

    process: asyncio.subprocess.Process
    hints: int

    def read_hint(self) -> dict[str, Any] | None:
        """The last hint the cell wrote; the pipe is read without waiting (a child of the cell may still hold it)."""
        data = b""
        try:
            os.set_blocking(self.hints, False)
            while len(data) <= cell_errors.MAX_HINT_BYTES * 8:
                chunk = os.read(self.hints, 65536)
                if not chunk:
                    break
                data += chunk
        except OSError:
            pass  # nothing (more) written
        finally:
            self.close()
        for line in reversed(data.splitlines()):
            hint = cell_errors.hint_parse(line)
            if hint is not None:
                return hint
        return None

    def close(self) -> None:
        if self.hints >= 0:
            os.close(self.hints)
            self.hints = -1


class CellRunner:
    """Runs cells one at a time for a unit, keeping one warm process ready."""

    def __init__(
        self, *, env: dict[str, str], limits: CellLimits, uid: int | None, cgroup_procs: list[Path], confinement: str = "bwrap"
    ) -> None:
        self.env = env
        self.limits = limits
        self.uid = uid
        self.cgroup_procs = cgroup_procs
        self.confinement = confinement
        self._warm: _CellProcess | None = None
        self._lock = asyncio.Lock()
        self.current: asyncio.subprocess.Process | None = None
        self._interrupted = False

    def argv(self, hint_fd: int = -1, *, command: list[str] | None = None, read_only: tuple[str, ...] = ()) -> list[str]:
        """The cell's confined command line; ``command`` instead of the cell's Python (the terminal's shell),
        with ``read_only`` folders of the host seen at their own paths (the broker's tools)."""
        if command is None:
            # The connection variables go along, for hints that name them (the rest of env is no business of hints).
            variables = [name for name in self.env if name != UNIT_MARKER]
            command = [sys.executable, "-u", "-B", "-c", RUNNER, str(hint_fd), *variables]
        python = command
        if self.confinement == "setpriv" and os.geteuid() == 0 and self.uid is not None:
            return [*self._setpriv(bounding_set=_can_drop_bounding_set()), *python]
        bwrap = shutil.which("bwrap")
        if os.geteuid() != 0 or bwrap is None or self.uid is None:
            return python
        binds: list[str] = []
        made: set[str] = set()
        interpreter = {sys.prefix, sys.base_prefix, str(Path(sys.executable).resolve().parent.parent)}
        for path in sorted(interpreter | set(read_only)):
            if path.startswith("/usr"):
                continue
            # Parents made explicitly: bubblewrap would otherwise copy a private mode (as /root's 0700).
            for parent in reversed(Path(path).parents[:-1]):
                if str(parent) not in made:
                    made.add(str(parent))
                    binds += ["--dir", str(parent)]
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
            # /tmp first: the interpreter may live below it (a checkout in /tmp), and a later tmpfs would hide it.
            "--perms",
            "1777",
            "--size",
            str(TMP_BYTES),
            "--tmpfs",
            "/tmp",
            *binds,
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--chdir",
            "/tmp",
            "--setenv",
            "HOME",
            "/tmp",
            *self._setpriv(bounding_set=True),
            *python,
        ]

    def _setpriv(self, *, bounding_set: bool) -> list[str]:
        """Become the unit's uid with no groups and no capabilities, for good."""
        return [
            "/usr/bin/setpriv",
            f"--reuid={self.uid}",
            f"--regid={self.uid}",
            "--clear-groups",
            "--inh-caps=-all",
            *(["--bounding-set=-all"] if bounding_set else []),
            "--no-new-privs",
            "--",
        ]

    def _preexec(self, *, terminal: bool = False) -> None:
        os.setsid()
        if terminal:
            # The terminal's pty (its stdin) becomes the session's controlling terminal: job control, ^C.
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        for procs in self.cgroup_procs:
            try:
                procs.write_text(str(os.getpid()))
            except OSError:
                pass
        mb = 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (self.limits.memory_mb * mb, self.limits.memory_mb * mb))
        resource.setrlimit(resource.RLIMIT_CPU, (self.limits.cpu_s, self.limits.cpu_s + 5))
        resource.setrlimit(resource.RLIMIT_FSIZE, (self.limits.file_mb * mb, self.limits.file_mb * mb))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if self.uid is not None and os.geteuid() == 0:
            # Counted per uid once setpriv switches to the unit's own uid.
            resource.setrlimit(resource.RLIMIT_NPROC, (self.limits.processes, self.limits.processes))

    def environment(self) -> dict[str, str]:
        """What a cell's process (and the terminal's shell) starts with: the broker's connection variables."""
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
            "HOME": "/tmp",
            **self.env,
        }

    async def spawn_terminal(
        self, command: list[str], *, tty: int, env: dict[str, str], read_only: tuple[str, ...] = ()
    ) -> asyncio.subprocess.Process:
        """``command`` on the pty ``tty`` under exactly a cell's confinement (argv, uid, rlimits, cgroup)."""
        return await asyncio.create_subprocess_exec(
            *self.argv(command=command, read_only=read_only),
            stdin=tty,
            stdout=tty,
            stderr=tty,
            env={**self.environment(), **env},
            preexec_fn=lambda: self._preexec(terminal=True),
        )

    async def _spawn(self) -> _CellProcess:
        env = self.environment()
        read, write = os.pipe()
        try:
            process = await asyncio.create_subprocess_exec(
                *self.argv(write),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                preexec_fn=self._preexec,
                pass_fds=(write,),
                limit=1024 * 1024,
            )
        except BaseException:
            os.close(read)
            raise
        finally:
            os.close(write)
        return _CellProcess(process, read)

    async def prewarm(self) -> None:
        """Start the next process ahead of time; a failure here surfaces on the next run."""
        if self._warm is None or self._warm.process.returncode is not None:
            try:
                spawned = await self._spawn()
            except OSError:
                return  # the next run spawns its own, and says why it cannot
            if self._warm is not None and self._warm.process.returncode is None:
                # Another prewarm finished first while this one spawned: one warm process is enough.
                _kill_group(spawned.process.pid)
                await spawned.process.wait()
                spawned.close()
            else:
                if self._warm is not None:
                    self._warm.close()
                self._warm = spawned

    def interrupt(self) -> bool:
        """Stop the running cell, if any; returns whether there was one."""
        process = self.current
        if process is None or process.returncode is not None:
            return False
        self._interrupted = True
        _kill_group(process.pid)
        return True

    async def run(self, *, code: str, timeout: float, on_output: OutputCallback) -> CellResult:
        async with self._lock:
            if self._warm is not None and self._warm.process.returncode is None:
                cell, self._warm = self._warm, None
            else:
                # A prewarm still spawning keeps its process for the next run (clearing it here would orphan it).
                cell = await self._spawn()
            process = cell.process
            self.current = process
            self._interrupted = False
            started = time.monotonic()
            budget = {"left": self.limits.output_bytes, "over": False, "memory": False}
            window = OutputWindow()
            wrote = asyncio.Event()
            sender = asyncio.create_task(self._send_output(window, wrote, on_output))
            assert process.stdin is not None and process.stdout is not None and process.stderr is not None
            try:
                process.stdin.write(code.encode("utf-8", "replace"))
                await process.stdin.drain()
                process.stdin.close()
            except (BrokenPipeError, ConnectionResetError):
                pass
            pumps = [
                asyncio.create_task(self._pump(process, process.stdout, "stdout", budget=budget, window=window, wrote=wrote)),
                asyncio.create_task(self._pump(process, process.stderr, "stderr", budget=budget, window=window, wrote=wrote)),
            ]
            reason: str | None = None
            try:
                await asyncio.wait_for(process.wait(), timeout=timeout)
            except TimeoutError:
                reason = "timeout"
                _kill_group(process.pid)
                await process.wait()
            await asyncio.gather(*pumps, return_exceptions=True)
            window.finished = True
            wrote.set()
            await asyncio.gather(sender, return_exceptions=True)
            self.current = None
            status = process.returncode if process.returncode is not None else -9
            if reason is None and budget["over"]:
                reason = "output"
            elif reason is None and self._interrupted:
                reason = "interrupted"
            elif reason is None and status == 2 and budget.get("memory"):
                reason = "memory"
            elif reason is None and status < 0:
                reason = "killed"
            hint = cell.read_hint()
            if status == 0 and reason is None:
                hint = None  # a mistake the cell handled itself (a logged retry, say) needs no hint
            asyncio.get_running_loop().create_task(self.prewarm())
            return CellResult(status, reason, int((time.monotonic() - started) * 1000), window.cut, hint)

    @staticmethod
    async def _pump(
        process: asyncio.subprocess.Process,
        stream: asyncio.StreamReader,
        name: str,
        *,
        budget: dict,
        window: OutputWindow,
        wrote: asyncio.Event,
    ) -> None:
        """Read one pipe to its end into the window; past the output limit, stop the run."""
        while True:
            chunk = await stream.read(65536)
            if not chunk:
                window.add(name, b"", final=True)
                wrote.set()
                return
            if name == "stderr" and b"MemoryError" in chunk:
                budget["memory"] = True
            budget["left"] -= len(chunk)
            if budget["left"] < 0 and not budget["over"]:
                budget["over"] = True
                _kill_group(process.pid)
            window.add(name, chunk)
            wrote.set()

    @staticmethod
    async def _send_output(window: OutputWindow, wrote: asyncio.Event, on_output: OutputCallback) -> None:
        """Send what the window holds as it comes, at most every OUTPUT_EVERY_S; the last send follows the run's end."""
        while True:
            await wrote.wait()
            wrote.clear()
            last = window.finished  # read before take(): nothing can be added after the run's end
            for message in window.take():
                await on_output(message)
            if last:
                return
            await asyncio.sleep(OUTPUT_EVERY_S)

    async def close(self) -> None:
        if self._warm is not None:
            self._warm.close()
        for process in (self._warm.process if self._warm is not None else None, self.current):
            if process is not None and process.returncode is None:
                _kill_group(process.pid)
                await process.wait()


def _can_drop_bounding_set() -> bool:
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


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
