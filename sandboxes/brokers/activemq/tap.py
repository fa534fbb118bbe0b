"""The ActiveMQ tap: the broker's delivered and consumed advisories over STOMP, and topic counters for the rest."""

from __future__ import annotations

import logging
import struct
import threading
import time
import uuid
import zlib
from collections import deque
from dataclasses import replace
from typing import Any, ClassVar

import stomp  # this module is imported only where a tap runs: the platform side never needs it

from sandboxes.brokers.base import BrokerUnavailable, Emit
from sandboxes.brokers.tap import ReconnectingTap, not_shown
from sandboxes.events import Event

from .advisory import advisory_event
from .kind import PASSWORD, USER
from .stomp_session import TAP_ID, StompSession, statistics, stomp_close

logger = logging.getLogger(__name__)

DELIVERED = "/topic/ActiveMQ.Advisory.MessageDelivered.>"
CONSUMED = "/topic/ActiveMQ.Advisory.MessageConsumed.>"
TOPIC_POLL_S = 0.5  # how often topic counters are read to infer non-durable consumption
# Recent messages kept per topic, to show what an inferred consumption took.
TOPIC_MEMORY = 500


class TopicFollower:
    """Infers "consumed" on topics from their dequeue counters.

    ActiveMQ (5.17 and 6.x) sends MessageConsumed advisories for queues and durable topic
    subscriptions only; a non-durable subscriber's acknowledgement only moves the
    topic's dequeue counter. So when that counter moves by ``d`` (minus the
    durable acknowledgements already reported), the tap shows the latest messages
    produced to the topic as consumed, each at most once per subscriber, with
    ``detail["inferred"] = "true"``.
    """

    def __init__(self, emit: Emit) -> None:
        self.emit = emit
        self.lock = threading.Lock()
        self.recent: dict[str, deque[list[Any]]] = {}  # topic -> [event, times shown consumed]
        self.durable_acks: dict[str, int] = {}
        self.dequeued: dict[str, int] = {}
        self.primed = False

    def reset(self) -> None:
        with self.lock:
            self.dequeued.clear()
            self.primed = False

    def saw(self, event: Event) -> None:
        if not event.destination.startswith("/topic/"):
            return
        name = event.destination[len("/topic/") :]
        with self.lock:
            if event.direction == "produced":
                self.recent.setdefault(name, deque(maxlen=TOPIC_MEMORY)).append([event, 0])
            else:
                self.durable_acks[name] = self.durable_acks.get(name, 0) + 1

    def poll(self, rows: list[dict[str, Any]]) -> None:
        out: list[Event] = []
        with self.lock:
            for row in rows:
                name, dequeued = row["name"], int(row.get("dequeueCount", 0))
                # A topic first seen after the first poll was born since: count from zero.
                before = self.dequeued.get(name, 0 if self.primed else dequeued)
                self.dequeued[name] = dequeued
                moved = dequeued - before - self.durable_acks.pop(name, 0)
                if moved > 0:
                    out += self._consumed(name, moved, max(1, int(row.get("consumerCount", 0))))
            self.primed = True
        for event in out:
            self.emit(event)

    def _consumed(self, name: str, moved: int, subscribers: int) -> list[Event]:
        candidates = [item for item in self.recent.get(name, ()) if item[1] < subscribers]
        wanted = -(-moved // subscribers)  # ceil
        out: list[Event] = []
        for item in candidates[-wanted:]:
            for _ in range(min(subscribers - item[1], moved - len(out))):
                item[1] += 1
                out.append(
                    replace(
                        item[0],
                        direction="consumed",
                        detail={**item[0].detail, "inferred": "true"},
                        seen_ms=int(time.time() * 1000),
                    )
                )
        if len(out) < moved:
            out.append(
                not_shown(
                    broker="activemq",
                    direction="consumed",
                    destination=f"/topic/{name}",
                    count=moved - len(out),
                    detail={"inferred": "true"},
                )
            )
        return out


class ActiveMQTap(ReconnectingTap, stomp.ConnectionListener):
    """Hears both advisory topics on one stomp.py connection and reads topic counters on a second, short-lived one."""

    broker: ClassVar[str] = "activemq"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.topics = TopicFollower(self.emit)
        self.conn: stomp.Connection | None = None
        self.stats: StompSession | None = None

    def on_message(self, frame: Any) -> None:
        try:
            event = advisory_event(frame.headers, frame.body)
        except (ValueError, KeyError, TypeError, IndexError, struct.error, zlib.error) as exc:
            logger.warning("activemq tap: unreadable advisory on %s: %s", frame.headers.get("destination"), exc)
            return
        if event is not None:
            self.topics.saw(event)
            self.emit(event)

    def connect(self) -> None:
        self.conn = stomp.Connection(
            [(self.host, self.ports["stomp"])], reconnect_attempts_max=1, auto_decode=False, heartbeats=(0, 0)
        )
        self.conn.set_listener("tap", self)
        self.conn.connect(USER, PASSWORD, wait=True, headers={"client-id": f"{TAP_ID}-{uuid.uuid4().hex[:8]}"})
        for topic, sub_id in ((DELIVERED, "delivered"), (CONSUMED, "consumed")):
            self.conn.subscribe(topic, id=sub_id, ack="auto", headers={"transformation": "jms-advisory-json"})
        self.topics.reset()

    def watch(self) -> None:
        while not self.stop.wait(TOPIC_POLL_S):
            if self.conn is None or not self.conn.is_connected():
                return
            try:
                self.stats = self.stats or StompSession(self.host, self.ports["stomp"], timeout=1.0)
                self.topics.poll(statistics(self.stats, "topic"))
            except (OSError, ValueError, BrokerUnavailable) as exc:
                logger.debug("activemq tap: topic statistics failed: %s", exc)
                self._close_stats()

    def _close_stats(self) -> None:
        if self.stats is not None:
            self.stats.close()
        self.stats = None

    def close(self) -> None:
        self._close_stats()
        if self.conn is not None:
            stomp_close(self.conn)
        self.conn = None
