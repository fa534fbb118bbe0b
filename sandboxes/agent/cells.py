"""Running one learner's cell: a fresh Python process, confined and limited (confinement.py).

A warm process waits for code so that a run costs a pipe write, not an interpreter
start; the run's output streams back through an OutputWindow, its hint through a
pipe of its own.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .cell_hints import MAX_HINT_BYTES, hint_parse
from .cell_program import RUNNER
from .confinement import HOME, CellLimits, Confinement, environment
from .leftovers import kill_leftovers
from .output import OutputWindow

#: The environment variable naming the unit in each of its processes (see ProcessBackend.processes).
UNIT_MARKER = "BA_UNIT"

#: Receives each output message of a run: {"stream", "text"} and, for the tail, "tail" and "skipped" (see output.py).
OutputCallback = Callable[[dict[str, Any]], Awaitable[None]]

#: Output is sent at most this often: a loop of tiny prints becomes a few messages a second.
OUTPUT_EVERY_S = 0.1


@dataclass(frozen=True, slots=True)
class CellResult:
    status: int
    reason: str | None  # None, "timeout", "output", "interrupted", "memory", "killed"
    duration_ms: int
    truncated: bool
    hint: dict[str, Any] | None = None  # the last hint the cell wrote (cell_hints.hint_parse)


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
            while len(data) <= MAX_HINT_BYTES * 8:
                chunk = os.read(self.hints, 65536)
                if not chunk:
                    break
                data += chunk
        except OSError:
            pass  # nothing (more) written
        finally:
            self.close()
        for line in reversed(data.splitlines()):
            hint = hint_parse(line)
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
        self,
        *,
        env: dict[str, str],
        limits: CellLimits,
        uid: int | None,
        cgroup_procs: list[Path],
        confinement: str = "bwrap",
        tmp: Path | None = None,
        tools: Path | None = None,
        read_only: tuple[str, ...] = (),
    ) -> None:
        """``tmp``: the unit's one /tmp (bubblewrap's mode); ``tools``: the folder of the broker's command-line
        tools (agent/terminal.py: write_tools), first on PATH, with ``read_only`` the host folders they need:
        cells and the terminal see the same /tmp and the same tools."""
        self.env = env
        self.limits = limits
        self.walls = Confinement(limits=limits, uid=uid, cgroup_procs=cgroup_procs, mode=confinement, tmp=tmp)
        self.tools = tools
        self.read_only = read_only
        self._warm: _CellProcess | None = None
        self._lock = asyncio.Lock()
        self.current: asyncio.subprocess.Process | None = None
        self._interrupted = False
        self._terminals: set[int] = set()

    def argv(self, hint_fd: int = -1, *, command: list[str] | None = None, seccomp_fd: int | None = None) -> list[str]:
        """The cell's confined command line; ``command`` instead of the cell's Python (the terminal's shell).
        The tools' folders (``read_only``) are seen at their own paths by both."""
        if command is None:
            # The connection variables go along, for hints that name them (the rest of env is no business of hints).
            variables = [name for name in self.env if name != UNIT_MARKER]
            command = [sys.executable, "-u", "-B", "-c", RUNNER, str(hint_fd), *variables]
        return self.walls.argv(command, read_only=self.read_only, seccomp_fd=seccomp_fd)

    def environment(self) -> dict[str, str]:
        """What a cell's process and the terminal's shell start with: the connection variables, the tools first on PATH."""
        env = environment(self.env)
        if self.tools is not None:
            env["PATH"] = f"{self.tools}:{env['PATH']}"
        return env

    async def spawn_terminal(self, command: list[str], *, tty: int, env: dict[str, str]) -> asyncio.subprocess.Process:
        """``command`` on the pty ``tty`` under exactly a cell's confinement (argv, uid, rlimits, cgroup, filter)."""
        seccomp_fd = self.walls.seccomp_fd()
        try:
            shell = await asyncio.create_subprocess_exec(
                *self.argv(command=command, seccomp_fd=seccomp_fd),
                stdin=tty,
                stdout=tty,
                stderr=tty,
                env={**self.environment(), **env},
                cwd=HOME,  # under bubblewrap its --chdir; in a container, the shell starts at home, not in /
                preexec_fn=lambda: self.walls.preexec(terminal=True),
                pass_fds=() if seccomp_fd is None else (seccomp_fd,),
            )
            self._terminals.add(shell.pid)  # its own session (preexec): spared when runs' leftovers are killed
            return shell
        finally:
            if seccomp_fd is not None:
                os.close(seccomp_fd)

    async def _spawn(self) -> _CellProcess:
        env = self.environment()
        read, write = os.pipe()
        seccomp_fd = None
        try:
            seccomp_fd = self.walls.seccomp_fd()
            process = await asyncio.create_subprocess_exec(
                *self.argv(write, seccomp_fd=seccomp_fd),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                cwd=HOME,  # a relative path a cell writes lands in its /tmp, in a container as under bubblewrap
                preexec_fn=self.walls.preexec,
                pass_fds=(write,) if seccomp_fd is None else (write, seccomp_fd),
                limit=1024 * 1024,
            )
        except BaseException:
            os.close(read)
            raise
        finally:
            os.close(write)
            if seccomp_fd is not None:
                os.close(seccomp_fd)
        return _CellProcess(process, read)

    async def prewarm(self) -> None:
        """Start the next process ahead of time; a failure here surfaces on the next run."""
        if self._warm is None or self._warm.process.returncode is not None:
            try:
                spawned = await self._spawn()
            except (OSError, subprocess.SubprocessError):
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
            self._kill_leftovers()  # before reading to the end: a leftover child would hold the pipes open
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

    def _kill_leftovers(self) -> None:
        """Nothing of a finished run survives it: done by its PID namespace under bubblewrap, here otherwise."""
        if self.walls.mode == "setpriv" and self.walls.uid is not None:
            spare = {pid for pid in self._terminals if _alive(pid)}
            self._terminals = spare
            kill_leftovers(uid=self.walls.uid, spare_sessions=spare)

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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
