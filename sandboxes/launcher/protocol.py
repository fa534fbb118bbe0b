"""What the platform and the unit launcher say to each other: one JSON line each way per connection.

Request: ``{"op": "start", "args": {...}}``. Answer: ``{"result": ...}`` or
``{"error": {"type": "...", "message": "..."}}``; the client raises the error again
as the exception the backend would have raised in-process, so callers see no difference.
"""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path
from typing import Any

#: A backend's privileged operations, each a method of the process and docker backends with these keyword arguments.
OPERATIONS: dict[str, tuple[str, ...]] = {
    "start": ("unit",),
    "stop": ("name",),
    "stop_keeping": ("name", "key"),
    "discard_kept": ("key",),
    "kept_exists": ("key",),
    "kept_keys": (),
    "poll": ("name",),
    "poll_many": ("names",),
    "list_units": (),
    "processes": ("name",),
}
#: A kept-data key (sandboxes.services.kept.kept_key: <instance>-u<user id>-<broker>): a file name, no path.
KEY = re.compile(r"[a-z0-9][a-z0-9_-]{0,127}")
MAX_LINE = 1 << 20
#: A start waits for the agent (AGENT_START_S) after making the unit's disk; a stop gives the broker 15 s and
#: its processes 15 more. Beyond this the launcher is stuck and the caller is told so.
CALL_TIMEOUT_S = 120


class LauncherUnreachable(RuntimeError):
    """The launcher's socket is there but nothing answers on it (or it answered nothing)."""


class LauncherRefused(RuntimeError):
    """The launcher refused the request, or failed it in a way the backend has no exception for."""


def _rebuilt(error: dict[str, str]) -> Exception:
    from sandboxes.backends import disks, docker, process

    known: dict[str, type[Exception]] = {
        "EngineUnavailable": docker.EngineUnavailable,
        "IsolationUnavailable": process.IsolationUnavailable,
        "AgentExited": process.AgentExited,
        "DiskUnavailable": disks.DiskUnavailable,
    }
    return known.get(error.get("type", ""), LauncherRefused)(error.get("message", "the unit launcher failed"))


def call(path: Path, op: str, **args: Any) -> Any:
    """Ask the launcher at ``path`` to perform ``op``; returns its result or raises what it raised."""
    request = json.dumps({"op": op, "args": args}).encode() + b"\n"
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(CALL_TIMEOUT_S)
            conn.connect(str(path))
            conn.sendall(request)
            answer = conn.makefile("rb").readline(MAX_LINE)
    except OSError as exc:
        raise LauncherUnreachable(f"the unit launcher at {path} does not answer ({exc}): is it running?") from exc
    if not answer:
        raise LauncherUnreachable(f"the unit launcher at {path} closed the connection without an answer ({op})")
    reply = json.loads(answer)
    if "error" in reply:
        raise _rebuilt(reply["error"])
    return reply["result"]
