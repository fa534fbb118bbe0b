"""The cell's process: runs the learner's code as ``__main__`` of ``<cell>`` and reports what goes wrong.

Runs inside the cell's process (see cell_program.py): standard library only, and
of the project only the other cell_* modules, imported relatively. Tracebacks are
shaped where the exception still exists, the same on every backend.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any

from .cell_hints import hint_for
from .cell_tracebacks import CELL, format_exception, scrub


class Reporter:
    """Writes hints to the agent's pipe, each once; prints tracebacks the learner's way wherever Python would."""

    def __init__(self, *, hint_fd: int, variables: Sequence[str]) -> None:
        self.hint_fd = hint_fd
        self.variables = tuple(variables)
        self.sent: set[str] = set()

    def hint(self, exc: BaseException | None) -> None:
        if exc is None or self.hint_fd < 0 or isinstance(exc, MemoryError):
            return
        try:
            hint = hint_for(exc, variables=self.variables)
            if hint is None:
                return
            line = json.dumps(hint, sort_keys=True)
            if line not in self.sent:
                self.sent.add(line)
                os.write(self.hint_fd, line.encode() + b"\n")
        except Exception:  # a hint is a courtesy: it never costs the learner their traceback
            pass

    def install(self) -> None:
        """Route every traceback Python prints (uncaught, in threads, logged, unraisable) and warnings through here."""
        import logging
        import threading
        import warnings

        reporter = self

        def excepthook(kind: type[BaseException], exc: BaseException, tb: Any) -> None:
            sys.stderr.write(format_exception(exc, tb))
            reporter.hint(exc)

        def thread_excepthook(args: Any) -> None:
            if args.exc_type is SystemExit:
                return
            name = args.thread.name if args.thread is not None else "?"
            sys.stderr.write(f"Exception in thread {name}:\n")
            if args.exc_value is not None:
                sys.stderr.write(format_exception(args.exc_value, args.exc_traceback))
                reporter.hint(args.exc_value)
            sys.stderr.flush()

        def unraisablehook(unraisable: Any) -> None:
            message = unraisable.err_msg or "Exception ignored in"
            sys.stderr.write(scrub(f"{message}: {unraisable.object!r}\n"))
            if unraisable.exc_value is not None:
                sys.stderr.write(format_exception(unraisable.exc_value, unraisable.exc_traceback))

        def format_logged(self: logging.Formatter, ei: Any) -> str:
            if ei and ei[1] is not None:
                reporter.hint(ei[1])
                return format_exception(ei[1], ei[2]).rstrip("\n")
            return original_format(self, ei)

        original_format = logging.Formatter.formatException
        original_warning = warnings.formatwarning

        def formatwarning(message: Any, category: Any, filename: str, lineno: int, line: str | None = None) -> str:
            return scrub(original_warning(message, category, filename, lineno, line))

        sys.excepthook = excepthook
        threading.excepthook = thread_excepthook
        sys.unraisablehook = unraisablehook
        logging.Formatter.formatException = format_logged  # type: ignore[method-assign]
        warnings.formatwarning = formatwarning


PR_SET_DUMPABLE = 4
#: prctl(2), looked up once per process: a forked run's start does not open the C library again (about 0.5 ms).
_prctl: list = []


def prctl(option: int, value: int) -> None:
    """prctl(option, value); a failure is ignored (the walls do not depend on it, they are defence in depth)."""
    try:
        if not _prctl:
            import ctypes

            _prctl.append(ctypes.CDLL(None, use_errno=True).prctl)
        _prctl[0](option, value, 0, 0, 0)
    except Exception:
        pass


def main(reporter: Reporter | None = None) -> None:
    """Run the code on stdin as ``__main__`` of the file ``<cell>``; argv: the hint pipe's fd, then the connection variables.

    ``reporter``: one installed ahead of the run, with its hint pipe set (cell_template.py), instead of argv."""
    import linecache

    if sys.flags.isolated:  # an exercise's check (cells.py): its /proc files belong to root, out of the
        prctl(PR_SET_DUMPABLE, 0)  # reach of the learner's processes of the same uid (the terminal, in a container)
    if reporter is None:
        reporter = Reporter(hint_fd=int(sys.argv[1]) if len(sys.argv) > 1 else -1, variables=sys.argv[2:])
        reporter.install()
    sys.argv[:] = ["-c"]
    if reporter.hint_fd >= 0:
        os.set_inheritable(reporter.hint_fd, False)  # the learner's subprocesses get no way to the agent
    src = sys.stdin.read()
    sys.stdin = open(os.devnull)  # the cell's stdin for its whole life
    linecache.cache[CELL] = (len(src), None, src.splitlines(True), CELL)
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    try:
        exec(compile(src, CELL, "exec"), namespace)
    except SystemExit:
        raise
    except BaseException as exc:
        tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None  # not this frame
        try:
            sys.stderr.write(format_exception(exc, tb))
        except BaseException:  # out of memory, say: Python's own printing needs less
            traceback.print_exception(type(exc), exc, tb)
        sys.stderr.flush()
        reporter.hint(exc)
        sys.exit(2 if isinstance(exc, MemoryError) else 1)
