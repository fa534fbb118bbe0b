"""Make Kafka's class-data archive (class_archive.py): ``python -m sandboxes.brokers.class_archive_make``.

``make install`` runs it. As root it starts one Kafka through the agent, in a network namespace of
its own as a unit is started, stops the broker cleanly once it is ready (the JVM writes the archive
as it exits) and puts the archive beside the jars, readable by every unit. Does nothing when the
archive for this JVM and these jars is there. Without root, or when anything fails, it says why and
exits 0: a broker without an archive only starts slower.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sandboxes.agent import protocol
from sandboxes.brokers.class_archive import DUMP_VARIABLE, archive_path
from sandboxes.brokers.jvm import java_binary
from sandboxes.brokers.kafka.kind import Kafka

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 180
EXIT_TIMEOUT_S = 60


def _java_pids(marker: str) -> list[int]:
    """The JVMs whose command line names ``marker`` (the unit's folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if (entry / "comm").read_text().strip() == "java" and marker in (entry / "cmdline").read_bytes().decode(
                errors="replace"
            ):
                found.append(int(entry.name))
    return found


def _status(unit: Path) -> dict:
    try:
        return json.loads((unit / protocol.STATUS_NAME).read_text())
    except (OSError, ValueError):
        return {}


def make(target: Path) -> str:
    """Run Kafka once with the dump option; the archive ends at ``target``. Returns what went wrong, or ''."""
    namespace = f"ba-class-archive-{os.getpid()}"
    work = Path(tempfile.mkdtemp(prefix="ba-class-archive-"))
    work.chmod(0o711)
    unit, dumps = work / "unit", work / "dumps"
    unit.mkdir(mode=0o711)
    dumps.mkdir(mode=0o777)  # the broker's own uid writes the archive
    dumps.chmod(0o777)
    dump = dumps / "kafka.jsa"
    agent = None
    try:
        subprocess.run(["ip", "netns", "add", namespace], check=True, capture_output=True)
        subprocess.run(["ip", "-n", namespace, "link", "set", "lo", "up"], check=True, capture_output=True)
        with (work / "agent.log").open("wb") as log:
            agent_argv = [sys.executable, "-m", "sandboxes.agent", "--unit-dir", str(unit), "--broker", "kafka"]
            agent = subprocess.Popen(
                ["ip", "netns", "exec", namespace, *agent_argv],
                cwd=ROOT,
                env={**os.environ, DUMP_VARIABLE: str(dump), "PYTHONPATH": str(ROOT)},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while _status(unit).get("stage") not in ("ready", "failed") and time.monotonic() < deadline:
            time.sleep(0.1)
        if _status(unit).get("stage") != "ready":
            return f"Kafka did not become ready: {_status(unit).get('error') or 'timeout'}"
        dump.unlink(missing_ok=True)  # the storage format's JVM wrote one too: the broker's is the one wanted
        for pid in _java_pids(str(unit)):
            os.kill(pid, signal.SIGTERM)  # a clean stop: the JVM writes the archive as it exits
        deadline = time.monotonic() + EXIT_TIMEOUT_S
        while _java_pids(str(unit)) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not dump.is_file():
            return "the broker's JVM wrote no archive as it stopped"
        partial = target.with_suffix(".partial")
        shutil.copyfile(dump, partial)
        partial.chmod(0o644)
        partial.replace(target)
        return ""
    finally:
        if agent is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(agent.pid, signal.SIGKILL)
            agent.wait()
        subprocess.run(["ip", "netns", "del", namespace], check=False, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    java = java_binary()
    if java is None or Kafka().missing_jars():
        print("class archive: no java or no Kafka jars yet; Kafka starts without one", file=sys.stderr)
        return 0
    target = archive_path(Kafka().libs(), java)
    if target.is_file():
        return 0
    if os.geteuid() != 0 or shutil.which("ip") is None:
        print("class archive: making one needs root and iproute2; Kafka starts without one", file=sys.stderr)
        return 0
    for stale in target.parent.glob("broker-academy-classes-*.jsa"):
        stale.unlink()  # of another JVM or other jars
    started = time.monotonic()
    problem = make(target)
    if problem:
        print(f"class archive: {problem}; Kafka starts without one", file=sys.stderr)
    else:
        print(f"==> Kafka's class archive made in {time.monotonic() - started:.0f} s: {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
