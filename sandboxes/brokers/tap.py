"""What every broker's tap shares: reconnecting with backoff until told to stop, and the "N not shown" event.

Plain standard library only: the agent imports this inside sandbox units.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from sandboxes.events import Direction, Event

from .base import Emit

logger = logging.getLogger(__name__)

#: When this process's broker became ready, in ms (the agent marks it before it starts the tap). What the
#: broker holds from before is the past (data kept from an earlier run); what came after is news, however
#: late the tap's first connection comes (imports and connects take seconds on a busy machine).
_ready_at_ms: int | None = None


def broker_ready_mark() -> None:
    """The agent says its broker is ready now: taps made from here on count what comes after as news."""
    global _ready_at_ms  # one broker per agent process
    _ready_at_ms = int(time.time() * 1000)


#: Set once the tap sees what the broker does from now on (bound, subscribed, or counting from the ready
#: mark). A tap without a past (RabbitMQ's firehose, NATS's subscription) would miss a publish made before
#: it, so the agent holds the first run until then (``tap_watching``; agent/cells.py), at most a few seconds.
_watching = threading.Event()


def tap_watching_mark() -> None:
    """The tap sees the broker's traffic from here on: runs need not wait for it any longer."""
    _watching.set()


def tap_watching() -> bool:
    """Whether runs may begin: the tap watches, or this process started no tap (no ready mark)."""
    return _ready_at_ms is None or _watching.is_set()


def broker_ready_at_ms() -> int:
    """When the broker became ready (or now, for a tap made outside an agent)."""
    return _ready_at_ms if _ready_at_ms is not None else int(time.time() * 1000)


@dataclass(slots=True)
class Backoff:
    """Sleep between reconnect attempts of a tap, cut short when it must stop."""

    stop: threading.Event
    first: float = 0.2
    most: float = 2.0
    _next: float = field(default=0.0, init=False)

    def wait(self) -> bool:
        """Sleep the next step; return True when the tap should stop instead."""
        self._next = min(self.most, self._next * 2 or self.first)
        return self.stop.wait(self._next)

    def reset(self) -> None:
        self._next = 0.0


class ReconnectingTap(ABC):
    """One broker's tap: connect, watch until the connection fails, close, and again, until ``stop`` is set.

    A subclass sets :attr:`broker` and overrides :meth:`connect` (open what it
    watches with; raise when the broker cannot be reached), :meth:`watch` (emit
    events until ``stop`` is set, return or raise when the connection is lost)
    and :meth:`close` (release what :meth:`connect` opened, never raising). Each
    round starts from :meth:`connect`, so state that must not survive a
    reconnect is set there. :meth:`run` returns within about a second of ``stop``.
    """

    broker: ClassVar[str]
    #: Once :meth:`connect` returns, the tap sees what the broker does from then on (it counts from the
    #: ready mark, or subscribed in ``connect``). A tap that binds or subscribes in :meth:`watch` sets this
    #: False and calls :func:`tap_watching_mark` itself once it does.
    watches_on_connect: ClassVar[bool] = True

    def __init__(self, *, host: str, ports: Mapping[str, int], emit: Emit, stop: threading.Event) -> None:
        self.host, self.ports, self.emit, self.stop = host, ports, emit, stop

    @abstractmethod
    def connect(self) -> None:
        """Open the connections the tap watches with; raise when the broker cannot be reached."""

    @abstractmethod
    def watch(self) -> None:
        """Emit what the broker does until ``stop`` is set (then return) or the connection is lost (return or raise)."""

    @abstractmethod
    def close(self) -> None:
        """Release what :meth:`connect` opened; a half-broken connection must not make it raise."""

    def run(self) -> None:
        """Watch the broker, reconnecting with backoff, until ``stop`` is set."""
        backoff = Backoff(self.stop)
        while not self.stop.is_set():
            try:
                self.connect()
            except Exception as exc:
                logger.debug("%s tap: cannot connect: %r", self.broker, exc)
                self.close()
                if backoff.wait():
                    return
                continue
            backoff.reset()
            if self.watches_on_connect:
                tap_watching_mark()
            try:
                self.watch()
            except Exception as exc:
                logger.debug("%s tap: connection lost: %r", self.broker, exc)
                if backoff.wait():
                    return
            finally:
                self.close()


def not_shown(
    *,
    broker: str,
    direction: Direction,
    destination: str,
    count: int,
    partition: int | None = None,
    offset: int | None = None,
    detail: Mapping[str, Any] | None = None,
) -> Event:
    """The one event that stands for ``count`` messages the tap passed over (too many at once to show each)."""
    return Event.build(
        broker=broker,
        direction=direction,
        destination=destination,
        payload=None,
        partition=partition,
        offset=offset,
        detail={**(detail or {}), "not_shown": count},
    )
