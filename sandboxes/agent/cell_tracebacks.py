"""The traceback a learner reads when a cell fails: their own frames, the library's folded, no server path.

Runs inside the cell's process (see cell_program.py): standard library only, and
of the project only the other cell_* modules, imported relatively.
"""

from __future__ import annotations

import os
import sys
import sysconfig
import traceback
from collections.abc import Iterator
from typing import Any

#: The file name a cell's code is compiled under; the page links its line numbers to the editor.
CELL = "<cell>"
STDLIB = "the standard library"

#: Names of distributions whose import name differs, for the folded line ("… 3 frames inside kafka-python").
DISTRIBUTIONS = {
    "kafka": "kafka-python",
    "nats": "nats-py",
    "stomp": "stomp.py",
    "_pytest": "pytest",
    "confluent_kafka": "confluent-kafka",
}

# --- where a frame comes from --------------------------------------------------------------


def _roots() -> list[tuple[str, bool]]:
    """Folders of the interpreter, longest first, each with whether it holds installed packages."""
    found: dict[str, bool] = {}
    paths = sysconfig.get_paths()
    for entry in [*sys.path, paths["stdlib"], paths["platstdlib"], paths["purelib"], paths["platlib"]]:
        if entry and os.path.isabs(entry):
            packages = os.path.basename(entry.rstrip("/")) in ("site-packages", "dist-packages")
            found[entry.rstrip("/")] = packages
    for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}:
        found.setdefault(prefix.rstrip("/"), False)
    for entry, packages in list(found.items()):
        found.setdefault(os.path.realpath(entry), packages)
    # "/" itself is never a root: a learner's file in /tmp is theirs.
    return sorted(((e, p) for e, p in found.items() if len(e) > 1), key=lambda item: -len(item[0]))


ROOTS = _roots()


def frame_owner(filename: str) -> tuple[str, str] | None:
    """(the label shown when folded, the top-level module) for a library's frame; None for the learner's."""
    if filename.startswith("<frozen "):
        module = filename[len("<frozen ") : -1].split(".", maxsplit=1)[0]
        return STDLIB, module
    for root, packages in ROOTS:
        if filename.startswith(root + "/"):
            rest = filename[len(root) + 1 :]
            module = rest.split("/")[0].removesuffix(".py")
            if packages:
                return DISTRIBUTIONS.get(module, module), module
            return STDLIB, module
    return None


def scrub(text: str) -> str:
    """``text`` with the interpreter's folders cut off: "…/site-packages/kafka/conn.py" becomes "kafka/conn.py"."""
    for root, _packages in ROOTS:
        # A Debian interpreter's prefix is /usr: cutting that out of any path in a message would garble it.
        if root in text and root not in ("/usr", "/usr/local"):
            text = text.replace(root + "/", "").replace(root, "…")
    return text


# --- the traceback ---------------------------------------------------------------------------


def _folded(owners: list[str]) -> str:
    labels: list[str] = []
    for owner in owners:
        if owner not in labels:
            labels.append(owner)
    count = len(owners)
    return f"  … {count} frame{'' if count == 1 else 's'} inside {', '.join(labels)}\n"


def _frames(stack: traceback.StackSummary) -> Iterator[str]:
    """The learner's frames as Python prints them; each run of library frames as one line."""
    hidden: list[str] = []
    last: tuple[str, int | None, str] | None = None
    repeated = 0
    for frame in stack:
        owner = frame_owner(frame.filename)
        if owner is not None:
            hidden.append(owner[0])
            continue
        if hidden:
            yield _folded(hidden)
            hidden = []
            last, repeated = None, 0
        here = (frame.filename, frame.lineno, frame.name)
        if here == last:
            repeated += 1
            if repeated >= 3:
                continue  # a recursion: said once below, as Python does
        else:
            if repeated >= 3:
                yield f"  [Previous line repeated {repeated - 2} more times]\n"
            last, repeated = here, 0
        yield stack.format_frame_summary(frame)
    if repeated >= 3:
        yield f"  [Previous line repeated {repeated - 2} more times]\n"
    if hidden:
        yield _folded(hidden)


def _learners(te: traceback.TracebackException) -> bool:
    return any(frame_owner(frame.filename) is None for frame in te.stack)


def _format(te: traceback.TracebackException, *, seen: set[int]) -> Iterator[str]:
    seen.add(id(te))
    cause, context = te.__cause__, te.__context__
    # An exception the learner's code never saw (raised and handled inside a library) is left out.
    if cause is not None and id(cause) not in seen and _learners(cause):
        yield from _format(cause, seen=seen)
        yield "\nThe above exception was the direct cause of the following exception:\n\n"
    elif context is not None and not te.__suppress_context__ and id(context) not in seen and _learners(context):
        yield from _format(context, seen=seen)
        yield "\nDuring handling of the above exception, another exception occurred:\n\n"
    if te.stack:
        yield "Traceback (most recent call last):\n"
        yield from _frames(te.stack)
    for line in te.format_exception_only():
        yield scrub(line)
    for index, group in enumerate(getattr(te, "exceptions", None) or (), start=1):
        yield f"  +---------------- {index} ----------------\n"
        for line in _format(group, seen=seen):
            yield "  | " + line


def format_exception(exc: BaseException, tb: Any) -> str:
    """The traceback a learner reads from ``tb`` on: frames of their code, library frames folded, no server path."""
    te = traceback.TracebackException(type(exc), exc, tb, compact=True)
    return "".join(_format(te, seen=set()))
