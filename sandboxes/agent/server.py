"""The agent's main loop: broker supervision, the tap's fan-out, and the socket API.

Requests (one JSON object per line), each on its own connection:
  {"op": "status"}                          -> {"stage", "ready", "connection", "broker_version", "error"}
  {"op": "watch"}                           -> the status now, then again at every change of stage, until closed
      (the platform waits on this while the broker boots: it is told of ready or failed, it does not ask)
  {"op": "run", "code", "timeout"}          -> {"type": "output", "stream", "text"}* then {"type": "exit", ...}
      (past the head of a long output: "tail": true, and "skipped" lines before the text; see output.py)
      the exit may carry "hint": {"code", "variables"[, "name"]} for a common mistake (agent/cell_hints.py),
      or {"code": "disk-full", "variables", "used_mb", "cap_mb"} when the unit's disk is (nearly) full
      while it runs the same connection may send {"op": "interrupt"}
  {"op": "check", "code", "timeout"}        -> {"type": "exit", "status", "output"}
  {"op": "subscribe"}                       -> {"type": "events", "events", "dropped"} and {"type": "snapshot", "data"}, until closed
  {"op": "node", "node", "action"}          -> {"ok": true, "brokers": [...]} or {"type": "error", "code", "message"}:
      stop or start one node of a kind that runs several (kafka-cluster); the snapshot follows at once
  {"op": "shutdown"}                        -> {"ok": true}, then the broker stops and the agent exits
  {"op": "terminal", "rows", "cols"}        -> the unit's shell on a pty, until closed (see agent/terminal.py)
  {"op": "console", "method", "target", ...} -> one HTTP request to the broker's web console (see agent/console.py)

The agent listens on a Unix socket in its unit's folder (process and docker backends: the
file's permissions keep others out) or on TCP (kubernetes: ``--listen HOST:PORT``). With a
token (``--token-file``) the first message of every connection must carry it in its
"token" field, compared in constant time; otherwise the answer is
{"type": "error", "code": "unauthorized"} and the connection is closed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import hmac
import json
import logging
import os
import pwd
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from sandboxes.brokers import get_broker
from sandboxes.brokers.base import BrokerLimits, BrokerUnavailable, LaunchSpec, NodeActionRefused, Site, stop_process_group
from sandboxes.events import Event, json_weight

from . import console, fail_closed, mounts, protocol
from .cells import UNIT_MARKER, CellLimits, CellRunner
from .terminal import Terminals

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
FLUSH_EVERY_S = 0.05
#: A snapshot is taken at least this often; sooner when the tap reports something or a cell ends.
SNAPSHOT_EVERY_S = 1.0
#: A reported change waits this long for the rest of its burst before the snapshot is taken...
SNAPSHOT_SETTLE_S = 0.05
#: ...and snapshots are at least this far apart, so that a flood costs a few of them a second.
SNAPSHOT_GAP_S = 0.25
#: A disk this close to the broker's watermark counts as full: RabbitMQ's own check lags its writes.
DISK_MARGIN_MB = 4


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


class Agent:
    def __init__(
        self,
        *,
        unit_dir: Path,
        broker: str,
        cell_uid: int | None,
        cells_cgroup: list[Path],
        broker_user: str | None = None,
        broker_uid: int | None = None,
        cell_confinement: str = "bwrap",
        ports: dict[str, int] | None = None,
        listen: tuple[str, int] | None = None,
        token: str = "",
        disk_mb: int | None = None,
    ) -> None:
        self.unit_dir = unit_dir
        self.listen = listen
        self.token = token.encode()
        # The backend's cap of the data folder; the broker's watermarks are set under it.
        self.limits = BrokerLimits(disk_mb=disk_mb) if disk_mb else BrokerLimits()
        self.kind = get_broker(broker)
        self.cell_uid = cell_uid
        self.cells_cgroup = cells_cgroup
        self.broker_user = broker_user
        self.broker_uid = broker_uid
        self.cell_confinement = cell_confinement
        self.ports = self.kind.ports(ports)
        self.stage = "starting agent"
        self.error = ""
        self.connection: dict[str, str] = {}
        self.broker_version: str | None = None  # as the running broker states it, once ready
        self.ready = False
        self.broker_process: subprocess.Popen[bytes] | None = None
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
        self.watchers: set[asyncio.Queue[dict[str, Any]]] = set()
        self.snapshot: dict[str, Any] | None = None
        self.runner: CellRunner | None = None
        self.terminals: Terminals | None = None
        self.done = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------

    def set_stage(self, stage: str, *, error: str = "") -> None:
        self.stage, self.error = stage, error
        status = {
            "stage": stage,
            "ready": self.ready,
            "error": error,
            "connection": self.connection,
            "broker": self.kind.name,
            "broker_version": self.broker_version,
            "pid": os.getpid(),
            "time": time.time(),
        }
        tmp = self.unit_dir / (protocol.STATUS_NAME + ".tmp")
        tmp.write_text(json.dumps(status))
        tmp.replace(self.unit_dir / protocol.STATUS_NAME)
        log.info("stage %s %s", stage, error)
        for watcher in self.watchers:
            watcher.put_nowait(self.status())

    def status(self) -> dict[str, Any]:
        """What ``status`` answers and ``watch`` sends at every change."""
        return {
            "stage": self.stage,
            "ready": self.ready,
            "error": self.error,
            "connection": self.connection,
            "broker_version": self.broker_version,
        }

    async def main(self) -> None:
        loop = self.loop = asyncio.get_running_loop()
        (self.unit_dir / "agent.pid").write_text(str(os.getpid()))
        server: asyncio.Server
        if self.listen is not None:
            host, port = self.listen
            server = await asyncio.start_server(self.handle, host, port, limit=protocol.MAX_LINE)
        else:
            sock = self.unit_dir / protocol.SOCKET_NAME
            with contextlib.suppress(FileNotFoundError):
                sock.unlink()
            server = await asyncio.start_unix_server(self.handle, path=str(sock), limit=protocol.MAX_LINE)
            os.chmod(sock, 0o600)
        try:
            await self.start_broker()
        except Exception as exc:  # any failure to start is reported, not raised: the platform reads it
            log.exception("broker did not start")
            self.set_stage("failed", error=str(exc) or exc.__class__.__name__)
        if self.ready:
            threading.Thread(target=self.tap_thread, name="tap", daemon=True).start()
            self.background = {loop.create_task(c) for c in (self.fanout(), self.snapshots(), self.watch_broker())}
        async with server:
            await self.done.wait()
        await self.stop_broker()

    async def start_broker(self) -> None:
        loop = asyncio.get_running_loop()
        # The account the broker runs as (when the agent is root): its kind's own, else the
        # container's broker account, else the unit's own broker uid. Never root, never the cells' uid.
        broker_account: str | int | None = self.broker_user if self.broker_user is not None else self.broker_uid
        isolated = self.cell_uid is not None or bool(self.cells_cgroup)
        refused = fail_closed.problems(isolated=isolated, confinement=self.cell_confinement, cell_uid=self.cell_uid)
        if refused:
            raise RuntimeError("cells cannot be confined, the unit is refused: " + "; ".join(refused))
        if self.cells_cgroup:
            # Fail closed: cells that cannot join their cgroup would run without its limits.
            await loop.run_in_executor(None, lambda: mounts.show_cgroups(self.cells_cgroup))
        if self.broker_uid is not None and os.geteuid() == 0:
            await loop.run_in_executor(None, lambda: mounts.reveal_cache(self.unit_dir))
        missing = self.kind.missing()
        if missing:
            raise RuntimeError("; ".join(missing))
        self.set_stage("preparing")
        data = self.unit_dir / "data"
        data.mkdir(exist_ok=True)
        if self.broker_user is not None and os.geteuid() == 0:
            # Kept data from an earlier unit is still handed over to its broker: take it back to rewrite the configuration.
            await loop.run_in_executor(None, lambda: _take_back(data))
        site = Site(data_dir=data, ports=self.ports, limits=self.limits)
        await loop.run_in_executor(None, lambda: self.kind.prepare(site=site))
        self.set_stage("starting")
        spec = self.kind.launch(site=site)
        # Every process of the unit carries its name, so a backend without namespaces or cgroups can find them all.
        spec = dataclasses.replace(spec, env={**spec.env, UNIT_MARKER: self.unit_dir.name})
        if broker_account is not None and os.geteuid() == 0:
            spec = await loop.run_in_executor(None, lambda: _hand_over(data, spec, broker_account))
        log_file = (self.unit_dir / "broker.log").open("ab")
        process = self.broker_process = spec.start(stdout=log_file)
        self.stop_timeout = spec.stop_timeout
        self.set_stage("waiting")
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                tail = (self.unit_dir / "broker.log").read_text(errors="replace")[-1500:]
                raise RuntimeError(f"the broker exited with status {process.returncode}: {tail}")
            ready = await loop.run_in_executor(None, lambda: self.kind.probe_ready(host="localhost", ports=self.ports))
            if ready:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the broker did not become ready within 120 s")
            await asyncio.sleep(0.1)
        self.connection = self.kind.connection_env(host="localhost", ports=self.ports)
        self.broker_version = await loop.run_in_executor(
            None, lambda: self.kind.broker_version(host="localhost", ports=self.ports)
        )
        self.runner = CellRunner(
            env={**self.connection, UNIT_MARKER: self.unit_dir.name},
            limits=CellLimits(),
            uid=self.cell_uid,
            cgroup_procs=self.cells_cgroup,
            confinement=self.cell_confinement,
        )
        await self.runner.prewarm()
        self.terminals = Terminals(runner=self.runner, unit_dir=self.unit_dir, broker=self.kind.name, connection=self.connection)
        self.ready = True
        self.set_stage("ready")

    async def watch_broker(self) -> None:
        while not self.done.is_set():
            if self.broker_process is not None and self.broker_process.poll() is not None:
                self.ready = False
                error = f"the broker exited with status {self.broker_process.returncode}"
                disk = self.disk_full()
                if disk is not None:
                    error += f": the sandbox's disk is full ({disk['used_mb']} of {disk['cap_mb']} MB)"
                self.set_stage("failed", error=error)
                return
            await asyncio.sleep(0.5)

    def disk_full(self) -> dict[str, int] | None:
        """{"used_mb", "cap_mb"} when the broker's disk has less free than its watermark keeps, else None.

        Then RabbitMQ blocks publishers and Kafka (which has no watermark) is at the wall or has
        stopped: whatever the learner's producer shows, this is the reason.
        """
        try:
            fs = os.statvfs(self.unit_dir / "data")
        except OSError:
            return None
        free_mb = fs.f_bavail * fs.f_frsize / 2**20
        if free_mb >= self.limits.disk_free_mb + DISK_MARGIN_MB:
            return None
        cap_mb = fs.f_blocks * fs.f_frsize / 2**20
        return {"used_mb": round(cap_mb - fs.f_bfree * fs.f_frsize / 2**20), "cap_mb": round(cap_mb)}

    def disk_hint(self) -> dict[str, Any] | None:
        """The hint an exit carries while the disk is full: the page says why a producer is blocked or refused."""
        disk = self.disk_full()
        if disk is None:
            return None
        return {"code": "disk-full", "variables": list(self.connection)[:8], **disk}

    async def stop_broker(self) -> None:
        self.stop_tap.set()
        if self.terminals is not None:
            await self.terminals.close()
        if self.runner is not None:
            await self.runner.close()
        process = self.broker_process
        if process is not None:
            timeout = getattr(self, "stop_timeout", 10.0)
            await asyncio.get_running_loop().run_in_executor(None, lambda: stop_process_group(process, timeout=timeout))

    # -- the tap -----------------------------------------------------------

    def tap_thread(self) -> None:
        loop = self.loop

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
                await asyncio.wait_for(self.arrived.wait(), timeout=FLUSH_EVERY_S)
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
                await asyncio.wait_for(self.snapshot_wanted.wait(), timeout=SNAPSHOT_EVERY_S)
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

    # -- the socket API ----------------------------------------------------

    def admits(self, request: dict[str, Any]) -> bool:
        """Whether the connection's first message carries this unit's token (always, without one)."""
        if not self.token:
            return True
        supplied = request.pop(protocol.TOKEN_FIELD, None)
        # Compared in constant time: the time taken tells nothing of how much of a guess was right.
        return isinstance(supplied, str) and hmac.compare_digest(supplied.encode(), self.token)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if self.token:
                # A peer on the network that connects and says nothing is not kept waiting on.
                request = await asyncio.wait_for(protocol.read_message(reader), protocol.FIRST_MESSAGE_S)
            else:
                request = await protocol.read_message(reader)
            if request is None:
                return
            if not self.admits(request):
                log.warning("connection refused: missing or wrong token, from %s", writer.get_extra_info("peername"))
                await protocol.send(writer, {"type": "error", "code": protocol.REFUSED, "message": "unauthorized"})
                return
            op = request.get("op")
            if op == "status":
                await protocol.send(writer, self.status())
            elif op == "watch":
                await self.serve_watch(writer, reader)
            elif op in ("run", "check"):
                await self.serve_run(request, reader, writer)
            elif op == "subscribe":
                await self.serve_subscribe(writer, reader)
            elif op == "terminal" and self.ready and self.terminals is not None:
                await self.terminals.serve(request, reader, writer)
            elif op == "node":
                await self.serve_node(request, writer)
            elif op == "console" and self.ready:
                await console.serve(request, writer, kind=self.kind, ports=self.ports)
            elif op == "shutdown":
                await protocol.send(writer, {"ok": True})
                self.done.set()
            else:
                await protocol.send(writer, {"type": "error", "message": f"unknown op {op!r}"})
        except (ConnectionResetError, BrokenPipeError, asyncio.IncompleteReadError, TimeoutError):
            pass
        except ValueError as exc:
            with contextlib.suppress(Exception):
                await protocol.send(writer, {"type": "error", "message": f"bad request: {exc}"})
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def serve_watch(self, writer: asyncio.StreamWriter, reader: asyncio.StreamReader) -> None:
        """The status now and at every change of stage, until the platform hangs up."""
        changes: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.watchers.add(changes)
        closed = asyncio.create_task(reader.read())  # completes when the platform hangs up
        ending = asyncio.create_task(self.done.wait())  # a shutdown must not wait for a watcher to hang up
        try:
            await protocol.send(writer, self.status())
            while True:
                change = asyncio.create_task(changes.get())
                await asyncio.wait({change, closed, ending}, return_when=asyncio.FIRST_COMPLETED)
                if not change.done():
                    change.cancel()
                    return
                await protocol.send(writer, change.result())
        finally:
            self.watchers.discard(changes)
            closed.cancel()
            ending.cancel()

    async def serve_run(self, request: dict[str, Any], reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.ready or self.runner is None:
            refusal = {
                "type": "exit",
                "status": -1,
                "reason": "not-ready",
                "duration_ms": 0,
                "truncated": False,
                "error": self.error or f"the broker is {self.stage}",
            }
            disk = self.disk_hint() if self.stage == "failed" else None
            if disk is not None:
                refusal["hint"] = disk
            await protocol.send(writer, refusal)
            return
        collected: list[str] = []
        check = request["op"] == "check"

        async def on_output(message: dict[str, Any]) -> None:
            if check:
                collected.append(message["text"])
            else:
                await protocol.send(writer, {"type": "output", **message})

        runner = self.runner

        async def watch_interrupt() -> None:
            while True:
                message = await protocol.read_message(reader)
                if message is None or message.get("op") == "interrupt":
                    runner.interrupt()
                    return

        watcher = asyncio.create_task(watch_interrupt())
        try:
            result = await self.runner.run(
                code=str(request.get("code", "")), timeout=float(request.get("timeout", 30)), on_output=on_output
            )
        finally:
            watcher.cancel()
            # What the cell did (a consumer gone with its connection, a group left) shows without waiting for the timer.
            self.snapshot_wanted.set()
        reply = {
            "type": "exit",
            "status": result.status,
            "reason": result.reason,
            "duration_ms": result.duration_ms,
            "truncated": result.truncated,
        }
        if result.hint is not None:
            reply["hint"] = result.hint
        # A full disk explains a blocked or refused producer better than the error the client library saw.
        disk = await asyncio.get_running_loop().run_in_executor(None, self.disk_hint)
        if disk is not None:
            reply["hint"] = disk
        if check:
            reply["output"] = "".join(collected)
        await protocol.send(writer, reply)

    async def serve_node(self, request: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        """Stop or start one node of the unit's broker (the topology panel's buttons), answering once it is done."""
        if not self.ready:
            await protocol.send(
                writer, {"type": "error", "code": "not-ready", "message": self.error or f"the broker is {self.stage}"}
            )
            return
        node, action = int(request.get("node", 0)), str(request.get("action", ""))

        def act() -> dict[str, Any]:
            return self.kind.node_action(host="localhost", ports=self.ports, node=node, action=action)

        try:
            result = await asyncio.get_running_loop().run_in_executor(None, act)
        except NodeActionRefused as refused:
            await protocol.send(writer, {"type": "error", "code": "refused", "message": str(refused)})
            return
        except BrokerUnavailable as exc:
            await protocol.send(writer, {"type": "error", "code": "unavailable", "message": str(exc)})
            return
        finally:
            self.snapshot_wanted.set()  # the panel shows the node go or come without waiting for the timer
        log.info("node %s %s", node, action)
        await protocol.send(writer, {"ok": True, **result})

    async def serve_subscribe(self, writer: asyncio.StreamWriter, reader: asyncio.StreamReader) -> None:
        subscriber = Subscriber()
        for event, weight in self.recent:
            subscriber.offer(event, weight)
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


def _take_back(data: Path) -> None:
    """Make the agent the owner of everything under ``data`` again (undoing :func:`_hand_over` of an earlier unit).

    With CAP_CHOWN and no CAP_DAC_*, a folder is taken before it is read: the walk goes top-down,
    so each folder is the agent's by the time it is listed. Links are changed themselves, never followed.
    """
    uid, gid = os.getuid(), os.getgid()
    os.chown(data, uid, gid)
    # As a fresh filesystem's root is (and as it stays until _hand_over closes it again): a kind's
    # prepare may hand the folder to its own account first and still needs to pass through it.
    data.chmod(0o755)
    for root, dirs, files in os.walk(data):
        for name in [*dirs, *files]:
            os.chown(os.path.join(root, name), uid, gid, follow_symlinks=False)


def _hand_over(data: Path, spec: LaunchSpec, default_user: str | int) -> LaunchSpec:
    """Give the broker's folder to the account it runs as (its kind's own, else ``default_user``), closed to cells.

    ``default_user`` is an account's name, or a bare uid (the process backend's unit of its own,
    with a group of the same number and no entry in /etc/passwd).

    Cells run as another uid and may neither read nor change the broker's files.
    The agent holds no CAP_FOWNER or CAP_DAC_*: only a file's owner may change its
    mode, so the folder is taken back and closed first, and handed over last; its
    group stays the agent's, which lets the agent (and the broker's start, which
    enters the folder before it changes uid) pass through. Links are changed
    themselves, never followed.
    """
    chosen = spec.user or default_user
    if isinstance(chosen, int):
        uid = gid = chosen
    else:
        account = pwd.getpwnam(chosen)
        uid, gid = account.pw_uid, account.pw_gid
    os.chown(data, os.getuid(), os.getgid())
    data.chmod(0o710)
    for root, dirs, files in os.walk(data, topdown=False):
        for name in [*dirs, *files]:
            os.chown(os.path.join(root, name), uid, gid, follow_symlinks=False)
    os.chown(data, uid, os.getgid())
    return dataclasses.replace(spec, user=chosen)
