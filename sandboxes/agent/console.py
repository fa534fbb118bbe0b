"""The agent's side of the broker's web console: one HTTP request to the broker's console port, on loopback.

The console port is reachable only inside the unit (its network namespace, container
or pod), so the platform's proxy (sandboxes/console_proxy.py) hands each request to the
agent, which makes it with the standard library's HTTP client and sends the answer back.
The agent chooses the host and port (loopback, its kind's console port) and the
credentials; the request names only a method, a path, a few headers and a body.

  {"op": "console", "method", "target", "headers": [[name, value], ...], "body": base64}
    -> {"type": "response", "status", "headers": [[name, value], ...]}
       then {"type": "body", "data": base64}* and {"type": "end"}
    or {"type": "error", "code", "message"}: code "refused" (no console, a method or target outside the rules)
       or "unavailable" (the console does not answer)
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import re
from collections.abc import Mapping
from typing import Any

from sandboxes.brokers.base import BrokerKind

from . import protocol

#: Methods a console uses; anything else is refused before a connection is made.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
#: A path with its query: starts with one "/", no spaces or control characters (so no second request line).
TARGET = re.compile(r"/(?!/)[\x21-\x7e]*\Z")
#: The most of a console's answer relayed; the consoles' pages and API answers are far smaller.
MAX_BODY = 16 * 2**20
#: Body chunks well under protocol.MAX_LINE once in base64.
CHUNK = 1 * 2**20
TIMEOUT_S = 30.0
#: Console requests in flight at once: they share the agent's executor with the snapshots and the tap's
#: helpers, which a flood of slow console requests must not starve.
IN_FLIGHT = 4
_slots: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}


class ConsoleRefused(ValueError):
    """A request the agent will not make (no console, a method or target outside the rules)."""


def console_fetch(
    *, kind: BrokerKind, ports: Mapping[str, int], method: str, target: str, headers: list[list[str]], body: bytes
) -> tuple[int, list[tuple[str, str]], bytes]:
    """Make the request on loopback; returns (status, headers, body). Blocking: run it in an executor.

    Raises ConsoleRefused for a request outside the rules, OSError/HTTPException when the console does not answer.
    """
    console = kind.console
    if console is None:
        raise ConsoleRefused(f"{kind.name} has no web console in this unit")
    if method not in METHODS:
        raise ConsoleRefused(f"method {method!r} not allowed")
    if not TARGET.match(target):
        raise ConsoleRefused("the target must be a path on the console")
    sent = {str(name).lower(): str(value) for name, value in headers}
    sent.pop("authorization", None)
    if console.login is not None:
        user, password = console.login
        sent["authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    port = ports[console.port]
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT_S)
    try:
        # http.client refuses header names and values with line breaks itself (ValueError).
        connection.request(method, target, body=body or None, headers={"host": f"localhost:{port}", **sent})
        response = connection.getresponse()
        data = response.read(MAX_BODY + 1)
        if len(data) > MAX_BODY:
            raise ConsoleRefused("the console's answer is too large to relay")
        return response.status, response.getheaders(), data
    finally:
        connection.close()


async def serve(request: dict[str, Any], writer: asyncio.StreamWriter, *, kind: BrokerKind, ports: Mapping[str, int]) -> None:
    """Answer one ``console`` request on its connection (see the module's docstring)."""
    loop = asyncio.get_running_loop()
    slots = _slots.setdefault(loop, asyncio.Semaphore(IN_FLIGHT))
    try:
        async with slots:
            status, headers, data = await loop.run_in_executor(
                None,
                lambda: console_fetch(
                    kind=kind,
                    ports=ports,
                    method=str(request.get("method", "")),
                    target=str(request.get("target", "")),
                    headers=list(request.get("headers") or []),
                    body=base64.b64decode(request.get("body") or ""),
                ),
            )
    except (ConsoleRefused, ValueError) as exc:
        await protocol.send(writer, {"type": "error", "code": "refused", "message": str(exc)})
        return
    except (OSError, http.client.HTTPException) as exc:
        await protocol.send(writer, {"type": "error", "code": "unavailable", "message": f"the console does not answer: {exc}"})
        return
    await protocol.send(writer, {"type": "response", "status": status, "headers": [list(h) for h in headers]})
    for start in range(0, len(data), CHUNK):
        await protocol.send(writer, {"type": "body", "data": base64.b64encode(data[start : start + CHUNK]).decode()})
    await protocol.send(writer, {"type": "end"})
