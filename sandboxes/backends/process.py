"""The embedded default backend: each unit is a network namespace, two cgroups and a folder.

The agent (and through it the broker and cells) runs inside the unit's own
network namespace, so a cell reaches its own broker on localhost and nothing
else: not another unit, not Redis, not the database, not the internet. The
platform talks to the agent over a Unix socket in the unit's folder.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

from asgiref.sync import async_to_sync
from django.conf import settings

from sandboxes import agent_client
from sandboxes.agent import protocol

from . import cgroups
from .base import SandboxBackend, UnitSpec

log = logging.getLogger(__name__)
PROJECT_ROOT = Path(__file__).resolve().parents[2]

NOT_ROOT = (
    "The process backend isolates each sandbox in its own network namespace, which needs root. "
    "Run the platform as root, or set SANDBOX_ALLOW_UNISOLATED=true to run brokers without isolation "
    "(development only: learners' code could then reach other local services)."
)
UNISOLATED_UNSUPPORTED = "SANDBOX_ALLOW_UNISOLATED is set, but unisolated units are not implemented yet; run as root."

#: Limits of a unit: everything (agent, broker, cells) and the cells alone.
UNIT_MEMORY_MB = 1536
UNIT_PIDS = 2048
CELLS_MEMORY_MB = 768
CELLS_PIDS = 96


class IsolationUnavailable(RuntimeError):
    pass


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=20)


class ProcessBackend(SandboxBackend):
    def __init__(self) -> None:
        self.root = Path(settings.SANDBOX_ROOT)
        self.instance = settings.SANDBOX_INSTANCE

    def _require_isolation(self) -> None:
        if os.geteuid() != 0:
            raise IsolationUnavailable(UNISOLATED_UNSUPPORTED if settings.SANDBOX_ALLOW_UNISOLATED else NOT_ROOT)

    def unit_dir(self, name: str) -> Path:
        return self.root / name

    def socket_path(self, name: str) -> Path:
        return self.unit_dir(name) / protocol.SOCKET_NAME

    def _netns_exists(self, name: str) -> bool:
        return Path("/run/netns", name).exists()

    @staticmethod
    def cell_uid(name: str) -> int:
        """An unprivileged uid of the unit's own, so process limits count per unit."""
        return 200_000 + zlib.crc32(name.encode()) % 100_000

    def _agent_pid(self, name: str) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            pid = int((self.unit_dir(name) / "agent.pid").read_text())
            os.kill(pid, 0)
            stat = Path(f"/proc/{pid}/stat").read_text()
            if ") Z " not in stat:
                return pid
        return None

    def start(self, unit: UnitSpec) -> None:
        self._require_isolation()
        name = unit.name
        if self._agent_pid(name) is not None:
            return  # already running: starting is idempotent
        directory = self.unit_dir(name)
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o711)
        if not self._netns_exists(name):
            _ip("netns", "add", name)
        _ip("-n", name, "link", "set", "lo", "up")
        groups = cgroups.UnitCgroups(self.instance, name)
        use_cgroups = cgroups.available()
        if use_cgroups:
            groups.create(memory_mb=UNIT_MEMORY_MB, pids=UNIT_PIDS, cells_memory_mb=CELLS_MEMORY_MB, cells_pids=CELLS_PIDS)
        # setsid -f detaches the agent from this worker: it outlives the task, and init reaps it.
        argv = [
            "setsid",
            "-f",
            "ip",
            "netns",
            "exec",
            name,
            sys.executable,
            "-m",
            "sandboxes.agent",
            "--unit-dir",
            str(directory),
            "--broker",
            unit.broker,
            "--cell-uid",
            str(self.cell_uid(name)),
        ]
        if use_cgroups:
            for procs in groups.procs_files("cells"):
                argv += ["--cells-cgroup", str(procs)]
        main_procs = groups.procs_files("main") if use_cgroups else []

        def join_unit() -> None:
            for procs in main_procs:
                procs.write_text(str(os.getpid()))

        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": str(PROJECT_ROOT),
            "LANG": "C.UTF-8",
            "BROKER_ACADEMY_CACHE": os.environ.get("BROKER_ACADEMY_CACHE", str(Path.home() / ".cache" / "broker-academy")),
        }
        for key in ("KAFKA_HOME", "KAFKA_LIBS", "JAVA_HOME"):
            if key in os.environ:
                env[key] = os.environ[key]
        with contextlib.suppress(FileNotFoundError):
            (directory / "agent.pid").unlink()
        with (directory / "agent.log").open("ab") as out:
            subprocess.run(
                argv,
                cwd=PROJECT_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=join_unit,
                close_fds=True,
                check=True,
                timeout=10,
            )
        deadline = time.monotonic() + 10
        while self._agent_pid(name) is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the sandbox agent did not start; see {directory / 'agent.log'}")
            time.sleep(0.02)
        log.info("unit started", extra={"unit": name, "broker": unit.broker, "pid": self._agent_pid(name)})

    def processes(self, name: str) -> list[int]:
        pids: set[int] = set()
        if self._netns_exists(name):
            result = _ip("netns", "pids", name, check=False)
            pids.update(int(p) for p in result.stdout.split() if p.isdigit())
        pids.update(cgroups.UnitCgroups(self.instance, name).pids())
        agent = self._agent_pid(name)
        if agent is not None:
            pids.add(agent)
        return sorted(pids)

    def stop(self, name: str) -> None:
        socket = self.socket_path(name)
        agent = self._agent_pid(name)
        if agent is not None and socket.exists():
            with contextlib.suppress(Exception):
                async_to_sync(agent_client.shutdown)(socket)
            deadline = time.monotonic() + 15
            while self._agent_pid(name) is not None and time.monotonic() < deadline:
                time.sleep(0.1)
        deadline = time.monotonic() + 15
        while (pids := self.processes(name)) and time.monotonic() < deadline:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
        groups = cgroups.UnitCgroups(self.instance, name)
        groups.kill_all()
        groups.remove()
        if self._netns_exists(name):
            _ip("netns", "del", name, check=False)
        shutil.rmtree(self.unit_dir(name), ignore_errors=True)
        log.info("unit stopped", extra={"unit": name})

    def poll(self, name: str) -> int | None:
        if self._agent_pid(name) is not None:
            return None
        return -1

    def owns(self, name: str) -> bool:
        """Units are named <instance>-<sandbox id>; anything else on the host is not ours to touch."""
        instance, _, number = name.rpartition("-")
        return instance == self.instance and number.isdigit()

    def list_units(self) -> list[str]:
        names: set[str] = set()
        if self.root.is_dir():
            names.update(p.name for p in self.root.iterdir() if p.is_dir())
        if Path("/run/netns").is_dir():
            names.update(p.name for p in Path("/run/netns").iterdir())
        names.update(cgroups.unit_names(self.instance))
        return sorted(n for n in names if self.owns(n))
