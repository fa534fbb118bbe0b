"""The whole course as a learner meets it, against real brokers: every cell runs green and
prints what the text promises, every exercise's check fails before its solution and passes after.

Cells run the way the page runs them: the selector the page uses finds the cell and the
setup cells it needs, and ``sandboxes.cell_runs.cell_run`` runs those setups first, once
per broker. Chapters run in course order and each course shares one broker per kind
between its chapters, as a learner's sandbox is shared, so one chapter's leftovers that
change what another chapter's text says fail here (a chapter run alone, with -k, gets
fresh brokers: the other case a learner meets). A cell's ``expect`` attribute is a
regular expression its output must contain (docs/course-format.md). An exercise done in the
terminal has its solution typed into the sandbox's own terminal, through the agent, as the
learner's keystrokes are, and must end with exit status 0 there.

The editions of a chapter are walked at the same time, each on its own course's brokers
(threads: most of a walk is waiting for brokers, consumer groups and timeouts), so a
chapter costs about as long as its longer edition, not as both.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import re
import threading
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connections

from lessons import selectors
from lessons.checks import check_reason, reason_leaks
from lessons.course_files import ParsedCell, parse_course
from lessons.course_io import course_folder_read, course_import
from sandboxes import cell_runs
from sandboxes.backends import get_backend
from sandboxes.models import Purpose, Sandbox, State
from sandboxes.services import provisioning
from sandboxes.terminal_typing import terminal_commands_collected
from tests.aio import run

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

FOLDERS = {Path(d).name: course_folder_read(directory=Path(d)) for d in settings.COURSE_DIRS}
SLUGS = {name: parse_course(folder.course_source).meta["slug"] for name, folder in FOLDERS.items()}
CHAPTERS = [
    (course, filename)
    for course, folder in FOLDERS.items()
    for filename in sorted(folder.chapters, key=lambda f: (folder.chapters[f][1].meta["order"], f))
]
#: Each chapter with its editions: (id, [(course, filename), ...]) in course order; the id keeps the
#: original's file name, so ``-k 6-3`` still picks a chapter (every edition of it).
BY_CHAPTER: dict[str, list[tuple[str, str]]] = defaultdict(list)
for _course, _filename in CHAPTERS:
    BY_CHAPTER[FOLDERS[_course].chapters[_filename][1].meta["slug"]].append((_course, _filename))
WALKS = [(Path(editions[0][1]).stem, editions) for editions in BY_CHAPTER.values()]
#: Broker kinds whose runs (and start) take turns between the editions walked at once: two three-broker
#: clusters stopping and starting brokers at the same time were too much for two cores (one edition's
#: client once could not bootstrap). The rest of such a chapter still walks its editions at once.
SERIAL_BROKERS = {"kafka-cluster"}
SERIAL_RUNS = threading.Lock()


@dataclass
class Outcome:
    """One run as the page would show it: the cell's exit and output, and the setups that ran before it."""

    status: int | None
    reason: str | None
    output: str
    setups: dict[str, str] = field(default_factory=dict)  # setup key -> its output


class Brokers:
    """One ready sandbox per broker kind for the course being walked; a new course starts afresh."""

    def __init__(self) -> None:
        self.course = ""
        self.sandboxes: dict[str, Sandbox] = {}

    def sandbox(self, course: str, broker: str) -> Sandbox:
        if course != self.course:
            self.stop()
            self.course = course
        if broker not in self.sandboxes:
            record = Sandbox.objects.create(purpose=Purpose.VERIFY, broker=broker, state=State.REQUESTED, stage="requested")
            sandbox = provisioning.sandbox_provision(sandbox_id=record.pk)
            assert sandbox.state == State.READY, f"{broker} did not start: {sandbox.error}"
            self.sandboxes[broker] = sandbox
        return self.sandboxes[broker]

    def run(self, course: str, cell: selectors.RunnableCode, *, op: str = "run") -> Outcome:
        output: list[str] = []
        setups: dict[str, list[str]] = defaultdict(list)

        async def collect(message: dict[str, Any]) -> None:
            output.append(str(message.get("text", "")))

        async def collect_setup(setup: cell_runs.Setup, message: dict[str, Any]) -> None:
            if message.get("type") == "exit":
                setups[setup.key].append(str(message.get("output") or ""))
            elif message.get("type") != "start":
                setups[setup.key].append(str(message.get("text", "")))

        turn = SERIAL_RUNS if cell.broker in SERIAL_BROKERS else contextlib.nullcontext()
        try:
            with turn:
                sandbox = self.sandbox(course, cell.broker)
                result = run(cell_runs.cell_run(sandbox=sandbox, cell=cell, op=op, on_output=collect, on_setup=collect_setup))
        except cell_runs.SetupFailed as failed:
            ran = "".join(setups[failed.setup.key])
            raise AssertionError(f"{failed}\nsetup {failed.setup.key} printed:\n{ran[-3000:]}") from failed
        return Outcome(
            result.get("status"),
            result.get("reason"),
            "".join(output) + str(result.get("output") or ""),
            {key: "".join(parts) for key, parts in setups.items()},
        )

    def stop(self) -> None:
        """Stop the walk's units (a plain stop keeps no data); none of them may be left."""
        backend = get_backend()
        units = {sandbox.unit for sandbox in self.sandboxes.values()}
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(units))) as pool:
            list(pool.map(backend.stop, units))  # side by side: a broker takes seconds to stop
        self.sandboxes = {}
        left = units & set(backend.list_units())
        assert not left, f"the walk's units outlived their stop: {sorted(left)}"


@pytest.fixture(scope="module")
def brokers() -> Iterator[dict[str, Brokers]]:
    """Each course's brokers, kept from one chapter to the next (their records are not: the database
    is emptied after each test, and a run needs only the record in memory)."""
    walks = {course: Brokers() for course in FOLDERS}
    yield walks
    for walk in walks.values():
        walk.stop()


@pytest.fixture(autouse=True)
def courses(transactional_db) -> None:
    """The bundled courses in the database: the page's selectors read them there."""
    for directory in settings.COURSE_DIRS:
        course_import(directory=Path(directory))


#: A line Python's warnings module prints ("<cell>:12: DeprecationWarning: ..."): a learner reads it as something
#: gone wrong, so no cell of the course may print one (e.g. kafka-python 3's for a plain deserializer function).
PYTHON_WARNING = re.compile(r"^\S+:\d+: \w*Warning: .*$", re.MULTILINE)


def expectation_problem(cell: ParsedCell, output: str) -> str | None:
    if cell.expect is None or re.search(cell.expect, output, re.MULTILINE):
        return None
    return f"cell {cell.key} (line {cell.line}) does not print what the text says: no match for {cell.expect!r}\n{output[-3000:]}"


@pytest.mark.parametrize("editions", [editions for _, editions in WALKS], ids=[name for name, _ in WALKS])
def test_the_chapter_runs_as_on_the_page_and_does_what_its_text_says(brokers, editions):
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(editions)) as pool:
        walks = {
            f"{course}/{filename}": pool.submit(walk_in_thread, brokers[course], course, filename)
            for course, filename in editions
        }
    failed = {name: walk.exception() for name, walk in walks.items() if walk.exception() is not None}
    assert not failed, "\n\n".join(f"{name}:\n{error}" for name, error in failed.items())


def walk_in_thread(brokers: Brokers, course: str, filename: str) -> None:
    """One edition's walk, in a thread of its own: its database connection closes with it."""
    try:
        walk_chapter(brokers, course, filename)
    finally:
        connections.close_all()


def walk_chapter(brokers: Brokers, course: str, filename: str) -> None:
    _source, parsed = FOLDERS[course].chapters[filename]
    slug, chapter = SLUGS[course], parsed.meta["slug"]
    cells = {cell.key: cell for cell in parsed.cells}
    setups_ran: Counter[str] = Counter()
    problems: list[str] = []  # every cell that fails, not only the first: one walk shows them all

    def run_cell(key: str) -> list[str]:
        runnable = selectors.cell_runnable(course=slug, chapter=chapter, cell=key)
        assert runnable is not None, f"the page cannot run cell {key}"
        outcome = brokers.run(course, runnable)
        found = []
        for setup_key, printed in outcome.setups.items():
            setups_ran[setup_key] += 1
            problem = expectation_problem(cells[setup_key], printed)
            if problem:
                found.append(f"{filename}: setup before {key}: {problem}")
        if outcome.status != 0:
            found.append(f"{filename}:{cells[key].line} cell {key} exited {outcome.status}:\n{outcome.output[-3000:]}")
        elif problem := expectation_problem(cells[key], outcome.output):
            found.append(f"{filename}: {problem}")
        if warning := PYTHON_WARNING.search(outcome.output):
            found.append(f"{filename}:{cells[key].line} cell {key} prints a warning the text does not explain: {warning[0]}")
        return found

    def check(exercise: str) -> Outcome:
        runnable = selectors.exercise_check_runnable(course=slug, chapter=chapter, exercise=exercise)
        assert runnable is not None, f"the page cannot check exercise {exercise}"
        outcome = brokers.run(course, runnable, op="check")
        setups_ran.update(outcome.setups.keys())
        return outcome

    for cell in parsed.cells:
        if cell.role == "run":
            problems += run_cell(cell.key)
    assert not problems, f"{len(problems)} cell(s) do not do what the text says:\n\n" + "\n\n".join(problems)

    exercises: dict[str, dict[str, ParsedCell]] = defaultdict(dict)
    for cell in parsed.cells:
        if cell.exercise:
            exercises[cell.exercise][cell.role] = cell
    assert len(exercises) >= 2
    for key, roles in exercises.items():
        before = check(key)
        assert before.status != 0, f"{filename}: check of {key} passes before its solution ran"
        assert "AssertionError" in before.output, f"{filename}: check of {key} fails without a reason:\n{before.output[-2000:]}"
        # What the learner reads says what is wrong in the broker, not the solution's code.
        reason = check_reason({"status": before.status, "output": before.output})
        solution = roles["solution"]
        leak = reason_leaks(reason, solution.code, shell=solution.language == "terminal")
        assert leak is None, f"{filename}: check of {key} gives away {leak!r} in its reason {reason!r}"
        if solution.language == "terminal":
            sandbox = brokers.sandbox(course, solution.broker)
            typed = terminal_commands_collected(sandbox=sandbox, commands=solution.code, timeout=solution.timeout)
            assert typed["status"] == 0, f"{filename}: {solution.key} in the terminal: {typed}"
        else:
            solved = run_cell(solution.key)
            assert not solved, "\n".join(solved)
        after = check(key)
        assert after.status == 0, f"{filename}: check of {key} fails after its solution:\n{after.output[-3000:]}"

    used = {cell.broker for cell in parsed.cells if cell.role != "setup"}
    for cell in parsed.cells:
        if cell.role == "setup" and cell.broker in used:
            assert setups_ran[cell.key] == 1, f"{filename}: setup {cell.key} ran {setups_ran[cell.key]} times, not once"
