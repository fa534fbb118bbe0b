"""A broker's output kept in its unit's folder within a size cap, however much the broker writes.

The unit's folder is on the host's disk (its broker's data has a capped filesystem of its own:
backends/disks.py), and a broker logs what learners make it do: RabbitMQ writes two lines for every
connection a cell opens and closes, so a loop of connects writes megabytes a minute. The broker
writes into a pipe; a thread of the agent copies it to ``broker.log`` and, past the cap, moves
that file to ``broker.log.1`` (replacing the last one) and starts again: at most twice the cap on
disk, the newest lines always kept. The agent's own log lines are capped alike (CappedStderrHandler).
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import sys
import threading
from pathlib import Path

#: Each of the two files; 8 MiB holds days of a learner's broker at its usual pace.
LOG_CAP_BYTES = 8 * 1024 * 1024
CHUNK = 64 * 1024


def _drain(source: int, path: Path, cap_bytes: int) -> None:
    out = path.open("ab")
    size = out.tell()
    try:
        with os.fdopen(source, "rb", buffering=0) as pipe:
            while chunk := pipe.read(CHUNK):
                if size and size + len(chunk) > cap_bytes:
                    out.close()
                    os.replace(path, path.with_name(path.name + ".1"))
                    out = path.open("ab")
                    size = 0
                out.write(chunk[-cap_bytes:])
                out.flush()
                size += min(len(chunk), cap_bytes)
    finally:
        out.close()


def capped_log(path: Path, *, cap_bytes: int = LOG_CAP_BYTES) -> tuple[int, threading.Thread]:
    """The write end of a pipe to give a process as its output (close it here once given), and the copying thread.

    The thread ends when every writer has closed the pipe (the broker and what it forked exited).
    """
    source, sink = os.pipe()
    thread = threading.Thread(target=_drain, args=(source, path, cap_bytes), name=f"log {path.name}", daemon=True)
    thread.start()
    return sink, thread


def log_tail(path: Path, chars: int = 1500) -> str:
    """The last ``chars`` of the log (across the move to ``.1``)."""
    text = ""
    for part in (path.with_name(path.name + ".1"), path):
        try:
            text += part.read_text(errors="replace")
        except FileNotFoundError:
            continue
    return text[-chars:]


class CappedStderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The agent's own log lines, on its stderr; when that is a file (the process backend's ``agent.log``), within a cap.

    Past ``cap_bytes`` the file's content is copied to ``older`` (replacing it) and the file is emptied in place:
    the backend opened it for appending, so the next line goes at its new start. Anything else on the agent's
    stderr (a crash's traceback) lands in the same file. A pipe (a container's or a pod's log, capped by its
    engine) is left as it is.
    """

    def __init__(self, older: Path, *, cap_bytes: int = LOG_CAP_BYTES) -> None:
        super().__init__(sys.stderr)
        self.older = older
        self.cap_bytes = cap_bytes
        try:
            self.capped = stat.S_ISREG(os.fstat(sys.stderr.fileno()).st_mode)
        except (OSError, ValueError):
            self.capped = False

    def emit(self, record: logging.LogRecord) -> None:
        if self.capped:
            with contextlib.suppress(OSError):
                if os.fstat(self.stream.fileno()).st_size >= self.cap_bytes:
                    self._move()
        super().emit(record)

    def _move(self) -> None:
        self.flush()
        fd = self.stream.fileno()
        with open(f"/proc/self/fd/{fd}", "rb") as current:
            content = current.read()
        partial = self.older.with_name(self.older.name + ".partial")
        partial.write_bytes(content[-self.cap_bytes :])
        os.replace(partial, self.older)
        os.ftruncate(fd, 0)
