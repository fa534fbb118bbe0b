"""What a learner sees when a cell fails: their own frames, the library's folded, and a hint for common mistakes.

Standard library only, and no imports of the project: cells.py sends this file's
source as the cell process's runner (the project is not importable there), so
tracebacks are shaped where the exception still exists, the same on every backend.
A hint is a code and the connection variables to use, written as a JSON line to a
pipe of its own; the page words it in the learner's language.
"""

from __future__ import annotations

import errno
import json
import os
import re
import sys
import sysconfig
import traceback
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

#: The file name a cell's code is compiled under; the page links its line numbers to the editor.
CELL = "<cell>"
STDLIB = "the standard library"

#: What a hint can say (the page has a sentence for each).
HINT_CODES = ("address", "login", "missing", "not-ready", "variable")
#: A variable name as brokers' connection settings spell them.
VARIABLE = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")
MAX_HINT_BYTES = 4096

#: Names of distributions whose import name differs, for the folded line ("… 3 frames inside kafka-python").
DISTRIBUTIONS = {
    "kafka": "kafka-python",
    "nats": "nats-py",
    "stomp": "stomp.py",
    "_pytest": "pytest",
    "confluent_kafka": "confluent-kafka",
}

#: Where each client library takes the broker's address from: the variables of
#: sandboxes/brokers/*/kind.py ``connection_env`` (a test keeps the two in step).
ADDRESS_VARIABLES = {
    "kafka": ("BOOTSTRAP_SERVERS",),
    "confluent_kafka": ("BOOTSTRAP_SERVERS",),
    "aiokafka": ("BOOTSTRAP_SERVERS",),
    "pika": ("AMQP_URL",),
    "aio_pika": ("AMQP_URL",),
    "requests": ("RABBITMQ_API_URL",),
    "urllib3": ("RABBITMQ_API_URL",),
    "urllib": ("RABBITMQ_API_URL",),
    "http": ("RABBITMQ_API_URL",),
    "nats": ("NATS_URL",),
    "stomp": ("STOMP_HOST", "STOMP_PORT"),
}
#: Where the user name and password come from, where they differ from the address.
LOGIN_VARIABLES = {"stomp": ("STOMP_USER", "STOMP_PASSWORD")}

#: Exceptions by class name (any module): what went wrong.
BY_NAME = {
    # the address: nothing listens there, or the name does not resolve
    "NoBrokersAvailable": "address",
    "NoServersError": "address",
    "AMQPConnectionError": "address",
    "AMQPConnectorSocketConnectError": "address",
    "gaierror": "address",
    "ConnectionRefusedError": "address",
    "NewConnectionError": "address",
    "KafkaConnectionError": "address",
    # the login
    "AuthenticationError": "login",
    "ProbableAuthenticationError": "login",
    "ProbableAccessDeniedError": "login",
    "AuthorizationError": "login",
    # what the code names does not exist
    "UnknownTopicOrPartitionError": "missing",
    "NoRespondersError": "missing",
    "NoStreamResponseError": "missing",
    "NotFoundError": "missing",
    "StreamNotFoundError": "missing",
    # the broker is there but not (yet, or no longer) able to serve
    "NodeNotReadyError": "not-ready",
    "LeaderNotAvailableError": "not-ready",
    "NotLeaderForPartitionError": "not-ready",
    "CoordinatorNotAvailableError": "not-ready",
    "NotCoordinatorError": "not-ready",
    "ServiceUnavailableError": "not-ready",
    "StreamLostError": "not-ready",
    "IncompatibleProtocolError": "not-ready",
    "ConnectionResetError": "not-ready",
    "BrokenPipeError": "not-ready",
}
#: Words in an exception's message that say the same where its class does not.
BY_MESSAGE = (
    ("ACCESS_REFUSED", "login"),
    ("authorization violation", "login"),
    ("authentication failed", "login"),
    ("NOT_FOUND", "missing"),
    ("stream not found", "missing"),
    ("connection refused", "address"),
    ("connect call failed", "address"),
    ("name or service not known", "address"),
    ("temporary failure in name resolution", "address"),
    ("_ALL_BROKERS_DOWN", "address"),
    # kafka-python 3 gives up on an address with KafkaTimeoutError (2.x raised NoBrokersAvailable)
    ("unable to bootstrap from", "address"),
    ("_TRANSPORT", "address"),
)
ADDRESS_ERRNOS = {errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EADDRNOTAVAIL}


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


# --- the hint --------------------------------------------------------------------------------


def _related(exc: BaseException, depth: int = 0) -> Iterator[BaseException]:
    """``exc`` and what it wraps (cause, context, exceptions carried in its arguments), the outermost first."""
    if depth > 8:
        return
    yield exc
    inner = [exc.__cause__, exc.__context__, getattr(exc, "reason", None), *getattr(exc, "args", ())]
    for other in inner:
        if isinstance(other, BaseException) and other is not exc:
            yield from _related(other, depth + 1)


def _library(exc: BaseException) -> str | None:
    """The client library the learner called when ``exc`` happened (its top-level module)."""
    for error in _related(exc):
        module = type(error).__module__.split(".")[0]
        if module in ADDRESS_VARIABLES:
            return module
    for error in _related(exc):
        for frame in traceback.extract_tb(error.__traceback__):
            owner = frame_owner(frame.filename)
            if owner is not None and owner[1] in ADDRESS_VARIABLES:
                return owner[1]
    return None


def _missing_variable(exc: BaseException, environ: Mapping[str, str]) -> str | None:
    """The name in ``os.environ["NAME"]`` when the sandbox has no such variable."""
    if not isinstance(exc, KeyError) or len(exc.args) != 1 or not isinstance(exc.args[0], str):
        return None
    name = exc.args[0]
    frames = traceback.extract_tb(exc.__traceback__)
    from_environ = bool(frames) and frames[-1].name == "__getitem__" and frame_owner(frames[-1].filename) == (STDLIB, "os")
    if from_environ and VARIABLE.match(name) and name not in environ:
        return name
    return None


def _kind(exc: BaseException) -> str | None:
    """What went wrong, judged from one exception alone."""
    name = type(exc).__name__
    module = type(exc).__module__.split(".")[0]
    if name == "ConnectFailedException" and module == "stomp":
        # stomp.py raises the same class when nothing listens (from the transport) and when the login is refused.
        frames = traceback.extract_tb(exc.__traceback__)
        return "address" if frames and frames[-1].name == "attempt_connection" else "login"
    code = getattr(exc, "reply_code", None)
    if code in (403,):
        return "login"
    if code in (404,):
        return "missing"
    if code in (320,):
        return "not-ready"
    status = getattr(exc, "code", None)
    if name == "HTTPError" and status == 401:
        return "login"
    if name in BY_NAME:
        return BY_NAME[name]
    if isinstance(exc, OSError) and exc.errno in ADDRESS_ERRNOS:
        return "address"
    text = str(exc).lower()
    for words, kind in BY_MESSAGE:
        if words.lower() in text:
            return kind
    return None


def hint_for(exc: BaseException, *, variables: Sequence[str], environ: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """A hint for a common mistake behind ``exc``, or None.

    ``variables`` are the connection variables the cell received; a hint names
    only those: the ones the library in use reads, else all of them.
    """
    environ = os.environ if environ is None else environ
    available = [v for v in variables if VARIABLE.match(v)]
    if not available:
        return None
    addresses = [v for v in available if "USER" not in v and "PASSWORD" not in v]
    missing = _missing_variable(exc, environ)
    if missing is not None:
        return {"code": "variable", "variables": addresses or available, "name": missing}
    kinds = [k for k in map(_kind, _related(exc)) if k is not None]
    if not kinds:
        return None
    # A refused login or a missing name says more than the connection trouble it causes; else the outermost wins.
    kind = next((k for k in ("login", "missing") if k in kinds), kinds[0])
    library = _library(exc)
    wanted: Sequence[str] = ADDRESS_VARIABLES.get(library or "", ())
    if kind == "login":
        wanted = LOGIN_VARIABLES.get(library or "", wanted)
    named = [v for v in wanted if v in available]
    if not named:
        named = addresses or available
    return {"code": kind, "variables": named}


def hint_parse(line: bytes | str) -> dict[str, Any] | None:
    """A hint read back from the cell's pipe, checked (the learner's code could write there too); None if it is not one."""
    if len(line) > MAX_HINT_BYTES:
        return None
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("code") not in HINT_CODES:
        return None
    variables = data.get("variables")
    if not isinstance(variables, list) or not 0 < len(variables) <= 8:
        return None
    if not all(isinstance(v, str) and VARIABLE.match(v) for v in variables):
        return None
    hint: dict[str, Any] = {"code": data["code"], "variables": variables}
    name = data.get("name")
    if isinstance(name, str) and VARIABLE.match(name):
        hint["name"] = name
    return hint


# --- the cell process ------------------------------------------------------------------------


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


def main() -> None:
    """Run the code on stdin as ``__main__`` of the file ``<cell>``; argv: the hint pipe's fd, then the connection variables."""
    import linecache

    hint_fd = int(sys.argv[1]) if len(sys.argv) > 1 else -1
    variables = sys.argv[2:]
    sys.argv[:] = ["-c"]
    if hint_fd >= 0:
        os.set_inheritable(hint_fd, False)  # the learner's subprocesses get no way to the agent
    reporter = Reporter(hint_fd=hint_fd, variables=variables)
    reporter.install()
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
