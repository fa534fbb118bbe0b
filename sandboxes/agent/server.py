"""The agent's socket API: it admits each connection and hands its request to the op's handler.

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
  {"op": "export"}                          -> the broker stops, {"type": "archive"} and its data as a gzipped tar
                                               to the end of the connection, then the agent exits (kept_data.py)
  {"op": "restore", "bytes"} + the archive  -> {"ok": true} or an error, to an agent started with --restore,
                                               before its broker's first start (kept_data.py)
  {"op": "terminal", "rows", "cols"}        -> the unit's shell on a pty, until closed (see agent/terminal.py)
  {"op": "console", "method", "target", ...} -> one HTTP request to the broker's web console (see agent/console.py)

The agent listens on a Unix socket in its unit's folder (process and docker backends: the
file's permissions keep others out) or on TCP (kubernetes: ``--listen HOST:PORT``). With a
token (``--token-file``) the first message of every connection must carry it in its
"token" field, compared in constant time; otherwise the answer is
{"type": "error", "code": "unauthorized"} and the connection is closed.

The handlers live by what they serve: ``watch`` and ``node`` in broker_ops.py (the broker, whose
life broker_supervisor.py runs), ``run`` and ``check`` in cell_ops.py, ``subscribe`` in fanout.py,
``terminal`` in terminal.py, ``console`` in console.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from pathlib import Path
from typing import Any

from sandboxes.brokers import get_broker
from sandboxes.brokers.base import BrokerLimits
from sandboxes.brokers.tap import broker_ready_mark

from . import broker_ops, cell_ops, console, kept_data, protocol
from .broker_supervisor import BrokerSupervisor
from .fanout import EventFanout

log = logging.getLogger("sandboxes.agent")

#: How long an agent started with --restore waits for its kept data before it gives up.
RESTORE_WITHIN_S = 300


class Agent:
    """One unit's agent: its broker (:class:`BrokerSupervisor`), its events (:class:`EventFanout`), and the socket."""

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
        restore: bool = False,
        socket_gid: int | None = None,
    ) -> None:
        self.unit_dir = unit_dir
        self.socket_gid = socket_gid
        # --restore: the broker's first start waits for its kept data (agent/kept_data.py).
        self.restored: asyncio.Event | None = asyncio.Event() if restore else None
        self.restore_error = ""
        self.listen = listen
        self.token = token.encode()
        self.done = asyncio.Event()
        kind = get_broker(broker)
        unit_ports = kind.ports(ports)
        self.broker = BrokerSupervisor(
            unit_dir=unit_dir,
            kind=kind,
            ports=unit_ports,
            # The backend's cap of the data folder; the broker's watermarks are set under it.
            limits=BrokerLimits(disk_mb=disk_mb) if disk_mb else BrokerLimits(),
            cell_uid=cell_uid,
            cells_cgroup=cells_cgroup,
            broker_user=broker_user,
            broker_uid=broker_uid,
            cell_confinement=cell_confinement,
        )
        self.events = EventFanout(kind=kind, ports=unit_ports, done=self.done)

    async def main(self) -> None:
        """Listen, start the broker, and serve until ``done``; then stop the tap and the broker."""
        loop = asyncio.get_running_loop()
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
            # Root's alone, or root's and the platform group's (an unprivileged web and worker): never a cell's.
            if self.socket_gid is None:
                os.chmod(sock, 0o600)
            else:
                os.chown(sock, -1, self.socket_gid)
                os.chmod(sock, 0o660)
        try:
            if self.restored is not None:
                await self._await_restore()
            await self.broker.start()
        except Exception as exc:  # any failure to start is reported, not raised: the platform reads it
            log.exception("broker did not start")
            self.broker.set_stage("failed", error=str(exc) or exc.__class__.__name__)
        if self.broker.ready:
            broker_ready_mark()
            threading.Thread(target=self.events.tap_thread, args=(loop,), name="tap", daemon=True).start()
            self.background = {
                loop.create_task(c) for c in (self.events.fanout(), self.events.snapshots(), self.broker.watch(self.done))
            }
        async with server:
            await self.done.wait()
        self.events.stop_tap.set()
        await self.broker.stop()

    async def _await_restore(self) -> None:
        assert self.restored is not None
        self.broker.set_stage("restoring")
        try:
            await asyncio.wait_for(self.restored.wait(), RESTORE_WITHIN_S)
        except TimeoutError:
            raise RuntimeError(f"the kept data did not arrive within {RESTORE_WITHIN_S} s") from None
        if self.restore_error:
            raise RuntimeError(self.restore_error)

    async def serve_restore(self, request: dict[str, Any], reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """The kept data this agent waits for (once: a second archive, or one after the start, is refused)."""
        if self.restored is None or self.restored.is_set():
            await protocol.send(writer, {"type": "error", "message": "this unit does not wait for kept data"})
            return
        try:
            await kept_data.receive_restore(request, reader, data=self.unit_dir / "data")
        except Exception as exc:  # whatever went wrong, the broker must not start on half of it, nor on nothing
            log.exception("kept data not restored")
            self.restore_error = str(exc) or exc.__class__.__name__
            await protocol.send(writer, {"type": "error", "message": self.restore_error})
        else:
            await protocol.send(writer, {"ok": True})
        finally:
            self.restored.set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        broker = self.broker
        try:
            request = await protocol.first_request(reader, writer, self.token)
            if request is None:
                return
            op = request.get("op")
            if op == "status":
                await protocol.send(writer, broker.status())
            elif op == "watch":
                await broker_ops.serve_watch(reader, writer, broker=broker, done=self.done)
            elif op in ("run", "check"):
                await cell_ops.serve_run(request, reader, writer, broker=broker, events=self.events)
            elif op == "subscribe":
                await self.events.serve_subscribe(writer, reader)
            elif op == "terminal" and broker.ready and broker.terminals is not None:
                await broker.terminals.serve(request, reader, writer)
            elif op == "node":
                await broker_ops.serve_node(request, writer, broker=broker, events=self.events)
            elif op == "console" and broker.ready:
                await console.serve(request, writer, kind=broker.kind, ports=broker.ports)
            elif op == "restore":
                await self.serve_restore(request, reader, writer)
            elif op == "export":
                await kept_data.serve_export(writer, broker=broker, done=self.done)
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
