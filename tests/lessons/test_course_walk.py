"""The whole course against real brokers: every cell runs green, every exercise's check
fails on an empty broker and passes after its reference solution.

Per chapter and broker kind, one fresh unit runs the cells in document order;
a second fresh unit proves the exercises (all checks fail first, then each
solution followed by its check passes: exercises use names of their own).
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

import pytest
from django.conf import settings

from lessons.checks import check_reason, reason_leaks
from lessons.course_files import ParsedCell
from lessons.course_io import course_folder_read
from sandboxes import agent_client
from sandboxes.agent import protocol
from sandboxes.backends.base import UnitSpec
from sandboxes.backends.process import ProcessBackend
from tests.aio import run

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FOLDERS = {Path(d).name: course_folder_read(directory=Path(d)) for d in settings.COURSE_DIRS}
CHAPTERS = [(course, filename) for course, folder in FOLDERS.items() for filename in sorted(folder.chapters)]
IDS = [f"{course}/{filename}" for course, filename in CHAPTERS]
_counter = iter(range(900_000, 999_999))


class Unit:
    """A fresh sandbox unit of one broker, started without the worker (this tests the course)."""

    def __init__(self, backend: ProcessBackend, broker: str) -> None:
        self.backend = backend
        self.name = f"{settings.SANDBOX_INSTANCE}-{next(_counter)}"
        backend.start(UnitSpec(name=self.name, broker=broker))
        self.socket = backend.socket_path(self.name)
        deadline = time.monotonic() + 150
        while True:
            try:
                status = run(agent_client.status(self.socket))
            except agent_client.AgentUnavailable:
                status = {"ready": False, "stage": "starting agent"}
            if status["ready"]:
                return
            if status["stage"] == "failed" or time.monotonic() > deadline:
                raise AssertionError(f"{broker} did not start: {status}")
            time.sleep(0.1)

    def run(self, cell: ParsedCell, *, op: str = "run") -> tuple[int, str]:
        output: list[str] = []

        async def collect(message):
            output.append(message.get("text", ""))

        result = run(agent_client.run(self.socket, code=cell.code, timeout=cell.timeout, on_message=collect, op=op))
        return result["status"], "".join(output) + result.get("output", "")

    def stop(self) -> None:
        self.backend.stop(self.name)


@pytest.fixture
def units():
    backend = ProcessBackend()
    started: list[Unit] = []

    def make(broker: str) -> Unit:
        unit = Unit(backend, broker)
        started.append(unit)
        return unit

    yield make
    for unit in started:
        unit.stop()
    assert not (Path(settings.SANDBOX_ROOT) / protocol.SOCKET_NAME).exists()


@pytest.mark.parametrize(("course", "filename"), CHAPTERS, ids=IDS)
def test_every_cell_of_the_chapter_runs_green_in_order(units, course, filename):
    _source, parsed = FOLDERS[course].chapters[filename]
    by_broker: dict[str, list[ParsedCell]] = defaultdict(list)
    for cell in parsed.cells:
        if cell.role in ("run", "setup"):
            by_broker[cell.broker].append(cell)
    for broker, cells in by_broker.items():
        unit = units(broker)
        for cell in cells:
            status, output = unit.run(cell)
            assert status == 0, f"{filename}:{cell.line} cell {cell.key} on {broker} exited {status}:\n{output[-3000:]}"


@pytest.mark.parametrize(("course", "filename"), CHAPTERS, ids=IDS)
def test_every_exercise_fails_empty_and_passes_with_its_solution(units, course, filename):
    _source, parsed = FOLDERS[course].chapters[filename]
    exercises: dict[str, dict[str, ParsedCell]] = defaultdict(dict)
    for cell in parsed.cells:
        if cell.exercise:
            exercises[cell.exercise][cell.role] = cell
    assert len(exercises) >= 2
    by_broker: dict[str, list[dict[str, ParsedCell]]] = defaultdict(list)
    for roles in exercises.values():
        by_broker[roles["check"].broker].append(roles)
    for broker, group in by_broker.items():
        unit = units(broker)
        for roles in group:
            status, output = unit.run(roles["check"], op="check")
            assert status != 0, f"{filename}: check {roles['check'].key} passes on an empty {broker}"
            assert "AssertionError" in output, f"{filename}: check {roles['check'].key} fails without a reason:\n{output[-2000:]}"
            # What the learner reads says what is wrong in the broker, not the solution's code.
            reason = check_reason({"status": status, "output": output})
            leak = reason_leaks(reason, roles["solution"].code)
            assert leak is None, f"{filename}: check {roles['check'].key} gives away {leak!r} in its reason {reason!r}"
        for roles in group:
            status, output = unit.run(roles["solution"])
            assert status == 0, f"{filename}: solution {roles['solution'].key} exited {status}:\n{output[-3000:]}"
            status, output = unit.run(roles["check"], op="check")
            assert status == 0, f"{filename}: check {roles['check'].key} fails after the solution:\n{output[-3000:]}"
