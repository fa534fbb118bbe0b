"""The Kafka tap: tails every partition from its end with no group, and follows every group's committed offsets."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any, ClassVar

from sandboxes.brokers.tap import ReconnectingTap, broker_ready_at_ms, not_shown
from sandboxes.events import Direction, Event

from .clients import MAX_PER_STEP, TAP_CLIENT, Clients, never_create_topics

logger = logging.getLogger(__name__)

DISCOVER_S = 1.0  # how often new topics and partitions are looked for
GROUPS_S = 0.5  # how often committed offsets are read
# When the tap falls this far behind a partition's end it jumps ahead, keeping the last CATCH_UP_KEEP
# records, and reports what it passed over: the panel stays live, and nothing goes uncounted.
MAX_BEHIND = 3000
CATCH_UP_KEEP = 200
LAG_CHECK_S = 0.5


def _event(direction: str, record: Any, detail: dict[str, Any] | None = None, *, broker: str = "kafka") -> Event:
    return Event.build(
        broker=broker,
        direction=direction,  # type: ignore[arg-type]
        destination=record.topic,
        payload=record.value,
        key=record.key,
        headers=list(record.headers or []),
        partition=record.partition,
        offset=record.offset,
        timestamp_ms=record.timestamp if record.timestamp is not None and record.timestamp >= 0 else None,
        detail=detail,
    )


class KafkaTap(ReconnectingTap):
    """Tails partitions and follows group offsets; a new connection goes on where the last one stopped.

    What a tap that has only just started finds is taken as seen (partitions from
    their ends, groups from what they had committed); a restart after an error
    (a topic deleted under the tap, a coordinator still loading) must not pass
    over what was produced or committed meanwhile.
    """

    #: The kind its events name; a cluster's tap names its own, and the node each record came from.
    broker: ClassVar[str] = "kafka"
    clients: Clients | None = None
    group_clients: Clients | None = None
    reader: Any = None

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.started = False
        #: Records are stamped with their producer's clock: what came after the tap was made is news even when
        #: its first connection comes late (a busy machine). The offset each partition had then, once looked up.
        self.born_ms = broker_ready_at_ms()
        self.born_offsets: dict[Any, int] = {}
        #: The next offset to show of each partition seen (None: not known yet), and each group's
        #: committed offsets as last read; both outlive a connection.
        self.next_offsets: dict[Any, int | None] = {}
        self.group_offsets: dict[str, dict[Any, int]] | None = None

    def connect(self) -> None:
        from kafka import KafkaConsumer  # imported here: the platform side never needs it

        bootstrap = self.bootstrap()
        self.clients = Clients(bootstrap, role="tail")
        self.group_clients = Clients(bootstrap, role="groups")
        self.reader = KafkaConsumer(
            bootstrap_servers=bootstrap,
            client_id=f"{TAP_CLIENT}-reader",
            group_id=None,
            enable_auto_commit=False,
            allow_auto_create_topics=False,
            fetch_max_wait_ms=50,
            max_poll_records=MAX_PER_STEP,
            request_timeout_ms=5000,
        )
        never_create_topics(self.reader)

    def bootstrap(self) -> str:
        """The addresses the tap's clients start from (a cluster's kind names all its brokers)."""
        return f"{self.host}:{self.ports['kafka']}"

    def origin(self, tp: Any) -> dict[str, Any]:
        """What an event of ``tp`` says of where it came from besides its broker kind: nothing for one broker."""
        return {}

    def _event(self, direction: str, record: Any, tp: Any, detail: dict[str, Any] | None = None) -> Event:
        return _event(direction, record, {**(detail or {}), **self.origin(tp)}, broker=self.broker)

    def close(self) -> None:
        for clients in (self.clients, self.group_clients):
            if clients is not None:
                clients.close()
        if self.reader is not None:
            with contextlib.suppress(Exception):  # a half-broken client may fail to close
                self.reader.close()
        self.clients = self.group_clients = self.reader = None

    def watch(self) -> None:
        """Tail the partitions here; everything else that asks the broker runs in a thread of its own.

        Finding partitions, reading their ends and following the groups (list them, read each
        one's offsets, read what it consumed) are round trips every half second or so; made
        between two polls they held every produced record back (make bench: p99 produced -> tap
        66-146 ms at 100-1,000 msg/s against 7 ms for a plain consumer, in stalls of ~100 ms
        every 1-2 s; py-spy: the tail thread waiting in ``topics()``). The side thread has
        clients of its own and hands its findings over; either side failing ends the watch.
        """
        assert self.clients is not None and self.group_clients is not None
        over = threading.Event()
        failed: list[BaseException] = []
        self.found: set[Any] | None = None
        self.ends: dict[Any, int] = {}
        side = threading.Thread(
            target=self._side_loop, args=(self.group_clients, self.reader, over, failed), name="kafka-tap-side", daemon=True
        )
        try:
            self._loop(self.clients, side, over)
        finally:
            over.set()
            if side.is_alive():
                side.join(timeout=15)
        if failed:
            raise failed[0]

    def _side_loop(self, clients: Clients, reader: Any, over: threading.Event, failed: list[BaseException]) -> None:
        next_discover = next_lag = 0.0
        try:
            while not over.is_set() and not self.stop.is_set():
                now = time.monotonic()
                if now >= next_discover:
                    self.found = clients.partitions()
                    next_discover = now + DISCOVER_S
                if now >= next_lag and self.found:
                    try:
                        self.ends = clients.consumer.end_offsets(list(self.found))
                    except KeyError:
                        # kafka-python 3.0.12 raises KeyError for a partition whose topic was just
                        # deleted; the next discovery drops it, and the check waits for that.
                        pass
                    next_lag = now + LAG_CHECK_S
                self._groups_round(clients, reader)
                over.wait(GROUPS_S)
        except Exception as exc:  # the tail's loop sees it and ends the watch
            failed.append(exc)
            over.set()

    def _groups_round(self, clients: Clients, reader: Any) -> None:
        committed = clients.committed()
        if self.group_offsets is None:
            # What groups had committed before the tap was made is not shown; what they committed since is.
            self.group_offsets = {
                g: {tp: min(offset, self.born_offsets.get(tp, offset)) for tp, offset in o.items()}
                for g, o in committed.items()
                if o is not None
            }
            if any(self.group_offsets[g] != committed[g] for g in self.group_offsets):
                self._consumed(clients, reader, self.group_offsets, committed)
        else:
            self._consumed(clients, reader, self.group_offsets, committed)

    def _loop(self, clients: Clients, side: threading.Thread, over: threading.Event) -> None:
        # The first look is made here: the offsets at the tap's birth are read before anything else.
        found = clients.partitions()
        assigned: set[Any] = set()
        while not self.stop.is_set() and not over.is_set():
            if found != assigned:
                clients.consumer.assign(list(found))
                for gone in assigned - found:
                    self.next_offsets.pop(gone, None)  # deleted: one of the same name is new
                self._place(clients, found - assigned)
                assigned = found
            if not self.started:
                self.started = True
            if side.ident is None:  # started once the first look is placed: its first round needs the offsets at birth
                side.start()
            if assigned:
                for tp, records in clients.consumer.poll(timeout_ms=200).items():
                    for record in records:
                        self.emit(self._event("produced", record, tp))
                        self.next_offsets[tp] = record.offset + 1
                ends, self.ends = self.ends, {}
                if ends:
                    self._catch_up(clients, assigned, ends)
            else:
                self.stop.wait(0.2)
            found = self.found if self.found is not None else found

    def _place(self, clients: Clients, new: set[Any]) -> None:
        """Seek each newly assigned partition: where the tap left it, else where it was when the tap was made."""
        if not self.started:
            self.born_offsets = self._offsets_at_birth(clients, new)
        for tp in new:
            offset = self.next_offsets.get(tp)
            if offset is not None:
                clients.consumer.seek(tp, offset)
            elif tp in self.born_offsets:
                clients.consumer.seek(tp, self.born_offsets[tp])
            elif not self.started or tp in self.next_offsets:
                clients.consumer.seek_to_end(tp)
            else:
                # Born since the tap started: read it all, the first records
                # are usually the ones that created the topic.
                clients.consumer.seek_to_beginning(tp)
            self.next_offsets.setdefault(tp, None)

    def _offsets_at_birth(self, clients: Clients, partitions: set[Any]) -> dict[Any, int]:
        """Each partition's first offset stamped at or after the tap was made (its end when there is none)."""
        if not partitions:
            return {}
        try:
            found = clients.consumer.offsets_for_times({tp: self.born_ms for tp in partitions})
            ends = clients.consumer.end_offsets(list(partitions))
        except Exception as exc:  # a partition without a leader right now: start from the ends, as before
            logger.debug("kafka tap: offsets at the tap's start not readable: %r", exc)
            return {}
        return {tp: found[tp].offset if found.get(tp) is not None else ends[tp] for tp in partitions if tp in ends}

    def _catch_up(self, clients: Clients, assigned: set[Any], ends: dict[Any, int]) -> None:
        """Skip ahead on partitions the tap cannot keep up with, reporting how many records it passed."""
        for tp, end in ends.items():
            if tp not in assigned:
                continue
            position = clients.consumer.position(tp)
            if position is not None:
                self.next_offsets[tp] = position
            if position is None or end - position <= MAX_BEHIND:
                continue
            resume = end - CATCH_UP_KEEP
            clients.consumer.seek(tp, resume)
            self.next_offsets[tp] = resume
            self.emit(_passed_over("produced", tp, position, resume, self.origin(tp), broker=self.broker))

    def _consumed(
        self,
        clients: Clients,
        reader: Any,
        before: dict[str, dict[Any, int]],
        now: dict[str, dict[Any, int] | None],
    ) -> None:
        """Emit what each group consumed since ``before``, and move ``before`` forward.

        A group not readable this round keeps its positions, so that it is not
        taken for a new one next time; a deleted group is forgotten, so that a
        group of the same name starts afresh.
        """
        for gone in set(before) - set(now):
            del before[gone]
        for group_id, offsets in now.items():
            if offsets is None:
                continue
            known = before.setdefault(group_id, {})
            for tp, end in offsets.items():
                previous = known.get(tp)
                known[tp] = end
                if previous is not None:
                    start = previous
                else:
                    # First commit of a group (or partition) seen since the tap started: the
                    # group read from the start of what the log still holds.
                    start = clients.consumer.beginning_offsets([tp]).get(tp, end)
                if end <= start:
                    continue
                detail = {"group": group_id}
                if end - start > MAX_PER_STEP:
                    self.emit(_passed_over("consumed", tp, start, end, {**detail, **self.origin(tp)}, broker=self.broker))
                    continue
                for record in _read_range(reader, tp, start, end):
                    self.emit(self._event("consumed", record, tp, detail))


def _passed_over(
    direction: Direction, tp: Any, start: int, end: int, detail: dict[str, Any] | None = None, *, broker: str = "kafka"
) -> Event:
    """The one event standing for the records of ``tp`` in [start, end), too many to show each."""
    return not_shown(
        broker=broker,
        direction=direction,
        destination=tp.topic,
        count=end - start,
        partition=tp.partition,
        offset=end - 1,
        detail={**(detail or {}), "from_offset": start, "to_offset": end},
    )


def _read_range(reader: Any, tp: Any, start: int, end: int) -> list[Any]:
    """Records of ``tp`` with offsets in [start, end), read by a group-less consumer; stops early after 2 s."""
    reader.assign([tp])
    reader.seek(tp, start)
    out = []
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        for records in reader.poll(timeout_ms=100).values():
            out += [r for r in records if start <= r.offset < end]
        # Transaction markers take offsets too, so the position, not the last record, says when to stop.
        if reader.position(tp) >= end:
            break
    return out
