"""The contract of a sandbox backend: start, stop and list isolated units.

A unit is one broker plus its agent, isolated from every other unit and from
the platform. Subclasses override every method below; a subclass missing one is
refused when it is defined (the way JupyterHub's Spawner is checked).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.core.checks import CheckMessage


@dataclass(frozen=True)
class AgentAddress:
    """Where the platform reaches a unit's agent, and the credential it shows there.

    Either a Unix socket (``path``; its file permissions are the credential, so ``token``
    may be empty) or ``host:port`` over TCP, where every connection must carry the unit's
    own ``token``: an agent on the network is reachable by more than its platform.
    """

    path: Path | None = None
    host: str = ""
    port: int = 0
    token: str = field(default="", repr=False)
    #: Where exercise checks go instead, when the unit runs them apart from its agent (a Kubernetes pod's checker
    #: container: agent/checker.py); None: the agent runs them.
    checker: AgentAddress | None = None

    def __str__(self) -> str:
        # What logs and errors show: never the token.
        return str(self.path) if self.path is not None else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class UnitSpec:
    """What to start: the unit's fixed name (derived from the sandbox id), its broker, its owner.

    ``restore`` is the key of a learner's kept data (:meth:`SandboxBackend.stop_keeping`) for the
    unit to start on instead of an empty broker; empty for a fresh one.
    """

    name: str
    broker: str
    owner: str = ""
    restore: str = ""


class SandboxBackend(ABC):
    """Starts and stops sandbox units; every method is idempotent.

    - :meth:`start` returns once the agent runs (not once the broker is ready);
      starting a unit that already runs reuses it.
    - :meth:`stop` removes everything of the unit; stopping one that is gone
      (or half gone) is success.
    - :meth:`poll` returns None while the unit's agent runs, else an int
      (its exit status, or -1 when it is not there at all).
    - :meth:`list_units` names every unit this platform instance owns, running
      or half-removed, for reconciliation after a crash.
    - :meth:`agent_address` is where the platform reaches the unit's agent; a backend whose
      agents listen on Unix sockets overrides :meth:`socket_path` instead.
    - :meth:`processes` lists the pids that belong to the unit (empty once stopped).

    A backend that can keep a broker's data between a learner's sandboxes overrides
    :meth:`stop_keeping`, :meth:`discard_kept` and :meth:`kept_keys`, and starts a unit
    whose :attr:`UnitSpec.restore` names kept data on that data. The defaults keep nothing.
    A backend with settings of its own overrides :meth:`check_settings`.
    """

    _required = ("start", "stop", "poll", "list_units", "processes")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        lacking = [m for m in cls._required if getattr(getattr(cls, m), "__isabstractmethod__", False)]
        if cls.agent_address is SandboxBackend.agent_address and cls.socket_path is SandboxBackend.socket_path:
            lacking.append("agent_address (or socket_path)")
        if lacking:
            raise TypeError(f"{cls.__qualname__} must override {', '.join(lacking)}")

    @classmethod
    def check_settings(cls) -> list[CheckMessage]:
        """Problems with this backend's own settings, as system-check messages; an empty list when there are none.

        Run by Django's system checks for the configured backend only (sandboxes/checks.py),
        so a bad value is named by ``manage.py check`` rather than by the first request.
        """
        return []

    @abstractmethod
    def start(self, unit: UnitSpec) -> None:
        """Start the unit's agent (which starts the broker); returns None."""

    @abstractmethod
    def stop(self, name: str) -> None:
        """Stop and remove the unit and its data; returns None, also when it was already gone."""

    @abstractmethod
    def poll(self, name: str) -> int | None:
        """None while running; an int exit status otherwise (-1: no such unit)."""

    def poll_many(self, names: Iterable[str]) -> dict[str, int | None]:
        """:meth:`poll` of each unit; a backend that sees all its units in one request does that instead."""
        return {name: self.poll(name) for name in names}

    @abstractmethod
    def list_units(self) -> list[str]:
        """Names of all units of this platform instance that exist in any part."""

    def agent_address(self, name: str) -> AgentAddress:
        """The unit's agent: by default the Unix socket of :meth:`socket_path`, with no token."""
        return AgentAddress(path=self.socket_path(name))

    def socket_path(self, name: str) -> Path:
        """The Unix socket of the unit's agent, for backends whose agents listen on one."""
        raise NotImplementedError(f"{type(self).__qualname__} reaches its agents over the network: use agent_address()")

    @abstractmethod
    def processes(self, name: str) -> list[int]:
        """Pids of every process of the unit."""

    def stop_keeping(self, name: str, *, key: str) -> int | None:
        """Stop and remove the unit like :meth:`stop`, but keep its broker's data under ``key``
        (replacing what was kept there); returns the bytes it takes, or None when nothing was kept."""
        self.stop(name)
        return None

    def discard_kept(self, key: str) -> None:
        """Delete the data kept under ``key``; gone already is success."""
        return None

    def kept_exists(self, key: str) -> bool:
        """Whether data is kept under ``key`` (not while a unit runs on it)."""
        return False

    def kept_keys(self) -> list[str]:
        """Keys of all data this platform instance keeps, for reconciliation with their records."""
        return []
