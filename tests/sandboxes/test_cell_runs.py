"""sandboxes.cell_runs against a real broker and Redis: a chapter's setup runs once per broker life,
however many runs ask at once, and a failed setup keeps the cell from running."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import timedelta
from typing import Any

import pytest

from lessons.selectors import RunnableCode, SetupCode
from sandboxes import cell_runs
from sandboxes.models import Purpose, Sandbox, State
from sandboxes.services import provisioning
from tests.aio import run

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PREPARE = SetupCode("prepare", "import time\ntime.sleep(1)\nprint('prepared')", 30, "course/chapter")
BROKEN = SetupCode("broken", "print('half way')\nraise SystemExit(3)", 30, "course/chapter")


def test_a_setup_runs_once_per_broker_life_and_a_failed_one_stops_the_cell(units_cleanup):
    record = Sandbox.objects.create(purpose=Purpose.VERIFY, broker="nats", state=State.REQUESTED, stage="requested")
    sandbox = provisioning.sandbox_provision(sandbox_id=record.pk)
    assert sandbox.state == State.READY, sandbox.error
    heard: list[tuple[str, str]] = []  # (setup key or "cell", start | output | exit), in order
    printed: defaultdict[str, str] = defaultdict(str)

    async def on_setup(setup: cell_runs.Setup, message: dict[str, Any]) -> None:
        heard.append((setup.key, str(message.get("type"))))
        printed[setup.key] += str(message.get("text", ""))

    async def on_output(message: dict[str, Any]) -> None:
        heard.append(("cell", "output"))
        printed["cell"] += str(message.get("text", ""))

    def cell(*setups: SetupCode) -> RunnableCode:
        return RunnableCode("nats", "print('cell ran')", 30, setups=setups)

    def run_cell(*setups: SetupCode) -> dict[str, Any]:
        return run(cell_runs.cell_run(sandbox=sandbox, cell=cell(*setups), on_output=on_output, on_setup=on_setup))

    async def twice() -> list[dict[str, Any]]:
        return list(
            await asyncio.gather(
                *(cell_runs.cell_run(sandbox=sandbox, cell=cell(PREPARE), on_output=on_output, on_setup=on_setup) for _ in "ab")
            )
        )

    # Two runs at once (two tabs): the setup runs once, both cells after it.
    assert [r["status"] for r in run(twice())] == [0, 0]
    assert heard.count(("prepare", "start")) == 1
    assert heard.index(("prepare", "exit")) < heard.index(("cell", "output"))
    assert printed == {"prepare": "prepared\n", "cell": "cell ran\ncell ran\n"}
    assert run(cell_runs.setup_ran(sandbox=sandbox, setup=PREPARE))

    # Later runs on the same broker do not run it again.
    heard.clear()
    run_cell(PREPARE)
    assert {key for key, _ in heard} == {"cell"}

    # A new life of the broker (a reset makes a new unit that becomes ready later): it runs again.
    assert sandbox.ready_at is not None
    sandbox.ready_at += timedelta(seconds=1)
    assert not run(cell_runs.setup_ran(sandbox=sandbox, setup=PREPARE))
    heard.clear()
    run_cell(PREPARE)
    assert heard[0] == ("prepare", "start")

    # A failed setup: the cell does not run, the error names the setup, and the next run tries again.
    heard.clear()
    printed.clear()
    with pytest.raises(cell_runs.SetupFailed) as failed:
        run_cell(BROKEN)
    assert "«broken»: код завершения 3" in str(failed.value)
    assert printed == {"broken": "half way\n"}  # its output reached the page's setup cell; the cell's did not
    heard.clear()
    with pytest.raises(cell_runs.SetupFailed):
        run_cell(BROKEN)
    assert heard[0] == ("broken", "start")


def test_a_connection_opened_while_the_run_waits_for_its_slot_is_the_one_the_run_uses(units_cleanup):
    record = Sandbox.objects.create(purpose=Purpose.VERIFY, broker="nats", state=State.REQUESTED, stage="requested")
    sandbox = provisioning.sandbox_provision(sandbox_id=record.pk)
    assert sandbox.state == State.READY, sandbox.error
    printed: list[str] = []

    async def on_output(message: dict[str, Any]) -> None:
        printed.append(str(message.get("text", "")))

    async def on_setup(setup: cell_runs.Setup, message: dict[str, Any]) -> None:
        if message.get("type") in ("start", "exit"):
            printed.append(f"[{setup.key} {message['type']}]")

    async def opened_then_run(*setups: SetupCode, life: Sandbox = sandbox) -> tuple[dict[str, Any], bool]:
        opening = cell_runs.Opening(sandbox)
        opened = await opening.take(life)
        if opened is None:
            return {}, True
        result = await cell_runs.cell_run(
            sandbox=sandbox,
            cell=RunnableCode("nats", "print('cell ran')", 30, setups=setups),
            on_output=on_output,
            on_setup=on_setup,
            opened=opened,
        )
        return result, opened[1].is_closing()

    # The run's request went out on the connection opened ahead: it is closed with the run's end.
    result, closed = run(opened_then_run())
    assert result["status"] == 0 and "".join(printed) == "cell ran\n" and closed, (result, printed)
    # A setup still to run goes first on a connection of its own; the one opened ahead is not kept waiting.
    printed.clear()
    result, closed = run(opened_then_run(PREPARE))
    assert result["status"] == 0 and closed, result
    assert "".join(printed) == "[prepare start][prepare exit]cell ran\n", printed
    # Opened for another life of the broker (a reset meanwhile): not used, and closed.
    later = Sandbox(pk=sandbox.pk, unit=sandbox.unit, ready_at=sandbox.ready_at + timedelta(seconds=1))
    assert run(opened_then_run(life=later)) == ({}, True)


@pytest.mark.parametrize(
    ("result", "says"),
    [
        ({"status": 3, "reason": None}, "код завершения 3"),
        (
            {"status": -1, "reason": "not-ready", "error": "the broker exited with status 1"},
            "брокер не был готов: the broker exited",
        ),
        ({"status": -9, "reason": "killed"}, "процесс остановлен сигналом 9"),
        ({"status": 2, "reason": "memory"}, "не хватило памяти"),
        ({"status": -9, "reason": "timeout"}, "не уложилась в 30 с"),
    ],
    ids=["status", "not-ready", "killed", "memory", "timeout"],
)
def test_a_failed_setup_says_why_it_ended(result, says):
    """What the page reads names the cause the agent gave, not only a number that means nothing to a learner."""
    assert says in str(cell_runs.SetupFailed(BROKEN, result))
