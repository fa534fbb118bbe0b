"""The live stream: latency from produce to the browser, what is accounted for, and a stalled client.

One learner's Kafka sandbox. A producer runs as a plain client inside the
unit's network namespace (``ip netns exec``, confluent-kafka) and sends JSON
messages carrying their send time (``time.time()``) at a fixed rate. Two readers
see the same messages in the same run:

* the platform's path: the agent's tap -> the relay in the ASGI server -> a
  learner's WebSocket, which receives ``sandbox.event`` batches here;
* the reference: a plain consumer inside the namespace reading the topic
  straight from the broker (no group, nothing committed, so the tap shows no
  "consumed" events of its own).

Accounted ratio: (events shown + ``dropped`` reported in the batches) / messages
the broker acknowledged. Then one client that completes its handshake and
never reads, for 30 s at 10,000 messages/s, while the RSS of the ASGI server and
of the unit's agent are sampled.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import time
from dataclasses import dataclass, field

import psutil

from . import harness
from .harness import Platform, say
from .report import Results, percentile

TOPIC = "bench-stream"
BOOTSTRAP = "127.0.0.1:9092"
RATES = (100, 1000, 10000)

PRODUCER = r"""
import json, sys, time
from confluent_kafka import Producer
bootstrap, topic, tag, rate, duration = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
stats = {"delivered": 0, "failed": 0}
def done(err, _msg):
    stats["failed" if err is not None else "delivered"] += 1
p = Producer({"bootstrap.servers": bootstrap, "queue.buffering.max.messages": 1000000})
total = int(rate * duration)
start = time.time()
sent = 0
while sent < total and time.time() < start + duration * 3:
    due = min(total, int((time.time() - start) * rate) + 1)
    while sent < due:
        value = json.dumps({"ts": time.time(), "seq": sent, "run": tag, "note": "benchmark message"})
        try:
            p.produce(topic, value.encode(), on_delivery=done)
        except BufferError:
            p.poll(0.01)
            continue
        sent += 1
    p.poll(0)
    delay = start + sent / rate - time.time()
    if delay > 0:
        time.sleep(min(delay, 0.002))
elapsed = time.time() - start
left = p.flush(30)
print(json.dumps({"sent": sent, "elapsed": elapsed, "unflushed": left, **stats}))
"""

DIRECT = r"""
import json, sys, time
from confluent_kafka import Consumer, TopicPartition, OFFSET_END
bootstrap, topic, tag, duration = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-direct-never-commits", "enable.auto.commit": False,
              "enable.auto.offset.store": False})
parts = list(c.list_topics(topic, timeout=10).topics[topic].partitions)
c.assign([TopicPartition(topic, p, OFFSET_END) for p in parts])
deadline = time.time() + 10
while time.time() < deadline:
    c.poll(0.05)
    if all(tp.offset >= 0 for tp in c.position([TopicPartition(topic, p) for p in parts])):
        break
print("ready", flush=True)
latencies = []
started = time.time()
last = None
while time.time() < started + duration + 30:
    msg = c.poll(0.1)
    now = time.time()
    if msg is None:
        if last is not None and now - started > duration and now - last > 3:
            break
        if last is None and now - started > duration + 10:
            break
        continue
    if msg.error():
        continue
    try:
        body = json.loads(msg.value())
    except ValueError:
        continue
    if body.get("run") == tag:
        latencies.append(round((now - body["ts"]) * 1000, 3))
        last = now
c.close()
print(json.dumps({"latencies": latencies}))
"""


@dataclass
class Listener:
    """Reads a learner's WebSocket and counts this phase's events (by the tag in their payload)."""

    sandbox_id: int
    tag: str | None = None
    latencies: list[float] = field(default_factory=list)
    tap_latencies: list[float] = field(default_factory=list)  # produced -> seen by the agent's tap (the event's seen_ms)
    shown: int = 0
    dropped: int = 0
    seen_first: int | None = None  # the tap's seen_ms of this phase's first and last shown event
    seen_last: int | None = None
    last_frame: float = field(default_factory=time.monotonic)

    def reset(self, tag: str) -> None:
        self.tag, self.latencies, self.tap_latencies, self.shown, self.dropped = tag, [], [], 0, 0
        self.seen_first = self.seen_last = None

    async def loop(self, ws) -> None:
        async for raw in ws:
            now = time.time()
            message = json.loads(raw)
            if message.get("type") != "sandbox.event" or message.get("sandbox") != self.sandbox_id:
                continue
            self.last_frame = time.monotonic()
            if self.tag is None:
                continue
            self.dropped += int(message.get("dropped") or 0)
            for event in message.get("events", ()):
                if event.get("direction") != "produced" or event.get("destination") != TOPIC:
                    continue
                skipped = (event.get("detail") or {}).get("not_shown")
                if skipped:
                    # The tap skipped ahead to stay live and said how many it passed over.
                    self.dropped += int(skipped)
                    continue
                try:
                    body = json.loads(event["value"]["text"])
                except (KeyError, TypeError, ValueError):
                    continue
                if isinstance(body, dict) and body.get("run") == self.tag:
                    self.shown += 1
                    self.latencies.append((now - body["ts"]) * 1000)
                    seen = event.get("seen_ms")
                    if isinstance(seen, int):
                        self.tap_latencies.append(seen - body["ts"] * 1000)
                        self.seen_first = seen if self.seen_first is None else min(self.seen_first, seen)
                        self.seen_last = seen if self.seen_last is None else max(self.seen_last, seen)


def run(platform: Platform, results: Results, *, quick: bool) -> None:
    user = platform.user("stream")
    sandbox, seconds = harness.sandbox_ready(user, "kafka")
    say(f"stream: kafka sandbox {sandbox.pk} ready in {seconds:.1f} s")
    cookie = harness.session_cookie(user)
    asgi_pid = platform.asgi.process.pid
    agent_pid = harness.agent_pid(sandbox)
    try:
        asyncio.run(_measure(platform, sandbox, cookie, results, quick=quick))
        _stalled(platform, sandbox, cookie, results, quick=quick, asgi_pid=asgi_pid, agent_pid=agent_pid)
    finally:
        harness.sandbox_stop(sandbox.pk)


async def _produce(sandbox, tag: str, rate: int, duration: float) -> dict:
    producer = await harness.netns_python(sandbox, PRODUCER, BOOTSTRAP, TOPIC, tag, str(rate), str(duration))
    status, out, err = await harness.process_finish(producer, timeout=duration * 3 + 40)
    if status != 0:
        raise RuntimeError(f"the producer failed ({status}): {err[-1500:]}")
    return harness.last_json_line(out)


async def _measure(platform: Platform, sandbox, cookie: str, results: Results, *, quick: bool) -> None:
    duration = 4.0 if quick else 8.0
    watched = {"agent": harness.agent_pid(sandbox), "asgi": platform.asgi.process.pid}
    ws = await harness.ws_open(platform, cookie)
    listener = Listener(sandbox.pk)
    reading = asyncio.create_task(listener.loop(ws))
    try:
        # Warm-up: creates the topic and lets the tap find it (it looks for new partitions once a second).
        listener.reset("warmup")
        await _produce(sandbox, "warmup", 50, 1.0)
        over = harness.bounded(20)
        while listener.shown < 10 and not over():
            await asyncio.sleep(0.1)
        if listener.shown == 0:
            raise RuntimeError("the WebSocket showed none of the warm-up messages within 20 s")
        await asyncio.sleep(1.0)
        for rate in RATES:
            tag = f"rate-{rate}-{time.time():.0f}"
            direct = await harness.netns_python(sandbox, DIRECT, BOOTSTRAP, TOPIC, tag, str(duration))
            try:
                assert direct.stdout is not None
                line = await asyncio.wait_for(direct.stdout.readline(), 30)
                if line.strip() != b"ready":
                    _status, _out, err = await harness.process_finish(direct, timeout=5)
                    raise RuntimeError(f"the direct reader did not start: {line!r} {err[-1500:]}")
                listener.reset(tag)
                cpu_before, phase_started = _cpu(watched), time.monotonic()
                produced = await _produce(sandbox, tag, rate, duration)
                delivered = produced["delivered"]
                # Drain: until every acknowledged message is shown or reported dropped, or nothing arrives for 5 s.
                over = harness.bounded(60)
                while listener.shown + listener.dropped < delivered and not over() and time.monotonic() - listener.last_frame < 5:
                    await asyncio.sleep(0.1)
                cpu = {k: (v - cpu_before.get(k, v)) / (time.monotonic() - phase_started) for k, v in _cpu(watched).items()}
                _status, out, err = await harness.process_finish(direct, timeout=duration + 45)
            finally:
                await harness.process_reap(direct)
            direct_latencies = harness.last_json_line(out)["latencies"]
            results.samples(f"stream.latency_ms.{rate}", listener.latencies, p99=True)
            results.samples(f"stream.direct_latency_ms.{rate}", direct_latencies, p99=True)
            if delivered:
                results.value(f"stream.accounted_ratio.{rate}", (listener.shown + listener.dropped) / delivered)
            achieved = produced["sent"] / produced["elapsed"] if produced["elapsed"] else 0
            summary = (
                f"stream {rate}/s: produced {delivered} (at {achieved:,.0f}/s, {produced['failed']} failed), "
                f"shown {listener.shown}, reported dropped {listener.dropped}, direct reader saw {len(direct_latencies)}"
            )
            if listener.seen_first is not None and listener.seen_last is not None and listener.seen_last > listener.seen_first:
                tap_rate = listener.shown / ((listener.seen_last - listener.seen_first) / 1000)
                summary += f"; the tap emitted them at {tap_rate:,.0f}/s"
            if listener.tap_latencies:
                taps, shown = listener.tap_latencies, listener.latencies
                summary += (
                    f"; p50 produced->tap {percentile(taps, 50):.1f} ms, ->WebSocket {percentile(shown, 50):.1f} ms"
                    f"; p99 produced->tap {percentile(taps, 99):.1f} ms, ->WebSocket {percentile(shown, 99):.1f} ms"
                )
            summary += "; CPU (of one core) " + ", ".join(f"{k} {v:.0%}" for k, v in cpu.items())
            say(summary)
            results.note(summary)
    finally:
        reading.cancel()
        with contextlib.suppress(BaseException):
            await reading
        await ws.close()


def _cpu(pids: dict[str, int | None]) -> dict[str, float]:
    """CPU seconds (user + system) used so far by each process."""
    used = {"machine": sum(psutil.cpu_times()[:3])}  # user + nice + system of all cores
    for name, pid in pids.items():
        with contextlib.suppress(psutil.Error, TypeError, ValueError):
            times = psutil.Process(pid).cpu_times()
            used[name] = times.user + times.system
    return used


def _stalled(
    platform: Platform, sandbox, cookie: str, results: Results, *, quick: bool, asgi_pid: int, agent_pid: int | None
) -> None:
    seconds = 15.0 if quick else 30.0
    rate = 10000
    processes = {"asgi": psutil.Process(asgi_pid)}
    if agent_pid is not None:
        processes["agent"] = psutil.Process(agent_pid)

    def sample() -> dict[str, float]:
        return {name: p.memory_info().rss / 1024**2 for name, p in processes.items()}

    sock = harness.ws_stalled_open(platform, cookie)
    try:
        baseline_samples = []
        for _ in range(6):
            baseline_samples.append(sample())
            time.sleep(0.25)
        baseline = {name: statistics.median(s[name] for s in baseline_samples) for name in processes}
        say(
            f"stream: one client reads nothing for {seconds:.0f} s at {rate}/s; baseline RSS "
            + ", ".join(f"{k} {v:.0f} MB" for k, v in baseline.items())
        )
        timeline: list[dict[str, float]] = []

        async def produce_and_watch() -> dict:
            task = asyncio.create_task(_produce(sandbox, f"stalled-{time.time():.0f}", rate, seconds))
            while not task.done():
                timeline.append(sample())
                await asyncio.wait({task}, timeout=0.5)
            return task.result()

        produced = asyncio.run(produce_and_watch())
        timeline.append(sample())
        # Still connected (not closed by the server) at the end?
        port = sock.getsockname()[1]
        server_side = [c for c in psutil.net_connections("tcp") if c.raddr and c.raddr.port == port and c.pid == asgi_pid]
        connection = server_side[0].status if server_side else "gone"
    finally:
        sock.close()
    peak = {name: max(s[name] for s in timeline) for name in processes}
    last = timeline[-1]
    half = timeline[len(timeline) // 2]
    results.value("stream.stalled_client_rss_growth_mb", peak["asgi"] - baseline["asgi"])
    if "agent" in processes:
        results.value("stream.stalled_client_agent_rss_growth_mb", peak["agent"] - baseline["agent"])
    summary = (
        f"stalled client: {produced['delivered']} messages in {produced['elapsed']:.0f} s, its connection {connection} at the end; RSS "
        + ", ".join(
            f"{n} {baseline[n]:.0f} -> half-time {half[n]:.0f} -> peak {peak[n]:.0f} -> end {last[n]:.0f} MB" for n in processes
        )
    )
    say(summary)
    results.note(summary)
