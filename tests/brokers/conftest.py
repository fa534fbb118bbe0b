"""A real broker per test module, run the way a unit runs it: by the sandbox agent, in its own network namespace.

The fixture starts the agent (``python -m sandboxes.agent``) inside a fresh
namespace (``ba-test-<kind>-<pid>``), as the process backend does: the agent
prepares, launches, waits for ready, taps and snapshots. The fixture reads its
stages from the unit's status file and subscribes on the agent's socket, keeping
every event and snapshot it sends as a line (``{"event": ...}``, ``{"snapshot": ...}``).
Cells run as separate Python processes in the same namespace with the
connection variables, as learners' cells do. Namespace, processes and folders
are removed at the end, even after a failure.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sandboxes import agent_client
from sandboxes.agent import protocol
from sandboxes.brokers import get_broker

ROOT = Path(__file__).resolve().parents[2]


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


class BrokerUnderTest:
    """One agent and its broker in one namespace, and every event and snapshot the agent has sent so far."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.ns = f"ba-test-{kind}-{os.getpid()}"
        self.dir = Path(tempfile.mkdtemp(prefix=f"ba-test-{kind}-"))
        self.dir.chmod(0o711)  # RabbitMQ drops root and must reach its data below
        self.unit = self.dir / "unit"
        self.lines: list[dict[str, Any]] = []
        self.cond = threading.Condition()
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready_s: float | None = None
        self.env: dict[str, str] = {}
        self.version: str | None = None  # as the running broker stated it when ready
        self.broker_pid: int | None = None

    # --- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        _ip("netns", "del", self.ns, check=False)  # a leftover of a killed run
        _ip("netns", "add", self.ns)
        _ip("netns", "exec", self.ns, "ip", "link", "set", "lo", "up")
        self.unit.mkdir(mode=0o711)
        with (self.dir / "agent.log").open("wb") as log:
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", self.ns, sys.executable, "-m", "sandboxes.agent", *self._agent_args()],
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        stages = self._stages(timeout=150)
        final = stages["ready"] if "ready" in stages else stages["failed"]
        if final["stage"] == "failed":
            raise AssertionError(f"{self.kind} did not start: {final['error']}\n{self._log_tail()}")
        # From the broker's launch (the agent says "waiting" right after it) to ready, as the status file stamps them.
        # A broker as quick as NATS can pass "waiting" between two looks at the status file: then
        # count from the stage seen before it ("starting", stamped just before the launch), a little more.
        launched = stages.get("waiting") or stages.get("starting") or min(stages.values(), key=lambda s: s["time"])
        self.ready_s = final["time"] - launched["time"]
        self.env = final["connection"]
        self.version = final.get("broker_version")
        self.broker_pid = self._broker_pid()
        threading.Thread(target=lambda: asyncio.run(self._follow()), name=f"follow-{self.kind}", daemon=True).start()
        # The agent sends its latest snapshot first (and keeps recent events for late subscribers).
        self.wait_for(lambda line: "snapshot" in line, timeout=30, what="the first snapshot")

    def _agent_args(self) -> list[str]:
        return ["--unit-dir", str(self.unit), "--broker", self.kind]

    def _stages(self, *, timeout: float) -> dict[str, dict[str, Any]]:
        """Every stage the agent's status file showed, by name, until it says ready or failed."""
        assert self.proc is not None
        seen: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + timeout
        while "ready" not in seen and "failed" not in seen:
            try:
                status = json.loads((self.unit / protocol.STATUS_NAME).read_text())
            except (FileNotFoundError, ValueError):  # not written yet, or being replaced
                status = None
            if status is not None:
                seen.setdefault(status["stage"], status)
            if self.proc.poll() is not None and "failed" not in seen:
                raise AssertionError(f"the {self.kind} agent exited with {self.proc.returncode}\n{self._log_tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.kind}: not ready within {timeout} s; stages {list(seen)}\n{self._log_tail()}")
            time.sleep(0.02)
        return seen

    def _log_tail(self) -> str:
        logs = [self.dir / "agent.log", self.unit / "broker.log"]
        return "\n".join(p.read_text(errors="replace")[-2000:] for p in logs if p.exists())

    def _broker_pid(self) -> int:
        """The broker's process: the agent's child that leads a session of its own and is not a Python cell."""
        assert self.proc is not None
        python = os.path.realpath(sys.executable)
        for pid in self.pids_in_namespace():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                exe = os.path.realpath(f"/proc/{pid}/exe")
            except (FileNotFoundError, ProcessLookupError):
                continue
            # A cluster's broker is a Python supervisor of its nodes (kafka_cluster/supervisor.py).
            supervisor = b"supervisor.py" in Path(f"/proc/{pid}/cmdline").read_bytes()
            if int(fields[1]) == self.proc.pid and int(fields[2]) == pid and (exe != python or supervisor):
                return pid
        raise AssertionError(f"no broker process under the {self.kind} agent")

    async def _follow(self) -> None:
        """Keep what the agent's subscription sends, as lines, until the agent goes."""
        try:
            async for message in agent_client.subscribe(self.unit / protocol.SOCKET_NAME):
                if message.get("type") == "events":
                    lines = [{"event": event} for event in message["events"]]
                    if message.get("dropped"):
                        lines.append({"dropped": message["dropped"]})
                elif message.get("type") == "snapshot":
                    lines = [{"snapshot": message["data"]}]
                else:
                    continue
                with self.cond:
                    self.lines += lines
                    self.cond.notify_all()
        except (agent_client.AgentUnavailable, ConnectionError):
            pass  # the agent stopped

    def stop(self) -> int:
        """SIGTERM to the agent, which stops the broker and its cells; return the agent's exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)

    def pids_in_namespace(self) -> list[int]:
        out = _ip("netns", "pids", self.ns, check=False).stdout
        return [int(p) for p in out.split()]

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.stop()
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        # Whatever is still in the namespace was started by this fixture.
        for pid in self.pids_in_namespace():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _ip("netns", "del", self.ns, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- observing ---------------------------------------------------------------------

    def wait_for(
        self,
        predicate: Callable[[dict[str, Any]], bool],
        *,
        timeout: float = 15,
        what: str = "",
    ) -> dict[str, Any]:
        """The first line kept so far or within ``timeout`` seconds that matches."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self.cond:
            while True:
                for line in self.lines[seen:]:
                    if predicate(line):
                        return line
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"{self.kind}: no line matching {what or predicate} within {timeout} s; last lines:\n"
                        + "\n".join(json.dumps(x)[:300] for x in self.lines[-15:])
                    )
                self.cond.wait(left)

    def event(self, *, timeout: float = 15, **fields: Any) -> dict[str, Any]:
        """The first tapped event whose fields (``detail__group`` for detail["group"]) equal ``fields``."""

        def match(line: dict[str, Any]) -> bool:
            event = line.get("event")
            if event is None:
                return False
            for key, value in fields.items():
                outer, _, inner = key.partition("__")
                got = event.get(outer)
                if inner:
                    got = (got or {}).get(inner)
                if got != value:
                    return False
            return True

        return self.wait_for(match, timeout=timeout, what=f"event {fields}")["event"]

    def events(self, **fields: Any) -> list[dict[str, Any]]:
        with self.cond:
            lines = list(self.lines)
        return [line["event"] for line in lines if "event" in line and all(line["event"].get(k) == v for k, v in fields.items())]

    def snapshot(self, predicate: Callable[[dict[str, Any]], bool], *, timeout: float = 15) -> dict[str, Any]:
        """The first snapshot (the agent sends one whenever the topology changes) that satisfies ``predicate``."""
        return self.wait_for(
            lambda line: bool(line.get("snapshot")) and predicate(line["snapshot"]),
            timeout=timeout,
            what="snapshot",
        )["snapshot"]

    # --- acting ------------------------------------------------------------------------

    def cell(self, code: str, *, timeout: float = 60) -> str:
        """Run ``code`` as a learner's cell: a fresh Python in the namespace with the connection variables."""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "PYTHONPATH": str(ROOT),
            **self.env,
        }
        result = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                self.ns,
                sys.executable,
                "-c",
                textwrap.dedent(code),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert result.returncode == 0, f"cell failed ({result.returncode}):\n{result.stderr[-3000:]}"
        return result.stdout

    def rss_mb(self) -> float:
        """Resident memory of the broker's process group (not the tap), in MiB."""
        assert self.broker_pid is not None
        total = 0
        for pid in self.pids_in_namespace():
            try:
                if os.getpgid(pid) != self.broker_pid:
                    continue
                for row in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if row.startswith("VmRSS:"):
                        total += int(row.split()[1])
            except (ProcessLookupError, FileNotFoundError):
                pass
        return total / 1024


@pytest.fixture(scope="module")
def broker(request: pytest.FixtureRequest) -> Iterator[BrokerUnderTest]:
    """The module's broker (``KIND`` at the top of the test module), shared by its tests."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("broker tests need root and iproute2 to create network namespaces")
    kind = request.module.KIND
    problems = get_broker(kind).missing()
    if problems:
        pytest.fail(f"{kind} is not installed: " + "; ".join(problems))
    under_test = BrokerUnderTest(kind)
    try:
        under_test.start()
        yield under_test
    finally:
        under_test.cleanup()
