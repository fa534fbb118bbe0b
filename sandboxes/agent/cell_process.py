"""A run in a fresh interpreter of its own (``python -c RUNNER``), and what both kinds of run share.

CellRunner forks its runs from the unit's template (cell_template_client.py); a fresh
interpreter is the way when there is no template (it could not start, or a run killed it and
its successor is not up yet). Both kinds give CellRunner the same few things: the output
streams, the code sent on stdin, the exit status, a way to stop the run, its hint.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from typing import Any

from .cell_hints import MAX_HINT_BYTES, hint_parse


def read_hint(fd: int) -> dict[str, Any] | None:
    """The last hint a run wrote to the pipe ``fd`` (closed here); read without waiting, as a child of the run may hold it."""
    data = b""
    try:
        os.set_blocking(fd, False)
        while len(data) <= MAX_HINT_BYTES * 8:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass  # nothing (more) written
    finally:
        os.close(fd)
    for line in reversed(data.splitlines()):
        hint = hint_parse(line)
        if hint is not None:
            return hint
    return None


class HintPipe:
    """The read end of a run's hint pipe, read (and closed) once the run is over; both kinds of run have one."""

    hints: int

    def read_hint(self) -> dict[str, Any] | None:
        fd, self.hints = self.hints, -1
        return read_hint(fd) if fd >= 0 else None


class CellProcess(HintPipe):
    """A cell's own interpreter and the read end of its hint pipe."""

    def __init__(self, process: asyncio.subprocess.Process, hints: int) -> None:
        self.process = process
        self.hints = hints

    @property
    def stdout(self) -> asyncio.StreamReader:
        assert self.process.stdout is not None
        return self.process.stdout

    @property
    def stderr(self) -> asyncio.StreamReader:
        assert self.process.stderr is not None
        return self.process.stderr

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    async def send_code(self, code: bytes) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        try:
            stdin.write(code)
            await stdin.drain()
            stdin.close()
        except (BrokenPipeError, ConnectionResetError):
            pass

    async def wait(self) -> int:
        return await self.process.wait()

    def kill(self) -> None:
        kill_group(self.process.pid)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
