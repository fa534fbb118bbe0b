"""The unit's broker under its agent: prepared, started, probed until ready, watched, and stopped; and its stage.

Every change of stage is written to the unit's status file (protocol.STATUS_NAME) and sent
to each watcher (the ``watch`` op), so the platform is told of ready or failed without asking.
Once the broker is ready, the cell runner and the terminals are made with its connection settings, the
broker's command-line tools (one folder for both) and, under bubblewrap, the unit's one /tmp (agent/mounts.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from sandboxes.brokers.base import BrokerKind, BrokerLimits, Site, stop_process_group

from . import fail_closed, mounts, protocol
from .capped_log import capped_log, log_tail
from .cells import UNIT_MARKER, CellLimits, CellRunner
from .confinement import TMP_BYTES, checker_uid_for
from .data_ownership import hand_over, take_back
from .terminal import Terminals, write_tools

log = logging.getLogger("sandboxes.agent")

#: A disk this close to the broker's watermark counts as full: RabbitMQ's own check lags its writes.
DISK_MARGIN_MB = 4
#: How long the broker may take from its start to its first ready probe.
READY_WITHIN_S = 120


class BrokerSupervisor:
    """The unit's one broker and what depends on it being ready (the cell runner, the terminals)."""

    def __init__(
        self,
        *,
        unit_dir: Path,
        kind: BrokerKind,
        ports: dict[str, int],
        limits: BrokerLimits,
        cell_uid: int | None,
        cells_cgroup: list[Path],
        broker_user: str | None,
        broker_uid: int | None,
        cell_confinement: str,
    ) -> None:
        self.unit_dir = unit_dir
        self.kind = kind
        self.ports = ports
        self.limits = limits
        self.cell_uid = cell_uid
        self.cells_cgroup = cells_cgroup
        self.broker_user = broker_user
        self.broker_uid = broker_uid
        self.cell_confinement = cell_confinement
        self.stage = "starting agent"
        self.error = ""
        self.connection: dict[str, str] = {}
        self.broker_version: str | None = None  # as the running broker states it, once ready
        self.ready = False
        self.stopping = False
        self.broker_process: subprocess.Popen[bytes] | None = None
        self.stop_timeout = 10.0  # the kind's own once its launch is known
        self.runner: CellRunner | None = None
        self.terminals: Terminals | None = None
        self.watchers: set[asyncio.Queue[dict[str, Any]]] = set()

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

    def not_ready(self) -> str:
        """Why a request that needs the broker cannot be served now."""
        return self.error or f"the broker is {self.stage}"

    async def start(self) -> None:
        """Prepare, start and wait for the broker, then make the cell runner and the terminals; raise when it fails."""
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
        cells_tmp = None
        if self.cell_confinement == "bwrap" and self.cell_uid is not None:
            # One /tmp for the unit's cells and terminal (a container's own /tmp plays this part under setpriv).
            cells_tmp = await loop.run_in_executor(None, lambda: mounts.make_cells_tmp(self.unit_dir, size_bytes=TMP_BYTES))
        missing = self.kind.missing()
        if missing:
            raise RuntimeError("; ".join(missing))
        self.set_stage("preparing")
        data = self.unit_dir / "data"
        data.mkdir(exist_ok=True)
        if self.broker_user is not None and os.geteuid() == 0:
            # Kept data from an earlier unit is still handed over to its broker: take it back to rewrite the configuration.
            await loop.run_in_executor(None, lambda: take_back(data))
        site = Site(data_dir=data, ports=self.ports, limits=self.limits)
        await loop.run_in_executor(None, lambda: self.kind.prepare(site=site))
        self.set_stage("starting")
        spec = self.kind.launch(site=site)
        # Every process of the unit carries its name, so a backend without namespaces or cgroups can find them all.
        spec = dataclasses.replace(spec, env={**spec.env, UNIT_MARKER: self.unit_dir.name})
        if broker_account is not None and os.geteuid() == 0:
            if self.broker_uid is not None:
                # The process backend's unit: its broker runs as the unit's own uid, whatever account its kind
                # names. RabbitMQ's (Debian's `rabbitmq`) would be shared by every unit: one unit's broker could
                # then signal another's and open its files.
                spec = dataclasses.replace(spec, user=None)
            spec = await loop.run_in_executor(None, lambda: hand_over(data, spec, broker_account))
        broker_log = self.unit_dir / "broker.log"
        sink, copier = capped_log(broker_log)
        try:
            process = self.broker_process = spec.start(stdout=sink)
        finally:
            os.close(sink)  # the broker holds it now: the copier ends when the broker (and what it forked) exits
        self.stop_timeout = spec.stop_timeout
        self.set_stage("waiting")
        deadline = time.monotonic() + READY_WITHIN_S
        while True:
            if process.poll() is not None:
                copier.join(timeout=1)  # its last words copied (a helper it forked may hold the pipe a while)
                tail = log_tail(broker_log)
                raise RuntimeError(f"the broker exited with status {process.returncode}: {tail}")
            ready = await loop.run_in_executor(None, lambda: self.kind.probe_ready(host="localhost", ports=self.ports))
            if ready:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the broker did not become ready within {READY_WITHIN_S} s")
            await asyncio.sleep(0.1)
        self.connection = self.kind.connection_env(host="localhost", ports=self.ports)
        self.broker_version = await loop.run_in_executor(
            None, lambda: self.kind.broker_version(host="localhost", ports=self.ports)
        )
        tools = self.unit_dir / "tools"
        seen = await loop.run_in_executor(None, lambda: write_tools(tools, broker=self.kind.name, connection=self.connection))
        self.runner = CellRunner(
            env={**self.connection, UNIT_MARKER: self.unit_dir.name},
            limits=CellLimits(),
            uid=self.cell_uid,
            checker_uid=checker_uid_for(self.cell_uid) if os.geteuid() == 0 else None,
            cgroup_procs=self.cells_cgroup,
            confinement=self.cell_confinement,
            tmp=cells_tmp,
            tools=tools,
            read_only=seen,
            preload=self.kind.cell_preload,
        )
        await self.runner.prewarm()
        self.terminals = Terminals(runner=self.runner)
        self.ready = True
        self.set_stage("ready")

    async def watch(self, done: asyncio.Event) -> None:
        """Until ``done``: a broker that exits makes the stage "failed", saying why (a full disk, when it is)."""
        while not done.is_set():
            if self.broker_process is not None and not self.stopping and self.broker_process.poll() is not None:
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

    async def stop(self) -> None:
        """Close the terminals and the cell runner, then stop the broker's process group (again: harmless)."""
        self.stopping = True  # the broker's exit from here on is ours, not a failure to report
        self.ready = False
        if self.terminals is not None:
            await self.terminals.close()
        if self.runner is not None:
            await self.runner.close()
        process = self.broker_process
        if process is not None:
            timeout = self.stop_timeout
            await asyncio.get_running_loop().run_in_executor(None, lambda: stop_process_group(process, timeout=timeout))
