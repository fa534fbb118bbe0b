"""The contract every broker kind keeps, and the values that cross it.

Plain standard library only: the agent imports this inside sandbox units.
"""

from __future__ import annotations

import inspect
import os
import signal
import subprocess
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from sandboxes.events import Event

#: What a tap hands each event to; it must be quick and must not raise. A tap may also hand it
#: ``None``: nothing to show, but the topology changed (a consumer came or went, a binding was made),
#: so the agent takes a fresh snapshot now instead of waiting for its timer.
Emit = Callable[[Event | None], None]

#: The variables a broker's own process starts from: nothing of the agent's
#: environment (secrets, the learner's settings) leaks into the broker.
BASE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
}


class BrokerUnavailable(Exception):
    """The broker could not be asked (not started yet, restarting, or gone)."""


class NodeActionRefused(Exception):
    """A node of the unit's broker cannot be stopped or started: the kind runs one node, or the action would leave none."""


@dataclass(frozen=True, slots=True)
class BrokerLimits:
    """What one learner's broker may use; small, because a sandbox only teaches.

    ``memory_mb`` bounds the whole broker process (the backend enforces it with a
    cgroup or container limit); a broker kind derives its own knobs from it
    (JVM heap, Erlang high watermark, JetStream memory store) so that the broker
    pushes back on producers before the kernel kills it.
    """

    memory_mb: int = 512  # the whole process, as the backend will enforce it
    heap_mb: int = 256  # JVM brokers (Kafka, ActiveMQ)
    disk_mb: int = 512  # stored messages and logs
    max_connections: int = 200
    max_message_bytes: int = 1024 * 1024

    @property
    def disk_free_mb(self) -> int:
        """Free space a broker keeps on its capped disk, in MB: below it, it refuses new messages.

        RabbitMQ's ``disk_free_limit``; the agent tells the learner why their producer is
        blocked once the unit's disk has less (Kafka has no such watermark, and stops at the wall).
        """
        return max(24, self.disk_mb // 5)

    @property
    def store_mb(self) -> int:
        """What a broker's own store limits may add up to: the cap less the free space kept (and ext4's share)."""
        return self.disk_mb - self.disk_free_mb

    def __post_init__(self) -> None:
        if self.memory_mb < 128 or self.heap_mb < 64 or self.heap_mb > self.memory_mb:
            raise ValueError("BrokerLimits: need memory_mb >= 128 and 64 <= heap_mb <= memory_mb")
        if self.disk_mb < 64:
            raise ValueError("BrokerLimits: disk_mb must be at least 64")
        if self.max_connections < 8 or self.max_message_bytes < 1024:
            raise ValueError("BrokerLimits: max_connections >= 8 and max_message_bytes >= 1024")


@dataclass(frozen=True, slots=True)
class Site:
    """Where one unit's broker lives: its folder, its ports, its limits and its addresses.

    ``ports`` maps the names in :attr:`BrokerKind.default_ports` to numbers (see
    :meth:`BrokerKind.ports`); ``host`` is the name clients use to reach the broker
    (``localhost`` in a unit) and ``bind`` the address it listens on.
    """

    data_dir: Path
    ports: Mapping[str, int]
    limits: BrokerLimits = field(default_factory=BrokerLimits)
    host: str = "localhost"
    bind: str = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class LaunchSpec:
    """How to run a broker in the foreground, so that its supervisor sees it exit.

    ``env`` is the whole environment of the process (built on :data:`BASE_ENV`),
    not additions to the caller's. ``user`` is the account to switch to when the
    supervisor runs as root, by name or as a bare uid whose group has the same
    number (``None``: stay who you are). ``stop_timeout`` is how
    long a clean shutdown after SIGTERM may take before SIGKILL.
    """

    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: str
    user: str | int | None = None
    stop_timeout: float = 10.0

    def start(self, *, stdout: Any = subprocess.DEVNULL, stderr: Any = subprocess.STDOUT) -> subprocess.Popen[bytes]:
        """Start the process as the leader of a new session.

        Brokers fork helpers (Erlang's epmd, port programs) that must die with
        them: :func:`stop_process_group` signals the whole group.
        """
        user = self.user if self.user and os.geteuid() == 0 else None
        return subprocess.Popen(
            list(self.argv),
            env=dict(self.env),
            cwd=self.cwd,
            user=user,
            group=user,
            extra_groups=[] if user else None,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )


@dataclass(frozen=True, slots=True)
class Console:
    """The broker's own web console, as the platform proxies it at ``/sandboxes/<broker>/ui/``.

    ``port`` names the HTTP port in :attr:`BrokerKind.default_ports`; the agent is the only
    client of it, on loopback inside the unit. ``login`` (user, password) is sent upstream as
    HTTP Basic on every request, replacing whatever the browser sent, so the console opens
    logged in and the browser never holds the unit's credentials. ``cookies`` are set for the
    browser on the console's path when its page is served: a console whose page script looks
    for a login of its own finds one there (a placeholder, never the credentials). ``csp`` is
    the policy sent when the console sends none of its own. ``path``: the console serves under
    the platform's own path for it (its links are absolute), so requests go upstream with that
    path in front and its redirects keep it. ``session_cookie``: the one cookie of the console's
    own that crosses, both ways, on the console's path (its forms need a session); every other
    cookie stays on its side.
    """

    port: str
    login: tuple[str, str] | None = None
    cookies: Mapping[str, str] = field(default_factory=dict)
    csp: str | None = None
    path: str = ""
    session_cookie: str | None = None


def stop_process_group(proc: subprocess.Popen[bytes], *, timeout: float = 10.0) -> int:
    """Stop a process started by :meth:`LaunchSpec.start` and everything in its group.

    SIGTERM first (brokers flush and close their logs), SIGKILL after ``timeout``
    seconds; then the group is swept again, since a helper may outlive its parent.
    Returns the exit status; calling it on an ended process is harmless.
    """
    pgid = proc.pid  # start_new_session makes the leader's pid the group id
    _signal_group(pgid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _signal_group(pgid, signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 2.0
    while _group_alive(pgid) and time.monotonic() < deadline:
        _signal_group(pgid, signal.SIGKILL)
        time.sleep(0.05)
    return proc.returncode


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def missing_client(module: str, package: str) -> list[str]:
    """[] when the Python client ``module`` imports, else the message naming its PyPI ``package``."""
    import importlib.util

    return [] if importlib.util.find_spec(module) else [f"Python package {package} missing: pip install {package}"]


class BrokerKind(ABC):
    """One kind of broker: how to set it up, run it, know it is ready, and watch it.

    A subclass sets :attr:`name`, :attr:`title`, :attr:`default_ports` and
    overrides every abstract method; a class missing one is refused when it is
    defined, not when a learner first asks for it. Instances hold no per-unit
    state that matters (only caches of clients), so one instance serves every
    unit of its kind.

    Ports are a mapping from the names in :attr:`default_ports` to numbers.
    Inside a unit (network namespace or container) the defaults are used, which
    is what the course documents; a backend without isolation passes others.
    :meth:`prepare` and :meth:`launch` take the unit's :class:`Site`; the
    methods that talk to a running broker take its ``host`` and ``ports``.

    The agent calls, in order: :meth:`missing` (refuse early), :meth:`prepare`
    ("preparing"), :meth:`launch` and starts the spec ("starting broker"),
    :meth:`probe_ready` about ten times a second ("waiting for broker"), then
    :meth:`connection_env` for cells and :meth:`broker_version` for the
    status, :meth:`tap` in a thread, and :meth:`snapshot` about once a second
    ("ready").
    """

    name: ClassVar[str]
    title: ClassVar[str]
    default_ports: ClassVar[dict[str, int]]
    #: The broker's own web console, when the unit serves one (None: the console page explains instead).
    console: ClassVar[Console | None] = None
    #: Why there is no console, as the learner reads it (a Russian msgid, translated by the page).
    console_note: ClassVar[str] = ""
    #: The client libraries the unit's cell template imports once, so each run forks with them loaded
    #: (agent/cell_template.py): what the course's cells for this broker import.
    cell_preload: ClassVar[tuple[str, ...]] = ()

    _required = (
        "missing",
        "prepare",
        "launch",
        "probe_ready",
        "connection_env",
        "broker_version",
        "tap",
        "snapshot",
    )

    def __init_subclass__(cls, *, abstract: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if abstract:
            return
        lacking = [m for m in cls._required if getattr(getattr(cls, m), "__isabstractmethod__", False)]
        lacking += [a for a in ("name", "title", "default_ports") if not hasattr(cls, a)]
        if lacking:
            raise TypeError(f"{cls.__module__}.{cls.__qualname__} must define {', '.join(lacking)}")
        for m in cls._required:
            if not all(p.kind is p.KEYWORD_ONLY for p in list(inspect.signature(getattr(cls, m)).parameters.values())[1:]):
                raise TypeError(f"{cls.__qualname__}.{m} must take keyword-only arguments")

    def ports(self, overrides: Mapping[str, int] | None = None) -> dict[str, int]:
        """The default ports with ``overrides`` applied; unknown names are an error."""
        unknown = set(overrides or {}) - set(self.default_ports)
        if unknown:
            raise ValueError(f"{self.name}: unknown port names {sorted(unknown)}; known: {sorted(self.default_ports)}")
        return {**self.default_ports, **(overrides or {})}

    @abstractmethod
    def missing(self) -> list[str]:
        """Return what must be installed before this broker can run.

        One actionable message per missing piece ("install the Debian package
        rabbitmq-server"); an empty list when everything is in place.
        """

    @abstractmethod
    def prepare(self, *, site: Site) -> None:
        """Write configuration under ``site.data_dir`` and initialise storage; return nothing.

        Idempotent: running it again on a prepared folder rewrites the
        configuration and keeps the stored messages. Fast (well under a second
        except where a broker must format storage).
        """

    @abstractmethod
    def launch(self, *, site: Site) -> LaunchSpec:
        """Return how to run the prepared broker as one foreground process.

        The process never daemonises, logs to its stdout/stderr or under
        ``site.data_dir``, and stops cleanly on SIGTERM.
        """

    @abstractmethod
    def probe_ready(self, *, host: str, ports: Mapping[str, int]) -> bool:
        """Return True when clients can use the broker, False otherwise; one probe, under a second, never raises."""

    @abstractmethod
    def connection_env(self, *, host: str, ports: Mapping[str, int]) -> dict[str, str]:
        """Return exactly the variables a cell receives (docs/course-format.md)."""

    @abstractmethod
    def broker_version(self, *, host: str, ports: Mapping[str, int]) -> str | None:
        """Return the version the running broker states about itself, as it states it; None when it cannot be asked.

        Read from the broker (a protocol greeting, its API), never from what
        was installed: it is what the learner's page shows as the sandbox's
        version, and what tests compare with :mod:`sandboxes.brokers.versions`.
        One short exchange, under a second; never raises.
        """

    @abstractmethod
    def tap(self, *, host: str, ports: Mapping[str, int], emit: Emit, stop: threading.Event) -> None:
        """Watch the broker and call ``emit`` for every message produced and consumed; return when ``stop`` is set.

        Runs in its own thread. Never consumes, acknowledges or joins anything a
        learner uses, and never reports its own traffic. Reconnects on its own
        while the broker restarts; returns within about a second of ``stop``
        (a :class:`sandboxes.brokers.tap.ReconnectingTap` does both).
        Every event already makes the agent refresh its snapshot soon; a tap that
        hears of other changes (RabbitMQ's event exchange) says so with ``emit(None)``.
        """

    def node_action(self, *, host: str, ports: Mapping[str, int], node: int, action: str) -> dict[str, Any]:
        """Stop or start (``action``) node ``node`` of a kind that runs several in one unit; return its nodes' states.

        Not part of the required contract: a kind with one node refuses with
        :class:`NodeActionRefused`, as does a cluster asked to stop its last running node.
        Raises :class:`BrokerUnavailable` when the unit's broker cannot be asked.
        """
        raise NodeActionRefused(f"{self.title} runs one node: there is none to stop or start alone")

    @abstractmethod
    def snapshot(self, *, host: str, ports: Mapping[str, int]) -> dict[str, Any]:
        """Return the broker's topology as JSON-ready data for the side panel.

        Called about once a second and soon after the tap reports activity (at
        most a few times a second), so it must be cheap (well under a second) and
        current: what it returns is what the learner reads as the broker's state.
        Raises :class:`BrokerUnavailable` when the broker cannot be asked.
        """
