"""Running one learner's cell: a process of its own, confined and limited (confinement.py).

Each run is forked from the unit's template (cell_template.py), which started under the
same walls and imported the broker's client libraries once, so a run costs a fork, not an
interpreter start and its imports; without a template a run gets a fresh interpreter
(cell_process.py). The run's output streams back through an OutputWindow, its hint
through a pipe of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandboxes.brokers.tap import tap_watching

from .cell_process import CellProcess, alive
from .cell_program import RUNNER
from .cell_template_client import Template, TemplateGone, TemplateRun
from .confinement import HOME, CellLimits, Confinement, environment
from .leftovers import kill_leftovers
from .output import OutputWindow

#: The environment variable naming the unit in each of its processes (see ProcessBackend.processes).
UNIT_MARKER = "BA_UNIT"

#: Receives each output message of a run: {"stream", "text"} and, for the tail, "tail" and "skipped" (see output.py).
OutputCallback = Callable[[dict[str, Any]], Awaitable[None]]

#: Output is sent at most this often: a loop of tiny prints becomes a few messages a second.
OUTPUT_EVERY_S = 0.1
#: How long a finished run's output may take to reach its end once nothing of the run should be left.
PUMPS_END_S = 5
#: How long a run waits for the unit's tap to watch its broker (tap.py: a firehose or a subscription has
#: no past, so what a run publishes before it would never reach the page); then it runs anyway.
TAP_WAIT_S = 5.0


@dataclass(frozen=True, slots=True)
class CellResult:
    status: int
    reason: str | None  # None, "timeout", "output", "interrupted", "memory", "killed"
    duration_ms: int
    truncated: bool
    hint: dict[str, Any] | None = None  # the last hint the cell wrote (cell_hints.hint_parse)


class CellRunner:
    """Runs cells one at a time for a unit, forking each from the unit's template."""

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
        preload: tuple[str, ...] = (),
        checker_uid: int | None = None,
        reap: Callable[[], object] | None = None,
    ) -> None:
        """``tmp``: the unit's one /tmp (bubblewrap's mode); ``tools``: the folder of the broker's command-line
        tools (agent/terminal.py: write_tools), first on PATH, with ``read_only`` the host folders they need:
        cells and the terminal see the same /tmp and the same tools; ``preload``: the modules the template imports
        (the broker kind's client libraries, BrokerKind.cell_preload); ``checker_uid``: the uid exercise checks
        run as (confinement.checker_uid_for), out of reach of the cells' uid; ``reap``: kills what a run left running,
        where neither a PID namespace nor a uid of the cells' own does (a pod's checker container: agent/checker.py)."""
        self.env = env
        self.limits = limits
        self.walls = Confinement(
            limits=limits, uid=uid, cgroup_procs=cgroup_procs, mode=confinement, tmp=tmp, checker_uid=checker_uid
        )
        self.tools = tools
        self.read_only = read_only
        self.preload = list(preload)
        self._template: Template | None = None
        self._template_lock = asyncio.Lock()
        self._lock = asyncio.Lock()
        self.current: CellProcess | TemplateRun | None = None
        self._terminals: set[int] = set()
        self._tap_waited = False
        self.reap = reap

    def argv(
        self, hint_fd: int = -1, *, command: list[str] | None = None, seccomp_fd: int | None = None, isolated: bool = False
    ) -> list[str]:
        """The cell's confined command line; ``command`` instead of the cell's Python (the terminal's shell).
        The tools' folders (``read_only``) are seen at their own paths by both. ``isolated``: Python's ``-I``
        (an exercise's check: see ``run``)."""
        if command is None:
            flags = ["-I", "-u", "-B"] if isolated else ["-u", "-B"]
            python = self.walls.check_interpreter() if isolated else sys.executable
            command = [python, *flags, "-c", RUNNER, str(hint_fd), *self._variables()]
        return self.walls.argv(command, read_only=self.read_only, seccomp_fd=seccomp_fd, checker=isolated)

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

    def _variables(self) -> list[str]:
        # The connection variables go along, for hints that name them (the rest of env is no business of hints).
        return [name for name in self.env if name != UNIT_MARKER]

    async def _spawn(self, *, isolated: bool = False) -> CellProcess:
        """A fresh interpreter for one run (when there is no template, and for every check)."""
        env = self.environment()
        read, write = os.pipe()
        seccomp_fd = None
        try:
            seccomp_fd = self.walls.seccomp_fd()
            process = await asyncio.create_subprocess_exec(
                *self.argv(write, seccomp_fd=seccomp_fd, isolated=isolated),
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
        return CellProcess(process, read)

    async def prewarm(self) -> None:
        """Start the unit's template if none runs (its libraries import meanwhile); a failure shows on the next run."""
        async with self._template_lock:
            if self._template is not None and self._template.alive:
                return
            if self._template is not None:
                await self._template.close()
                self._template = None
            seccomp_fd = None
            try:
                seccomp_fd = self.walls.seccomp_fd()
                self._template = await Template.spawn(
                    argv=lambda command, fd: self.argv(command=command, seccomp_fd=fd),
                    seccomp_fd=seccomp_fd,
                    sweep=self.walls.mode != "setpriv" and self.walls.uid is not None,
                    preload=self.preload,
                    variables=self._variables(),
                    env=self.environment(),
                    preexec=self.walls.preexec,
                )
            except (OSError, subprocess.SubprocessError):
                return  # each run gets a fresh interpreter, and says why if that cannot start either
            finally:
                if seccomp_fd is not None:
                    os.close(seccomp_fd)

    async def _start(self, code: bytes) -> CellProcess | TemplateRun:
        """A run forked from the template, or a fresh interpreter if there is none (or it has just gone)."""
        template = self._template
        if template is not None and template.alive:
            try:
                await template.wait_ready()
                return await template.fork(code)
            except TemplateGone:
                pass
        return await self._spawn()

    async def run(
        self, *, code: str, timeout: float, on_output: OutputCallback, stop: asyncio.Event | None = None, check: bool = False
    ) -> CellResult:
        """Run ``code``; ``stop`` (the page's interrupt, or its hang-up) ends this run, even one that has not
        started yet (waiting for the runner, or for a template still importing): then it never starts.

        ``check``: an exercise's check, which passes by exiting 0. The learner's runs and terminal share its
        uid and /tmp, where a run starts and Python's user site lies, so a check never forks from the template
        their runs have shaped (they can kill it and plant a .pth for the next); it is a fresh interpreter in
        isolated mode (``-I``: neither the start folder nor the user site on ``sys.path``, no PYTHON* variables),
        not dumpable once it starts (cell_main)."""
        async with self._lock:
            if stop is not None and stop.is_set():
                return CellResult(-9, "interrupted", 0, False)
            if not check:
                await self._until_tap_watches()  # what a run sends shows on the page; a check's traffic is not shown
            source = code.encode("utf-8", "replace")
            cell = await (self._spawn(isolated=True) if check else self._start(source))
            self.current = cell
            interrupted = asyncio.Event()
            stopper = asyncio.create_task(self._stop_on(stop, cell, interrupted)) if stop is not None else None
            started = time.monotonic()
            budget = {"left": self.limits.output_bytes, "over": False, "memory": False}
            window = OutputWindow()
            wrote = asyncio.Event()
            ended = asyncio.Event()
            sender = asyncio.create_task(self._send_output(window, wrote, ended, on_output))
            await cell.send_code(source)
            pumps = [
                asyncio.create_task(self._pump(cell, cell.stdout, "stdout", budget=budget, window=window, wrote=wrote)),
                asyncio.create_task(self._pump(cell, cell.stderr, "stderr", budget=budget, window=window, wrote=wrote)),
            ]
            reason: str | None = None
            try:
                status = await asyncio.wait_for(cell.wait(), timeout=timeout)
            except TimeoutError:
                reason = "timeout"
                cell.kill()
                status = await cell.wait()
            self._kill_leftovers()  # before reading to the end: a leftover child would hold the pipes open
            if isinstance(cell, TemplateRun):
                cell.template.leftovers_gone()  # the template may fork the next run's process now
            try:
                await asyncio.wait_for(asyncio.gather(*pumps, return_exceptions=True), PUMPS_END_S)
            except TimeoutError:
                cell.kill()  # something of the run still holds its output: its template (and namespace) go too
                await asyncio.gather(*pumps, return_exceptions=True)
            window.finished = True
            ended.set()
            wrote.set()
            await asyncio.gather(sender, return_exceptions=True)
            self.current = None
            if stopper is not None:
                stopper.cancel()
            if reason is None and budget["over"]:
                reason = "output"
            elif reason is None and interrupted.is_set():
                reason = "interrupted"
            elif reason is None and status == 2 and budget.get("memory"):
                reason = "memory"
            elif reason is None and status < 0:
                reason = "killed"
            hint = cell.read_hint()
            if status == 0 and reason is None:
                hint = None  # a mistake the cell handled itself (a logged retry, say) needs no hint
            if not check:
                asyncio.get_running_loop().create_task(self.prewarm())  # a check never forks from the template
            return CellResult(status, reason, int((time.monotonic() - started) * 1000), window.cut, hint)

    async def _until_tap_watches(self) -> None:
        """Hold a run until the tap sees the broker's traffic: only the first run after a start waits, and once
        (a tap that cannot reach its broker does not cost every run the wait)."""
        if self._tap_waited:
            return
        deadline = time.monotonic() + TAP_WAIT_S
        while not tap_watching() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        self._tap_waited = True

    @staticmethod
    async def _stop_on(stop: asyncio.Event, cell: CellProcess | TemplateRun, interrupted: asyncio.Event) -> None:
        await stop.wait()
        interrupted.set()
        cell.kill()

    def _kill_leftovers(self) -> None:
        """Nothing of a finished run survives it: done by its PID namespace under bubblewrap, here otherwise."""
        if self.reap is not None:
            self.reap()
        if self.walls.mode == "setpriv" and self.walls.uid is not None:
            spare = {pid for pid in self._terminals if alive(pid)}
            self._terminals = spare
            template = self._template
            kept = {template.process.pid} if template is not None and template.alive else set()
            kill_leftovers(uid=self.walls.uid, spare_sessions=spare | kept)
            if self.walls.checker_uid is not None:
                kill_leftovers(uid=self.walls.checker_uid, spare_sessions=set())  # a check's: nothing is spared

    @staticmethod
    async def _pump(
        cell: CellProcess | TemplateRun,
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
                cell.kill()
            window.add(name, chunk)
            wrote.set()

    @staticmethod
    async def _send_output(window: OutputWindow, wrote: asyncio.Event, ended: asyncio.Event, on_output: OutputCallback) -> None:
        """Send what the window holds as it comes, at most every OUTPUT_EVERY_S; the last send follows the run's end
        at once (a run that printed and ended does not wait out the interval)."""
        while True:
            await wrote.wait()
            wrote.clear()
            last = window.finished  # read before take(): nothing can be added after the run's end
            for message in window.take():
                await on_output(message)
            if last:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ended.wait(), OUTPUT_EVERY_S)

    async def close(self) -> None:
        cell, self.current = self.current, None
        if cell is not None and cell.returncode is None:
            cell.kill()
            await cell.wait()
        if self._template is not None:
            await self._template.close()
            self._template = None
