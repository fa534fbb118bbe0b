"""The unit launcher's server: a root process that performs a backend's privileged operations (process or docker).

Each connection is served in a forked child (``socketserver.ForkingMixIn``): a class's burst of
starts runs side by side, a request that crashes takes only its child, and the backend's
subprocess calls never meet another thread. Only root and the platform's group reach the socket
(0660, root:<group>); every argument is checked against this instance's names before use.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import socketserver
import struct
from pathlib import Path
from typing import Any

from sandboxes.backends.base import UnitSpec
from sandboxes.backends.unit_folders import UnitFolders
from sandboxes.brokers import broker_names

from .protocol import KEY, MAX_LINE, OPERATIONS

log = logging.getLogger("sandboxes.launcher")
MAX_NAMES = 10_000


class Refused(ValueError):
    """A request the launcher will not perform: an unknown operation or an argument not of this instance."""


def _name(backend: UnitFolders, value: Any) -> str:
    if not isinstance(value, str) or not backend.owns(value):
        raise Refused(f"{value!r} is not a unit of this platform instance ({backend.instance})")
    return value


def _key(backend: UnitFolders, value: Any) -> str:
    if not isinstance(value, str) or not KEY.fullmatch(value) or not value.startswith(f"{backend.instance}-"):
        raise Refused(f"{value!r} is not a kept-data key of this platform instance ({backend.instance})")
    return value


def _unit(backend: UnitFolders, value: Any) -> UnitSpec:
    if not isinstance(value, dict) or set(value) != {"name", "broker", "owner", "restore"}:
        raise Refused("a unit is {name, broker, owner, restore}")
    if value["broker"] not in broker_names():
        raise Refused(f"unknown broker {value['broker']!r}")
    owner = value["owner"]  # a label only (the process backend keeps it nowhere)
    if not isinstance(owner, str) or len(owner) > 64 or not owner.isprintable():
        raise Refused("owner: a short line of text")
    restore = _key(backend, value["restore"]) if value["restore"] else ""
    return UnitSpec(name=_name(backend, value["name"]), broker=value["broker"], owner=owner, restore=restore)


def validated(backend: UnitFolders, request: Any) -> tuple[str, dict[str, Any]]:
    """The operation and its checked arguments, or :class:`Refused` saying what is wrong."""
    if not isinstance(request, dict) or request.get("op") not in OPERATIONS or not isinstance(request.get("args"), dict):
        raise Refused(f"not a launcher request; operations: {', '.join(OPERATIONS)}")
    op, args = request["op"], request["args"]
    if set(args) != set(OPERATIONS[op]):
        raise Refused(f"{op} takes {', '.join(OPERATIONS[op]) or 'no arguments'}")
    checked: dict[str, Any] = {}
    for arg, value in args.items():
        if arg == "name":
            checked[arg] = _name(backend, value)
        elif arg == "key":
            checked[arg] = _key(backend, value)
        elif arg == "unit":
            checked[arg] = _unit(backend, value)
        elif arg == "names":
            if not isinstance(value, list) or len(value) > MAX_NAMES:
                raise Refused(f"names: a list of at most {MAX_NAMES} units")
            checked[arg] = [_name(backend, v) for v in value]
    return op, checked


class _Request(socketserver.StreamRequestHandler):
    server: LauncherServer

    def handle(self) -> None:
        backend = self.server.backend
        pid, uid, _gid = struct.unpack("3i", self.request.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
        reply: dict[str, Any]
        try:
            op, args = validated(backend, json.loads(self.rfile.readline(MAX_LINE) or b"null"))
            reply = {"result": getattr(backend, op)(**args)}
        except (Refused, ValueError) as exc:
            log.warning("request refused", extra={"peer_uid": uid, "peer_pid": pid, "reason": str(exc)})
            reply = {"error": {"type": "LauncherRefused", "message": str(exc)}}
        except Exception as exc:  # the backend's own failure: the caller raises it again (protocol._rebuilt)
            log.exception("request failed", extra={"peer_uid": uid, "peer_pid": pid})
            reply = {"error": {"type": type(exc).__name__, "message": str(exc) or type(exc).__name__}}
        with contextlib.suppress(OSError):
            self.wfile.write(json.dumps(reply).encode() + b"\n")


class LauncherServer(socketserver.ForkingMixIn, socketserver.UnixStreamServer):
    #: Children at once; past this the server waits for one to end before it accepts more (a burst queues).
    max_children = 64

    def __init__(self, path: Path, *, gid: int, backend: UnitFolders) -> None:
        self.backend = backend
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            with socket.socket(socket.AF_UNIX) as probe:
                probe.connect(str(path))
                raise RuntimeError(f"another unit launcher answers at {path}")
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # a socket left by a launcher that died
        # Made 0660 at once (no moment where the socket is anyone's), then given to the platform's group.
        mask = os.umask(0o117)
        try:
            super().__init__(str(path), _Request)
        finally:
            os.umask(mask)
        os.chown(path, 0, gid)

    def server_close(self) -> None:
        super().server_close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
