"""A hint for a common mistake behind a cell's exception: a code and the connection variables to use.

Runs inside the cell's process (see cell_program.py): standard library only, and
of the project only the other cell_* modules, imported relatively. The cell writes
a hint as a JSON line to a pipe of its own; the agent reads it back (hint_parse)
and the page words it in the learner's language.
"""

from __future__ import annotations

import errno
import json
import os
import re
import traceback
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from .cell_tracebacks import STDLIB, frame_owner

#: What a hint can say (the page has a sentence for each).
HINT_CODES = ("address", "login", "missing", "not-ready", "variable")
#: A variable name as brokers' connection settings spell them.
VARIABLE = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")
MAX_HINT_BYTES = 4096

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
