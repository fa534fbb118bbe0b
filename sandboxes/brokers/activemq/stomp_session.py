"""Short STOMP exchanges with ActiveMQ over stomp.py: is it up, which version, and its statistics plugin's counters."""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Mapping
from typing import Any, Self

import stomp  # this module is imported only where a broker runs: the platform side never needs it
import stomp.exception

from sandboxes.brokers.base import BrokerUnavailable

from .advisory import map_xml
from .kind import PASSWORD, USER

TAP_ID = "broker-academy-tap"

# stomp.py warns of every refused connection; the readiness probe expects refusals about ten
# times a second while the broker starts, and says so itself by returning False.
logging.getLogger("stomp.py").setLevel(logging.ERROR)


class StompSession(stomp.ConnectionListener):
    """One stomp.py connection, connected within ``timeout`` seconds, whose MESSAGE frames wait in a queue.

    stomp.py waits for CONNECTED with no deadline of its own, so the session
    waits for it here. Raises :class:`BrokerUnavailable` when the broker does
    not answer in time or refuses the login.
    """

    def __init__(self, host: str, port: int, *, timeout: float) -> None:
        self.timeout = timeout
        self.server = ""  # the CONNECTED frame's server header, "ActiveMQ/<version>"
        self.frames: queue.Queue[Any] = queue.Queue()
        self.stats_subscribed = False
        self._answered = threading.Event()
        self._refused = ""
        self.conn = stomp.Connection(
            [(host, port)],
            reconnect_attempts_max=1,
            auto_decode=False,
            heartbeats=(0, 0),
            timeout=timeout,
            auto_content_length=False,
        )
        self.conn.set_listener("session", self)
        try:
            self.conn.connect(USER, PASSWORD, wait=False)
        except stomp.exception.StompException as exc:
            self.close()
            raise BrokerUnavailable(f"STOMP connection failed: {exc!r}") from exc
        if not self._answered.wait(timeout) or self._refused or not self.conn.is_connected():
            self.close()
            raise BrokerUnavailable(f"STOMP CONNECT not answered: {self._refused or 'no CONNECTED frame'}")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def on_connected(self, frame: Any) -> None:
        self.server = frame.headers.get("server", "")
        self._answered.set()

    def on_error(self, frame: Any) -> None:
        self._refused = frame.headers.get("message", "ERROR")
        self._answered.set()

    def on_disconnected(self) -> None:
        self._answered.set()

    def on_message(self, frame: Any) -> None:
        self.frames.put(frame)

    def close(self) -> None:
        stomp_close(self.conn)


def stomp_close(conn: stomp.Connection) -> None:
    """Disconnect ``conn``; one that never got CONNECTED has its socket closed (stomp.py's disconnect skips it)."""
    # Disconnecting a dead connection may fail; there is nothing left to do then.
    with contextlib.suppress(Exception):
        if conn.is_connected():
            conn.disconnect()
        else:
            conn.transport.disconnect_socket()


def statistics(session: StompSession, kind: str) -> list[dict[str, Any]]:
    """Counters of every learner queue or topic, from the statistics plugin (one request, one reply per destination)."""
    reply = f"/temp-queue/{TAP_ID}-stats"  # one per connection, subscribed once: temporary queues live as long as it
    if not session.stats_subscribed:
        session.conn.subscribe(reply, id="stats", ack="auto", headers={"transformation": "jms-map-xml"})
        session.stats_subscribed = True
    # The plugin answers with one map per destination, then (asked to) an empty map.
    session.conn.send(
        f"/{kind}/ActiveMQ.Statistics.Destination.>",
        b"",
        headers={"reply-to": reply, "ActiveMQ.Statistics.Destination.List.End.With.Null": "true"},
    )
    rows = []
    while True:
        try:
            frame = session.frames.get(timeout=session.timeout)
        except queue.Empty:
            raise BrokerUnavailable(f"ActiveMQ statistics of {kind}s: no answer within {session.timeout} s") from None
        stats = map_xml(frame.body)
        if not stats:
            break
        found, _, name = str(stats.get("destinationName", "")).partition("://")
        if found == kind and not name.startswith("ActiveMQ."):  # advisory, statistics and temporary destinations are the broker's
            rows.append({**stats, "name": name})
    return rows


def row(stats: Mapping[str, Any]) -> dict[str, Any]:
    """One destination's counters as the side panel shows them."""
    return {
        "name": stats["name"],
        "messages": stats.get("size", 0),
        "enqueued": stats.get("enqueueCount", 0),
        "dequeued": stats.get("dequeueCount", 0),
        "dispatched": stats.get("dispatchCount", 0),
        "in_flight": stats.get("inflightCount", 0),
        "expired": stats.get("expiredCount", 0),
        "consumers": stats.get("consumerCount", 0),
        "producers": stats.get("producerCount", 0),
    }
