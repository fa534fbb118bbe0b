"""The agent's side of a unit's cell template (cell_template.py): start it, fork a run from it, stop a run.

A run from the template looks to CellRunner like a process of its own (``CellProcess``): its
output streams, its exit status, a way to stop it. Stopping a run kills the whole template
(under bubblewrap its PID namespace goes with it); CellRunner then starts a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from .cell_process import HintPipe
from .cell_program import TEMPLATE
from .cell_template import NEXT
from .confinement import HOME

#: How long a run waits for a new template to import its libraries before it starts a fresh interpreter instead.
READY_WITHIN_S = 30
#: How long a ready template may take to fork a run before it is given up for a fresh interpreter.
FORK_WITHIN_S = 10
STREAM_LIMIT = 1024 * 1024


class TemplateGone(RuntimeError):
    """The template ended (killed by a run, or it could not start): the run goes to a fresh interpreter."""


class Template:
    """One unit's template process and its end of the control socket."""

    def __init__(self, process: asyncio.subprocess.Process, control: socket.socket, *, sweep: bool = True) -> None:
        self.process = process
        self.control = control
        self.sweep = sweep
        self._buffer = b""
        self.ready = False
        self.killed = False

    @classmethod
    async def spawn(
        cls,
        *,
        argv: Callable[[list[str], int | None], list[str]],
        seccomp_fd: int | None,
        sweep: bool,
        preload: list[str],
        variables: list[str],
        env: dict[str, str],
        preexec: Callable[[], None],
    ) -> Template:
        """Start a template: ``argv(command, seccomp_fd)`` walls the command in as a cell's (CellRunner.argv)."""
        ours, theirs = socket.socketpair()
        try:
            command = [sys.executable, "-u", "-B", "-c", TEMPLATE, str(theirs.fileno()), "sweep" if sweep else "keep"]
            command += [",".join(preload), *variables]
            passed = (theirs.fileno(),) if seccomp_fd is None else (theirs.fileno(), seccomp_fd)
            process = await asyncio.create_subprocess_exec(
                *argv(command, seccomp_fd),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                env=env,
                cwd=HOME,
                preexec_fn=preexec,
                pass_fds=passed,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        return cls(process, ours, sweep=sweep)

    @property
    def alive(self) -> bool:
        return not self.killed and self.process.returncode is None

    async def _line(self) -> str:
        loop = asyncio.get_running_loop()
        while b"\n" not in self._buffer:
            chunk = await loop.sock_recv(self.control, 256)
            if not chunk:
                raise TemplateGone("the cell template ended")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode("ascii", "replace")

    async def wait_ready(self, timeout: float = READY_WITHIN_S) -> None:
        if self.ready:
            return
        try:
            line = await asyncio.wait_for(self._line(), timeout)
        except TimeoutError:
            self.kill()
            raise TemplateGone("the cell template did not start in time") from None
        if line != "ready":
            self.kill()
            raise TemplateGone(f"the cell template said {line!r}")
        self.ready = True

    async def fork(self, code: bytes) -> TemplateRun:
        """Start a run on the process waiting for it; its stdin, output pipes and hint pipe are made here, their
        other ends go to the run. What of ``code`` fits in the pipe is written at once, before the run's answer."""
        ends: list[int] = []
        try:
            stdin_r, stdin_w = os.pipe()
            stdout_r, stdout_w = os.pipe()
            stderr_r, stderr_w = os.pipe()
            hint_r, hint_w = os.pipe()
            ends = [stdin_r, stdin_w, stdout_r, stdout_w, stderr_r, stderr_w, hint_r, hint_w]
            socket.send_fds(self.control, [b"run"], [stdin_r, stdout_w, stderr_w, hint_w])
        except OSError as exc:
            for fd in ends:
                os.close(fd)
            self.kill()
            raise TemplateGone(f"the cell template did not take the run: {exc}") from exc
        for fd in (stdin_r, stdout_w, stderr_w, hint_w):
            os.close(fd)  # the run holds them now; the output ends at EOF once it (and its children) are gone
        run = TemplateRun(self, stdin=stdin_w, hints=hint_r)
        run.start_code(code)
        wrapped: list[asyncio.BaseTransport] = []
        try:
            # The output is read from now on: the run may be printing already while its answer comes.
            run.stdout = await _reader(stdout_r, wrapped)
            run.stderr = await _reader(stderr_r, wrapped)
            try:
                # A template that does not answer at once was stopped (SIGSTOP from a run of the same uid, say).
                async with asyncio.timeout(FORK_WITHIN_S):  # not wait_for: no task of its own on a run's start
                    line = await self._line()
            except TimeoutError:
                raise TemplateGone("the cell template did not fork the run") from None
            if not line.startswith("pid "):
                raise TemplateGone(f"the cell template said {line!r}")
        except BaseException:
            for transport in wrapped:
                transport.close()  # and its pipe with it
            for fd in (stdout_r, stderr_r)[len(wrapped) :]:
                with contextlib.suppress(OSError):
                    os.close(fd)
            run.close()
            self.kill()
            raise
        return run

    def leftovers_gone(self) -> None:
        """Without a sweep of its own ("keep"), the template forks the next run's process only once told that
        the last run's leftovers are gone (the agent kills them: CellRunner._kill_leftovers)."""
        if self.sweep or not self.alive:
            return
        try:
            self.control.send(NEXT)
        except OSError:
            self.kill()

    def kill(self) -> None:
        """The template and, under bubblewrap, its whole PID namespace (what a run left with it). The control
        socket stays open: a read waiting on it ends with the EOF of the template's death."""
        self.killed = True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)

    async def close(self) -> None:
        self.kill()
        await self.process.wait()
        self.control.close()


async def _reader(fd: int, wrapped: list[asyncio.BaseTransport]) -> asyncio.StreamReader:
    """A reader of the pipe ``fd``, whose transport (owning the fd from now on) is added to ``wrapped``."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=STREAM_LIMIT)
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", 0))
    wrapped.append(transport)
    return reader


class TemplateRun(HintPipe):
    """One run forked from the template, with what CellRunner uses of a process."""

    def __init__(self, template: Template, *, stdin: int, hints: int) -> None:
        self.template = template
        self.stdin_fd = stdin
        self._rest: memoryview | None = None  # what of the code start_code could not write at once
        self.hints = hints
        self.stdout: Any = None
        self.stderr: Any = None
        self.returncode: int | None = None

    def start_code(self, code: bytes) -> None:
        """Write what of ``code`` fits in the pipe now; send_code writes the rest."""
        view = memoryview(code)
        try:
            # Most code fits in the pipe at once; the rest is written from a thread as the run reads it.
            os.set_blocking(self.stdin_fd, False)
            view = view[os.write(self.stdin_fd, view) :]
        except BlockingIOError:
            pass
        except OSError:
            view = view[len(view) :]  # the run ended without reading its code
        self._rest = view
        if not view:
            os.close(self.stdin_fd)
            self.stdin_fd = -1

    async def send_code(self, code: bytes) -> None:
        if self._rest is None:
            self.start_code(code)
        fd, self.stdin_fd, view, self._rest = self.stdin_fd, -1, self._rest, memoryview(b"")
        if fd < 0:
            return
        if not view:
            os.close(fd)
            return

        def write_rest(rest: memoryview) -> None:
            try:
                os.set_blocking(fd, True)
                while rest:
                    rest = rest[os.write(fd, rest) :]
            except OSError:
                pass
            finally:
                os.close(fd)

        await asyncio.to_thread(write_rest, view)

    async def wait(self) -> int:
        if self.returncode is None:
            try:
                line = await self.template._line()
                self.returncode = int(line.removeprefix("exit ")) if line.startswith("exit ") else -9
            except (TemplateGone, OSError, ValueError):
                self.returncode = -9  # stopped with its template
        return self.returncode

    def kill(self) -> None:
        self.template.kill()

    def close(self) -> None:
        for name in ("stdin_fd", "hints"):
            fd = getattr(self, name)
            if fd >= 0:
                os.close(fd)
                setattr(self, name, -1)
