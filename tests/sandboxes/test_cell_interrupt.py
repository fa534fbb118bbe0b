"""An interrupt (or a page hanging up) stops its own run and no other, on a real NATS unit of the process backend.

Runs of a unit take turns. A page that hangs up, or interrupts, while its run still waits (for the
run before it, or for a new cell template importing its libraries) must not leave that run to
start later with nobody listening, and must not stop the run that is going on meanwhile.
"""

from __future__ import annotations

import asyncio

import pytest

from sandboxes import agent_client
from sandboxes.backends.process import ProcessBackend
from tests.aio import run
from tests.security.units import unit_running

pytestmark = [pytest.mark.integration]

MARK = "/tmp/interrupted-run-started"


async def quiet(_message) -> None:
    return None


def test_an_interrupted_waiting_run_never_starts_and_the_running_one_goes_on():
    with unit_running(ProcessBackend(), "nats") as unit:

        async def scenario():
            first = asyncio.create_task(
                agent_client.run(
                    unit.socket, code="import time\ntime.sleep(3)\nprint('first done')", timeout=30, on_message=quiet
                )
            )
            await asyncio.sleep(0.5)  # the first run holds the runner
            stop = asyncio.Event()
            code = f"open({MARK!r}, 'w').write('ran')\nimport time\ntime.sleep(30)"
            second = asyncio.create_task(agent_client.run(unit.socket, code=code, timeout=30, on_message=quiet, interrupt=stop))
            await asyncio.sleep(0.5)
            stop.set()  # while it waits for the first run
            return await asyncio.wait_for(first, 30), await asyncio.wait_for(second, 30)

        first, second = run(scenario())
        # The interrupt was the second run's: the first ran to its end.
        assert (first["status"], first["reason"]) == (0, None), first
        assert second["reason"] == "interrupted", second
        status, output, _ = unit.run(f"import os\nprint(os.path.exists({MARK!r}))")
        assert (status, output.strip()) == (0, "False"), output
