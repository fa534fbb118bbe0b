"""The embedded default backend: each unit is a network namespace, two cgroups and a folder with a size cap.

The agent (and through it the broker and cells) runs inside the unit's own
network namespace, so a cell reaches its own broker on localhost and nothing
else: not another unit, not Redis, not the database, not the internet. The
platform talks to the agent over a Unix socket in the unit's folder. What the
broker stores lives on a filesystem of the unit's own with a hard size cap
(disks.py, SANDBOX_DISK_MB per broker kind), so a broker told to keep
everything fills that and not the host.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.checks import CheckMessage, Error

from sandboxes import agent_client
from sandboxes.agent.cells import UNIT_MARKER
from sandboxes.launcher.client import ThroughLauncher

from . import cgroups, disks
from .base import SandboxBackend, UnitSpec
from .unit_folders import UnitFolders

log = logging.getLogger(__name__)
PROJECT_ROOT = Path(__file__).resolve().parents[2]

NOT_ROOT = (
    "The process backend isolates each sandbox in its own network namespace and cgroups, which needs root. "
    "Start the unit launcher as root (python -m sandboxes.launcher; `make run` does) and run the platform as a "
    "member of its group (SANDBOX_PLATFORM_GROUP), or run the platform as root, or set "
    "SANDBOX_ALLOW_UNISOLATED=true to run brokers without isolation "
    "(development only: learners' code could then reach other local services)."
)
#: auto: isolated when root; netns: isolated or refused; none: side by side (needs SANDBOX_ALLOW_UNISOLATED).
ISOLATION_MODES = ("auto", "netns", "none")
UNISOLATED_WARNING = "sandbox units run WITHOUT isolation (SANDBOX_ALLOW_UNISOLATED): development use only"

#: Limits of a unit: everything (agent, broker, cells) and the cells alone.
#: How long the agent may take to daemonize: a class's burst of thirty starts at a load of 20+ took over 10 s.
AGENT_START_S = 30
#: While a unit starts, how often the backend checks that its agent has not exited (a scan of /proc).
AGENT_LOOK_S = 0.5
UNIT_MEMORY_MB = 1536
UNIT_PIDS = 2048
CELLS_MEMORY_MB = 768
CELLS_PIDS = 96
CELLS_CPUS = 1.0
NO_CGROUPS = (
    "The process backend cannot write the memory, pids and cpu cgroups it confines each sandbox with "
    "(/sys/fs/cgroup). It refuses to start a sandbox without them rather than run learners' code unconfined."
)


def _carries_marker(pid: int | str, marker: bytes) -> bool:
    try:
        return marker in Path("/proc", str(pid), "environ").read_bytes()
    except OSError:
        return False  # gone, or not ours to read


def _unit_marker(name: str) -> bytes:
    return f"{UNIT_MARKER}={name}".encode() + b"\0"


def _marked_processes(name: str) -> list[int]:
    """Pids whose environment names the unit (the agent passes it to the broker and to every cell)."""
    marker = _unit_marker(name)
    return [int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit() and _carries_marker(e.name, marker)]


class IsolationUnavailable(RuntimeError):
    pass


class AgentExited(RuntimeError):
    """The agent of a starting unit is gone before it was up."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=20)


def platform_gid() -> int | None:
    """The platform's group (SANDBOX_PLATFORM_GROUP), whose members open the agents' sockets; None if there is none."""
    import grp

    try:
        return grp.getgrnam(settings.SANDBOX_PLATFORM_GROUP).gr_gid
    except KeyError:
        return None


class ProcessUnits(UnitFolders, SandboxBackend):
    """The process backend's own work, done as root: in the unit launcher, or in a platform that runs as root."""

    def __init__(self) -> None:
        self.root = Path(settings.SANDBOX_ROOT)
        self.instance = settings.SANDBOX_INSTANCE

    @classmethod
    def check_settings(cls) -> list[CheckMessage]:
        """SANDBOX_ISOLATION is one of ISOLATION_MODES (sandboxes.E111): a misspelt mode must not mean "none"."""
        if settings.SANDBOX_ISOLATION not in ISOLATION_MODES:
            modes = ", ".join(ISOLATION_MODES)
            return [Error(f"SANDBOX_ISOLATION={settings.SANDBOX_ISOLATION!r}: must be one of {modes}", id="sandboxes.E111")]
        return []

    def isolated(self) -> bool:
        """Whether units get a network namespace and cgroups (root), or run side by side (explicitly allowed).

        SANDBOX_ISOLATION=none asks for the unisolated mode even as root (tests use it to prove it works).
        Without root and without SANDBOX_ALLOW_UNISOLATED the backend refuses, saying how to proceed.
        """
        wanted = settings.SANDBOX_ISOLATION
        if wanted == "netns" or (wanted == "auto" and os.geteuid() == 0):
            if os.geteuid() != 0:
                raise IsolationUnavailable(NOT_ROOT)
            return True
        if not settings.SANDBOX_ALLOW_UNISOLATED:
            raise IsolationUnavailable(NOT_ROOT)
        log.warning(UNISOLATED_WARNING)
        return False

    @staticmethod
    def _free_ports(broker: str) -> dict[str, int]:
        """Ports for a broker that shares the host's network: one free port per name it listens on."""
        import socket

        from sandboxes.brokers import get_broker

        chosen: dict[str, int] = {}
        holders = []
        for port_name in get_broker(broker).default_ports:
            holder = socket.socket()
            holder.bind(("127.0.0.1", 0))
            holders.append(holder)
            chosen[port_name] = holder.getsockname()[1]
        for holder in holders:
            holder.close()
        return chosen

    def _netns_exists(self, name: str) -> bool:
        return Path("/run/netns", name).exists()

    @staticmethod
    def cell_uid(name: str) -> int:
        """An unprivileged uid of the unit's own, so process limits count per unit."""
        return 200_000 + zlib.crc32(name.encode()) % 100_000

    @staticmethod
    def broker_uid(name: str) -> int:
        """The unit's broker's own uid: unprivileged, and another than its cells' (which may not touch its files)."""
        return 300_000 + zlib.crc32(name.encode()) % 100_000

    def _agent_pid(self, name: str) -> int | None:
        """The unit's live agent, confirmed by the unit's marker in its environment.

        agent.pid alone is not proof: after a reboot or a crash the number may belong to
        an unrelated process, which stop() would then kill.
        """
        with contextlib.suppress(OSError, ValueError):
            pid = int((self.unit_dir(name) / "agent.pid").read_text())
            stat = Path(f"/proc/{pid}/stat").read_text()
            if ") Z " not in stat and _carries_marker(pid, _unit_marker(name)):
                return pid
        return None

    def start(self, unit: UnitSpec) -> None:
        isolated = self.isolated()
        name = unit.name
        if self._agent_pid(name) is not None:
            return  # already running: starting is idempotent
        directory = self.unit_dir(name)
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o711)
        if isolated:
            if not self._netns_exists(name):
                _ip("netns", "add", name)
            _ip("-n", name, "link", "set", "lo", "up")
        cap_mb = disks.cap_mb(unit.broker)
        if isolated:
            # Before anything runs in the unit: its broker must never see the host's disk.
            restore = self.kept_path(unit.restore) if unit.restore else None
            try:
                disks.create(image=self.image_path(name), mount_point=disks.data_dir(directory), size_mb=cap_mb, restore=restore)
            except disks.DiskUnavailable:
                self.stop(name)  # refused, and nothing of it left behind (its folder, its network namespace)
                raise
        groups = cgroups.UnitCgroups(self.instance, name)
        use_cgroups = isolated
        if use_cgroups:
            if not cgroups.available():
                raise IsolationUnavailable(NO_CGROUPS)
            groups.create(
                memory_mb=UNIT_MEMORY_MB,
                pids=UNIT_PIDS,
                cells_memory_mb=CELLS_MEMORY_MB,
                cells_pids=CELLS_PIDS,
                cells_cpus=CELLS_CPUS,
            )
        # setsid -f detaches the agent from this worker: it outlives the task, and init reaps it.
        agent = [sys.executable, "-m", "sandboxes.agent", "--unit-dir", str(directory), "--broker", unit.broker]
        if isolated:
            argv = ["setsid", "-f", "ip", "netns", "exec", name, *agent, "--cell-uid", str(self.cell_uid(name))]
            argv += ["--broker-uid", str(self.broker_uid(name)), "--disk-mb", str(cap_mb)]
        else:
            argv = ["setsid", "-f", *agent, "--ports", json.dumps(self._free_ports(unit.broker))]
        if os.geteuid() == 0 and (gid := platform_gid()) is not None:
            argv += ["--socket-group", str(gid)]  # the agent runs as root: the platform's group opens its socket
        if use_cgroups:
            for procs in groups.procs_files("cells"):
                argv += ["--cells-cgroup", str(procs)]
        main_procs = groups.procs_files("main") if use_cgroups else []

        def join_unit() -> None:
            for procs in main_procs:
                procs.write_text(str(os.getpid()))

        env = {
            UNIT_MARKER: name,
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
                timeout=AGENT_START_S,
            )
        deadline = time.monotonic() + AGENT_START_S
        next_look = time.monotonic() + AGENT_LOOK_S
        while self._agent_pid(name) is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the sandbox agent did not start; see {directory / 'agent.log'}")
            if time.monotonic() > next_look:
                # setsid -f returned once the agent was forked: from then on some process carries the unit's
                # marker until the agent is up. None means it exited (a stop that came meanwhile killed it).
                if not _marked_processes(name) and self._agent_pid(name) is None:
                    raise AgentExited(f"the sandbox agent exited while starting; see {directory / 'agent.log'}")
                next_look = time.monotonic() + AGENT_LOOK_S
            time.sleep(0.02)
        log.info("unit started", extra={"unit": name, "broker": unit.broker, "pid": self._agent_pid(name)})

    def processes(self, name: str) -> list[int]:
        pids: set[int] = set(_marked_processes(name))
        if self._netns_exists(name):
            result = _ip("netns", "pids", name, check=False)
            pids.update(int(p) for p in result.stdout.split() if p.isdigit())
        pids.update(cgroups.UnitCgroups(self.instance, name).pids())
        agent = self._agent_pid(name)
        if agent is not None:
            pids.add(agent)
        return sorted(pids)

    def _end(self, name: str) -> None:
        """Everything of stopping but the unit's disk and folder: the agent (which stops the broker cleanly), stray
        processes, cgroups, network namespace."""
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

    def poll(self, name: str) -> int | None:
        if self._agent_pid(name) is not None:
            return None
        return -1

    def list_units(self) -> list[str]:
        names = self._folder_units()
        if Path("/run/netns").is_dir():
            names.update(p.name for p in Path("/run/netns").iterdir())
        names.update(cgroups.unit_names(self.instance))
        return sorted(n for n in names if self.owns(n))


class ProcessBackend(ThroughLauncher, ProcessUnits):
    """The embedded default backend. Root does the privileged work itself; the platform's unprivileged web and
    worker have the unit launcher do it (sandboxes/launcher), and reach the agents through their group."""

    def units_need_root(self) -> bool:
        return settings.SANDBOX_ISOLATION != "none"  # side by side, units need no privileges
