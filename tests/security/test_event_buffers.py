"""Event buffers bounded by bytes: what one learner's messages make the agent hold, and send in one line.

A message's key, headers and payload may each be about a megabyte. The agent's buffers of
live events (the tap's queue, each page's queue) were bounded by count only, so 100,000 or
5,000 of them could hold gigabytes in a unit whose whole memory is 1.5 GB; and a batch of
500 events (4 KiB previews of control characters, six bytes each in JSON) made a line far
longer than the platform reads (protocol.MAX_LINE), which ended the panel's live stream.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from sandboxes import agent_client
from sandboxes.agent import fanout, protocol
from sandboxes.backends.process import ProcessBackend
from sandboxes.events import Event, Preview
from tests.aio import run
from tests.security.units import Unit

MIB = 1024 * 1024
#: More than any buffer may hold of megabyte events: a few tens of megabytes, not gigabytes.
HELD_AT_MOST = 64 * MIB


def _big_event(key: str) -> Event:
    """An event as a tap could have made it before keys and headers were capped: a megabyte key."""
    return Event(broker="kafka", direction="produced", destination="t", value=Preview.of(b"x"), size=1, key=key)


def test_an_event_keeps_a_bounded_key_headers_and_destination():
    megabyte = b"k" * MIB
    event = Event.build(
        broker="kafka",
        direction="produced",
        destination="d" * MIB,
        payload=b"\0" * MIB,
        key=megabyte,
        headers={f"h{i}": megabyte for i in range(8)},
        detail={"routing_key": "r" * MIB},
    )
    encoded = len(protocol.encode(event.to_dict()))
    print(f"an event of 11 MiB of key, headers, destination and payload: {encoded} bytes in JSON")
    assert encoded <= 128 * 1024, f"{encoded} bytes for one event"
    assert event.weight() >= encoded, "the estimate the buffers count by must not be below the real size"


def test_the_taps_queue_holds_a_bounded_number_of_bytes():
    key = "k" * MIB  # one string shared by every event: the test itself stays small
    loop = asyncio.new_event_loop()

    class Flood:
        def tap(self, *, host, ports, emit, stop):
            for _ in range(5000):
                emit(_big_event(key))
            stop.set()

    events = fanout.EventFanout(kind=Flood(), ports={}, done=asyncio.Event())
    try:
        events.tap_thread(loop)
    finally:
        loop.close()
    held = sum(len(event.key or "") for event, _weight in events.incoming)
    print(f"tap queue: {len(events.incoming)} events, {held / MIB:.0f} MiB held, {events.tap_dropped} counted as dropped")
    assert held <= HELD_AT_MOST, f"the tap's queue holds {held / MIB:.0f} MiB"
    assert events.tap_dropped + len(events.incoming) == 5000


def test_a_pages_queue_holds_a_bounded_number_of_bytes():
    subscriber = fanout.Subscriber()
    event = _big_event("k" * MIB).to_dict()
    for _ in range(5000):
        subscriber.offer(event)
    held = len(subscriber.events) * MIB
    print(f"page queue: {len(subscriber.events)} events, {held / MIB:.0f} MiB held, {subscriber.dropped} dropped")
    assert held <= HELD_AT_MOST, f"a page's queue holds {held / MIB:.0f} MiB"
    assert subscriber.dropped + len(subscriber.events) == 5000


PUBLISH = """
import asyncio, os, nats
async def main():
    nc = await nats.connect(os.environ["NATS_URL"])
    for i in range({count}):
        await nc.publish("flood", b"\\0" * 4096)
    await nc.flush()
    await nc.close()
asyncio.run(main())
print("published")
"""


@pytest.mark.integration
def test_a_burst_of_escaped_payloads_reaches_the_panel_in_lines_it_can_read(units_cleanup):
    """A page that fell behind gets the backlog in lines the platform reads, not one it refuses."""
    count = 900
    unit = Unit(ProcessBackend(), "nats")
    published = threading.Event()

    def publish():
        status, output, _ = unit.run(PUBLISH.format(count=count), timeout=60)
        assert status == 0, output
        published.set()

    async def watch() -> tuple[int, int]:
        seen = dropped = 0
        stream = agent_client.subscribe(unit.socket)
        first = await asyncio.wait_for(anext(stream), 30)  # the first snapshot: subscribed
        assert first["type"] in ("snapshot", "events")
        # Fall behind, as a slow page does, while the burst is published.
        publisher = threading.Thread(target=publish)
        publisher.start()
        while not published.is_set() and publisher.is_alive():
            await asyncio.sleep(0.1)
        publisher.join()
        assert published.is_set(), "the cell did not publish"
        async with asyncio.timeout(60):
            async for message in stream:
                if message["type"] == "events":
                    seen += len([e for e in message["events"] if e["destination"] == "flood"])
                    dropped += message.get("dropped", 0)
                if seen + dropped >= count:
                    break
        await stream.aclose()
        return seen, dropped

    try:
        seen, dropped = run(watch())
        print(f"{seen} events shown, {dropped} counted as dropped of {count} published")
        assert seen + dropped >= count
    finally:
        unit.stop()


def test_the_estimate_covers_the_json_of_escaped_and_wide_characters():
    for payload in (b"\0" * 4096, "ж😀".encode() * 1000, bytes(range(256)) * 16):
        event = Event.build(broker="nats", direction="produced", destination="s", payload=payload, key=payload)
        assert event.weight() >= len(protocol.encode(event.to_dict()))
