"""A real broker per test module, run the way a unit runs it: in its own network namespace.

The broker is started by ``python -m sandboxes.brokers run`` inside a fresh
namespace (``ba-test-<kind>-<pid>``), which plays the agent: it prepares,
launches, waits for ready, taps and snapshots, printing JSON lines that the
fixture collects. Cells run as separate Python processes in the same namespace
with the connection variables, as learners' cells do. Namespace, processes and
folders are removed at the end, even after a failure.
"""

from __future__ import annotations

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

from sandboxes.brokers import get_broker

ROOT = Path(__file__).resolve().parents[2]


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


class BrokerUnderTest:
    """One broker in one namespace, and everything it has printed so far."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.ns = f"ba-test-{kind}-{os.getpid()}"
        self.dir = Path(tempfile.mkdtemp(prefix=f"ba-test-{kind}-"))
        self.dir.chmod(0o711)  # RabbitMQ drops root and must reach its data below
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
        self.proc = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                self.ns,
                sys.executable,
                "-m",
                "sandboxes.brokers",
                "run",
                self.kind,
                "--data-dir",
                str(self.dir / "data"),
                "--snapshot-every",
                "1",
                "--timeout",
                "120",
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            stderr=(self.dir / "cli.stderr").open("wb"),
            start_new_session=True,
        )
        threading.Thread(target=self._read, name=f"read-{self.kind}", daemon=True).start()
        first = self.wait_for(
            lambda line: line.get("stage") in ("ready", "failed"),
            timeout=150,
            what="ready or failed",
        )
        if first["stage"] == "failed":
            raise AssertionError(f"{self.kind} did not start: {first.get('why')}\n{first.get('log_tail')}")
        self.ready_s = first["ready_s"]
        self.env = first["env"]
        self.version = first.get("version")
        self.broker_pid = next(line["pid"] for line in self.lines if line.get("stage") == "waiting for broker")

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for raw in self.proc.stdout:
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()

    def stop(self) -> int:
        """SIGTERM to the agent stand-in, as the backend does; return its exit status."""
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
        """The first line printed so far or within ``timeout`` seconds that matches."""
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
        """The first snapshot (printed every second) that satisfies ``predicate``."""
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
