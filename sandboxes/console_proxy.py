"""The broker's own web console behind ``/sandboxes/<broker>/ui/``: which request goes upstream, what comes back.

The console listens inside the learner's unit only, so each request travels to the
unit's agent (``agent_client.console``), which makes it on loopback with the
standard library's HTTP client and the unit's own credentials (agent/console.py).
Here the request is cut down to what a console needs, and the answer to what the
browser may see: no upstream cookies, challenges or server headers, redirects kept
under the prefix. The sandbox is always the session user's own, found by the view.
"""

from __future__ import annotations

import http.cookies
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

from sandboxes import agent_client
from sandboxes.brokers.base import BrokerKind

from .models import Sandbox
from .services.provisioning import sandbox_address

#: The path every console of a broker lives under (no trailing slash).
PREFIX = "/sandboxes/{broker}/ui"
#: Request headers a console reads; cookies (the platform's session among them) and credentials never go upstream.
REQUEST_HEADERS = ("accept", "accept-language", "content-type", "if-none-match", "if-modified-since", "range", "x-vhost")
#: Response headers the browser gets; Set-Cookie, WWW-Authenticate (a browser login prompt), Server and the
#: hop-by-hop ones stay behind.
RESPONSE_HEADERS = frozenset(
    {
        "content-type",
        "cache-control",
        "etag",
        "last-modified",
        "expires",
        "content-disposition",
        "content-language",
        "content-range",
        "accept-ranges",
        "vary",
        "retry-after",
        "location",
        "content-security-policy",
    }
)
#: What the agent will relay as a target; the same rule it applies itself.
TARGET = re.compile(r"/(?!/)[\x21-\x7e]*\Z")
#: The largest request body relayed (a definitions file is the largest thing a console uploads).
MAX_REQUEST_BODY = 2 * 2**20


@dataclass(frozen=True, slots=True)
class ConsoleAnswer:
    """What the browser receives: status, the headers kept (Location rewritten), the body, and cookies to set."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    cookies: Mapping[str, str]
    csp: str | None
    #: The console's own session cookie as it set it (name, value), for the console's path only.
    session: tuple[str, str] | None = None


def console_prefix(*, broker: str) -> str:
    return PREFIX.format(broker=broker)


def console_target(*, broker: str, raw_path: bytes, query: str) -> str | None:
    """The upstream path and query of a request for ``raw_path`` (as sent, still percent-encoded), or None.

    None when the raw path is not under this broker's prefix as sent (an encoded prefix, another broker)
    or the rest is not a plain path: such a request is answered 404 and never leaves the platform.
    Percent-escapes stay as they were: a console's API names ``%2F`` (RabbitMQ's default vhost) in paths.
    """
    prefix = console_prefix(broker=broker).encode()
    if not raw_path.startswith(prefix + b"/"):
        return None
    target = raw_path[len(prefix) :].decode("latin-1") + ("?" + query if query else "")
    return target if TARGET.match(target) else None


def console_request_headers(
    headers: Mapping[str, str], *, cookies: Mapping[str, str] | None = None, session_cookie: str | None = None
) -> list[list[str]]:
    """The browser's headers that go upstream: the allow-list only, and of its cookies the console's session alone."""
    wanted = {name.lower(): value for name, value in headers.items()}
    kept = [[name, wanted[name]] for name in REQUEST_HEADERS if name in wanted]
    value = (cookies or {}).get(session_cookie or "")
    if session_cookie and value and re.fullmatch(r"[\w.\-~]{1,200}", value):
        kept.append(["cookie", f"{session_cookie}={value}"])
    return kept


def console_location(value: str, *, broker: str, under_prefix: bool = False) -> str:
    """A redirect of the console, kept under its prefix: a path or an absolute URL of any host becomes prefix + path.

    ``under_prefix``: the console serves under the prefix itself, so a path already under it stays as it is.
    """
    parts = urllib.parse.urlsplit(value)
    if not (parts.scheme or parts.netloc or parts.path.startswith("/")):
        return value  # relative to the page: already under the prefix
    path = "/" + parts.path.lstrip("/")
    prefix = console_prefix(broker=broker)
    if under_prefix and (path == prefix or path.startswith(prefix + "/")):
        prefix = ""
    return prefix + urllib.parse.urlunsplit(("", "", path, parts.query, parts.fragment))


def console_response_headers(
    headers: list[tuple[str, str]], *, broker: str, under_prefix: bool = False
) -> tuple[tuple[str, str], ...]:
    kept = []
    for name, value in headers:
        lower = name.lower()
        if lower not in RESPONSE_HEADERS:
            continue
        kept.append((lower, console_location(value, broker=broker, under_prefix=under_prefix) if lower == "location" else value))
    return tuple(kept)


def console_session(headers: list[tuple[str, str]], *, name: str | None) -> tuple[str, str] | None:
    """The console's own session cookie among its Set-Cookie headers (name, value), or None; every other cookie stays."""
    if not name:
        return None
    for header, value in headers:
        if header.lower() != "set-cookie":
            continue
        jar = http.cookies.SimpleCookie()
        try:
            jar.load(value)
        except http.cookies.CookieError:
            continue
        if name in jar:
            return name, jar[name].value
    return None


async def console_relay(
    *, sandbox: Sandbox, kind: BrokerKind, method: str, target: str, headers: list[list[str]], body: bytes
) -> ConsoleAnswer:
    """Send one request to the console of ``sandbox`` (the caller's own, READY) and return what the browser may see.

    Raises agent_client.AgentUnavailable when the unit or its console does not answer, ValueError when the
    agent refuses the request.
    """
    console = kind.console
    if console is None:
        raise ValueError(f"{kind.name} has no web console")
    if console.path:
        target = console.path + target  # the console serves under the platform's own path for it
    address = await sandbox_address(sandbox=sandbox)
    status, upstream_headers, data = await agent_client.console(address, method=method, target=target, headers=headers, body=body)
    kept = console_response_headers(upstream_headers, broker=sandbox.broker, under_prefix=bool(console.path))
    is_page = status == 200 and any(n == "content-type" and v.startswith("text/html") for n, v in kept)
    own_csp = any(n == "content-security-policy" for n, _ in kept)
    return ConsoleAnswer(
        status=status,
        headers=kept,
        body=data,
        cookies=console.cookies if is_page else {},
        csp=None if own_csp else console.csp,
        session=console_session(upstream_headers, name=console.session_cookie),
    )
