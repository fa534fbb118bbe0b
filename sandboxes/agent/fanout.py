"""The agent's events fan-out: the tap's thread feeds one queue, and every subscribed page gets its share of it.

Each queue is bounded by count and by bytes; what does not fit is counted and sent as
"not shown" (``dropped``), never held. Snapshots of the broker's topology follow a change
within a fraction of a second and, while a page watches, come at least once a second.

An idle unit costs next to nothing here: the fan-out sleeps until the tap's thread wakes it
(it used to look every 50 ms), and with no page subscribed the broker is asked for a snapshot
only after a change (a tap report, a cell's end), not every second; the first page to
subscribe gets a fresh one. Measured in docs/bench.md ("Idle cost of a unit").
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
from typing import Any

from sandboxes.brokers.base import BrokerKind
from sandboxes.events import Event, json_weight

from . import protocol

log = logging.getLogger("sandboxes.agent")

#: Events kept for a page that connects (or reconnects) later.
RECENT = 200
#: Per subscriber: events waiting to be sent, by count and by bytes (events.json_weight, an upper
#: bound); beyond either they are counted as not shown. Bytes too: a key, headers or a destination
#: may be a megabyte each, and 5,000 of them would be gigabytes in a unit of 1.5 GB.
SUBSCRIBER_BUFFER = 5000
SUBSCRIBER_BYTES = 16 * 1024 * 1024
#: The tap's queue before the fan-out, likewise.
INCOMING_EVENTS = 100_000
INCOMING_BYTES = 32 * 1024 * 1024
#: One line to the platform: at most this many events and bytes, well under protocol.MAX_LINE,
#: which the platform refuses to read past (an event alone is far smaller, see events.py).
BATCH_MAX = 500
BATCH_BYTES = 1024 * 1024
#: The fan-out is woken by the tap's thread; this is only how often it looks anyway.
IDLE_WAKE_S = 5.0
#: While a page is subscribed, a snapshot is taken at least this often; sooner when the tap
#: reports something or a cell ends. With none subscribed, only then.
SNAPSHOT_EVERY_S = 1.0
#: A reported change waits this long for the rest of its burst before the snapshot is taken...
SNAPSHOT_SETTLE_S = 0.05
#: ...and snapshots are at least this far apart, so that a flood costs a few of them a second.
SNAPSHOT_GAP_S = 0.25


class Subscriber:
    """One page's queue of events, bounded by count and by bytes."""

    def __init__(self) -> None:
        self.events: collections.deque[dict[str, Any]] = collections.deque()
        self.weights: collections.deque[int] = collections.deque()
        self.held = 0
        self.dropped = 0
        self.wake = asyncio.Event()

    def offer(self, event: dict[str, Any], weight: int | None = None) -> None:
        weight = json_weight(event) if weight is None else weight
        if len(self.events) >= SUBSCRIBER_BUFFER or self.held + weight > SUBSCRIBER_BYTES:
            self.dropped += 1
        else:
            self.events.append(event)
            self.weights.append(weight)
            self.held += weight
        self.wake.set()

    def batch(self) -> list[dict[str, Any]]:
        """The next events to send: at most BATCH_MAX and BATCH_BYTES, and at least one."""
        batch: list[dict[str, Any]] = []
        size = 0
        while self.events and len(batch) < BATCH_MAX and (not batch or size + self.weights[0] <= BATCH_BYTES):
            weight = self.weights.popleft()
            size += weight
            self.held -= weight
            batch.append(self.events.popleft())
        return batch


class EventFanout:
    """The tap's events and the broker's snapshots, from the tap's thread to every subscribed page, until ``done``."""

    def __init__(self, *, kind: BrokerKind, ports: dict[str, int], done: asyncio.Event) -> None:
        self.kind = kind
        self.ports = ports
        self.done = done
        self.stop_tap = threading.Event()
        self.incoming: collections.deque[tuple[Event, int]] = collections.deque()  # with each one's weight
        self.incoming_bytes = 0  # written by the tap's thread, lowered by the fan-out (a rough bound is enough)
        self.arrived = asyncio.Event()  # set (from the tap's thread) when events wait in ``incoming``
        self.wake_pending = False
        self.tap_changed = False  # set (from the tap's thread) when the topology changed without a message
        self.snapshot_wanted = asyncio.Event()
        self.tap_dropped = 0
        self.recent: collections.deque[tuple[dict[str, Any], int]] = collections.deque(maxlen=RECENT)
        self.subscribers: set[Subscriber] = set()
        self.snapshot: dict[str, Any] | None = None

    def tap_thread(self, loop: asyncio.AbstractEventLoop) -> None:
        """The tap, in a thread of its own until ``stop_tap``: its events go to ``incoming``, the fan-out is woken on ``loop``."""

        def emit(event: Event | None) -> None:
            if event is None:
                self.tap_changed = True
            else:
                weight = event.weight()
                if len(self.incoming) >= INCOMING_EVENTS or self.incoming_bytes + weight > INCOMING_BYTES:
                    self.tap_dropped += 1  # the newest is not kept: the page says how many it missed
                else:
                    self.incoming_bytes += weight
                    self.incoming.append((event, weight))
            # Wake the fan-out once per burst, not once per event: the flag is cleared when it drains.
            if not self.wake_pending:
                self.wake_pending = True
                loop.call_soon_threadsafe(self.arrived.set)

        while not self.stop_tap.is_set():
            try:
                self.kind.tap(host="localhost", ports=self.ports, emit=emit, stop=self.stop_tap)
            except Exception:  # a tap error must not end watching; it restarts
                log.exception("tap failed; restarting in 1 s")
            self.stop_tap.wait(1.0)

    async def fanout(self) -> None:
        while not self.done.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), timeout=IDLE_WAKE_S)
            self.arrived.clear()
            self.wake_pending = False
            dropped, self.tap_dropped = self.tap_dropped, 0
            changed, self.tap_changed = self.tap_changed, False
            if self.incoming or dropped or changed:
                # Messages moved or the topology changed: the panel's counts should follow now, not within a second.
                self.snapshot_wanted.set()
            while self.incoming:
                item, weight = self.incoming.popleft()
                self.incoming_bytes -= weight
                event = item.to_dict()
                self.recent.append((event, weight))
                for subscriber in self.subscribers:
                    subscriber.offer(event, weight)
            if dropped:
                for subscriber in self.subscribers:
                    subscriber.dropped += dropped
                    subscriber.wake.set()

    async def snapshots(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.done.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.snapshot_wanted.wait(), timeout=SNAPSHOT_EVERY_S if self.subscribers else None)
                await asyncio.sleep(SNAPSHOT_SETTLE_S)
            # Cleared before asking: a change reported while the broker answers asks for the next one.
            self.snapshot_wanted.clear()
            started = loop.time()
            try:
                data = await loop.run_in_executor(None, lambda: self.kind.snapshot(host="localhost", ports=self.ports))
            except Exception as exc:  # the broker may be busy; the next second tries again
                log.debug("snapshot failed: %s", exc)
                data = None
            if data is not None and data != self.snapshot:
                self.snapshot = data
                for subscriber in self.subscribers:
                    subscriber.wake.set()
            await asyncio.sleep(max(0.0, SNAPSHOT_GAP_S - (loop.time() - started)))

    async def serve_subscribe(self, writer: asyncio.StreamWriter, reader: asyncio.StreamReader) -> None:
        """The ``subscribe`` op: the recent events, then events and snapshots as they come, until the platform hangs up."""
        subscriber = Subscriber()
        for event, weight in self.recent:
            subscriber.offer(event, weight)
        if not self.subscribers:
            # Nobody watched: the last snapshot may be old. The page gets a fresh one, not that.
            self.snapshot = None
            self.snapshot_wanted.set()
        self.subscribers.add(subscriber)
        sent_snapshot = None
        closed = asyncio.create_task(reader.read())  # completes when the platform hangs up
        try:
            while not closed.done():
                if subscriber.events or subscriber.dropped:
                    batch = subscriber.batch()
                    dropped, subscriber.dropped = subscriber.dropped, 0
                    await protocol.send(writer, {"type": "events", "events": batch, "dropped": dropped})
                if self.snapshot is not None and self.snapshot is not sent_snapshot:
                    sent_snapshot = self.snapshot
                    await protocol.send(writer, {"type": "snapshot", "data": self.snapshot})
                if not subscriber.events:
                    subscriber.wake.clear()
                    waiter = asyncio.create_task(subscriber.wake.wait())
                    await asyncio.wait({waiter, closed}, return_when=asyncio.FIRST_COMPLETED)
                    waiter.cancel()
                await asyncio.sleep(0)
        finally:
            self.subscribers.discard(subscriber)
            closed.cancel()
