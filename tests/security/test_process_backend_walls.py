"""The process backend's walls: a CPU share per unit, confinement that fails closed, kills only what is its own."""

from __future__ import annotations

import os
import statistics
import subprocess
import threading
from pathlib import Path

import pytest

from sandboxes.backends import cgroups
from sandboxes.backends.base import UnitSpec
from sandboxes.backends.process import NO_CGROUPS, IsolationUnavailable, ProcessBackend
from tests.security.units import Unit

pytestmark = [pytest.mark.integration]

SPIN = """
import multiprocessing, time
def spin():
    end = time.time() + 25
    while time.time() < end:
        pass
procs = [multiprocessing.Process(target=spin) for _ in range(4)]
[p.start() for p in procs]
[p.join() for p in procs]
print("spun")
"""


# A cell that needs the CPU for a moment (about 0.2 s alone): what a neighbour's busy loops would steal.
WORK = "print(sum(i * i for i in range(1_500_000)))"


def _round_trips(unit: Unit, n: int) -> list[float]:
    times = []
    for _ in range(n):
        status, output, seconds = unit.run(WORK)
        assert status == 0, output
        times.append(seconds)
    return times


AUTOGROUP = Path("/proc/sys/kernel/sched_autogroup_enabled")


@pytest.fixture
def no_autogroup():
    """The kernel's autogroup already shares CPU per session on this host; many hosts run without it.

    The measurement turns it off, so what it sees is the units' own cgroups and not a kernel default.
    """
    before = AUTOGROUP.read_text() if AUTOGROUP.exists() else None
    if before is not None:
        AUTOGROUP.write_text("0")
    yield
    if before is not None:
        AUTOGROUP.write_text(before)


@pytest.mark.alone  # a ratio of round trips on two cores: the other worker's load would be in it
def test_busy_loops_in_one_unit_leave_another_units_cell_within_2x(units_cleanup, no_autogroup):
    backend = ProcessBackend()
    busy, calm = Unit(backend, "nats"), Unit(backend, "nats")
    try:
        before = statistics.median(_round_trips(calm, 7))
        spinner = threading.Thread(target=busy.run, args=(SPIN,), kwargs={"timeout": 40})
        spinner.start()
        # Let the four spinners get going, then measure while they run.
        calm.run("import time; time.sleep(2)")
        during = statistics.median(_round_trips(calm, 7))
        spinner.join()
        print(
            f"round trip before {before * 1000:.1f} ms, during four busy loops next door {during * 1000:.1f} ms ({during / before:.2f}x)"
        )
        assert during <= 2 * before, f"{during * 1000:.1f} ms with a neighbour spinning vs {before * 1000:.1f} ms alone"
    finally:
        busy.stop()
        calm.stop()


def test_a_unit_is_refused_when_its_cgroups_cannot_be_made(monkeypatch, units_cleanup):
    monkeypatch.setattr(cgroups, "available", lambda: False)
    backend = ProcessBackend()
    with pytest.raises(IsolationUnavailable, match="cgroups"):
        backend.start(UnitSpec(name=f"{backend.instance}-699001", broker="nats"))
    assert not backend.socket_path(f"{backend.instance}-699001").exists()
    assert "refuses to start a sandbox without them" in NO_CGROUPS


def test_stop_never_kills_a_process_a_stale_agent_pid_names(units_cleanup):
    """After a reboot agent.pid may name a stranger; stop() must leave it alive."""
    backend = ProcessBackend()
    name = f"{backend.instance}-699002"
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        backend.unit_dir(name).mkdir(parents=True)
        (backend.unit_dir(name) / "agent.pid").write_text(str(stranger.pid))
        assert backend.poll(name) == -1
        backend.stop(name)
        assert stranger.poll() is None, "stop() killed a process that was not the unit's"
        os.kill(stranger.pid, 0)
    finally:
        stranger.kill()
        stranger.wait()
