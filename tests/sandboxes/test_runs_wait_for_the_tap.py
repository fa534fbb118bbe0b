"""A run after the broker's start waits for its tap to watch: a firehose or a subscription has no past.

The agent marks its broker ready and only then starts the tap's thread; RabbitMQ's tap binds its queue
to the firehose and NATS's subscribes in that thread, seconds later on a busy machine. A cell that
published in between was lost to the page (seen once: 5 of 6 messages in the panel).
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from sandboxes.agent import cells
from sandboxes.agent.cells import CellRunner
from sandboxes.agent.confinement import CellLimits
from sandboxes.brokers import tap as tap_base

STAMP = "import time\nprint(f'started at {time.time():.6f}')\n"


@pytest.fixture
def broker_marked_ready(monkeypatch):
    """This process as an agent whose broker is ready and whose tap does not watch yet."""
    monkeypatch.setattr(tap_base, "_watching", threading.Event())
    monkeypatch.setattr(tap_base, "_ready_at_ms", int(time.time() * 1000))


def run_stamp() -> tuple[int, float]:
    """Run the cell that prints when it started; its status and that time."""
    out: list[str] = []

    async def collect(message: dict) -> None:
        out.append(str(message.get("text", "")))

    async def main() -> int:
        runner = CellRunner(env={}, limits=CellLimits(), uid=None, cgroup_procs=[])
        result = await runner.run(code=STAMP, timeout=30, on_output=collect)
        await asyncio.gather(*(t for t in asyncio.all_tasks() if t is not asyncio.current_task()))  # the next run's prewarm
        await runner.close()
        return result.status

    status = asyncio.run(main())
    text = "".join(out)
    assert "started at" in text, text
    return status, float(text.split("started at ")[1].split()[0])


def test_a_run_starts_only_once_the_tap_watches(broker_marked_ready):
    watching_at: list[float] = []

    def tap_binds_late() -> None:
        time.sleep(1.0)
        watching_at.append(time.time())
        tap_base.tap_watching_mark()

    threading.Thread(target=tap_binds_late, daemon=True).start()
    status, started = run_stamp()
    assert status == 0
    assert watching_at, "the run ended before the tap watched"
    assert started >= watching_at[0], f"the cell ran {watching_at[0] - started:.3f} s before the tap watched"


def test_a_tap_that_never_watches_holds_a_run_only_a_few_seconds(broker_marked_ready, monkeypatch):
    monkeypatch.setattr(cells, "TAP_WAIT_S", 0.5)
    began = time.time()
    status, started = run_stamp()
    assert status == 0
    assert 0.4 <= started - began < 10, started - began


def test_a_runner_outside_an_agent_does_not_wait(monkeypatch):
    monkeypatch.setattr(tap_base, "_watching", threading.Event())
    monkeypatch.setattr(tap_base, "_ready_at_ms", None)
    began = time.time()
    status, started = run_stamp()
    assert status == 0
    assert started - began < cells.TAP_WAIT_S, started - began
