"""The course format: errors name file and line; import and export round-trip byte for byte."""

import filecmp
import shutil
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import translation

from lessons.chapter_parsing import parse_chapter
from lessons.course_files import CourseFormatError
from lessons.course_io import course_export, course_import
from lessons.models import Cell, Chapter, Course

MINI = Path(__file__).resolve().parents[1] / "fixtures" / "course-mini"
HEAD = '---\ntitle: T\nslug: t\nnumber: "1"\norder: 1\nbroker: kafka\nestimated_minutes: 5\nobjectives: []\n---\n'


@pytest.fixture(autouse=True)
def _in_english():
    """The problems are checked in English here (the linter's language is the active one)."""
    with translation.override("en"):
        yield


def problems_of(text: str) -> list[str]:
    with pytest.raises(CourseFormatError) as info:
        parse_chapter(text, file="ch.md")
    return [str(p) for p in info.value.problems]


def test_a_valid_chapter_yields_cells_and_exercises():
    parsed = parse_chapter((MINI / "1-first.md").read_text(), file="1-first.md")
    assert [c.key for c in parsed.cells] == ["publish", "first-task-starter", "first-task-solution", "first-task-check"]
    assert parsed.cells[0].broker == "nats" and parsed.cells[0].timeout == 30
    assert parsed.exercises[0].title == "Первое задание"
    assert parsed.exercises[0].hints == ("Используйте `nc.publish`.",)


def test_broken_front_matter_names_the_line():
    (problem,) = problems_of("---\ntitle: ok\nslug: [unclosed\nnumber: 1\n---\n")
    assert problem.startswith("ch.md:4: front matter is not valid YAML"), problem


def test_missing_and_unknown_front_matter_keys_are_reported():
    found = problems_of("---\ntitle: T\ncolour: red\n---\n")
    assert any("unknown front matter key 'colour'" in p for p in found)
    assert any("lacks 'slug'" in p for p in found)


def test_unknown_cell_attribute_and_unparsable_code_are_located():
    found = problems_of(HEAD + "\ntext\n\n```python cell id=a colour=red\nprint(\n```\n")
    assert "ch.md:13: unknown cell attribute(s) colour (known: id, broker, role, timeout, expect)" in found
    assert any(p.startswith("ch.md:") and "does not parse" in p for p in found)


def test_exercise_needs_starter_solution_check_and_hint():
    found = problems_of(HEAD + "\n::: exercise id=e\n### E\n\n```python cell id=e-s role=starter\npass\n```\n:::\n")
    assert any("exactly one 'solution'" in p for p in found)
    assert any("exactly one 'check'" in p for p in found)
    assert any("at least one hint" in p for p in found)


def test_expect_is_a_regular_expression_on_a_cell_whose_output_is_read():
    parsed = parse_chapter(HEAD + '\n```python cell id=a expect="B: \\{\\d+: \\d+"\nprint("B: {2: 4}")\n```\n', file="ch.md")
    assert parsed.cells[0].expect == r"B: \{\d+: \d+"
    found = problems_of(HEAD + '\n```python cell id=a expect="(unclosed"\npass\n```\n')
    assert any(p.startswith("ch.md:11: expect of cell 'a' is not a regular expression") for p in found), found
    found = problems_of(
        HEAD + "\n::: exercise id=e\n### E\n\n```python cell id=e-s role=starter expect=x\npass\n```\n\n```hint\nh\n```\n\n"
        "```python cell id=e-o role=solution\npass\n```\n\n```python cell id=e-c role=check\npass\n```\n:::\n"
    )
    assert any("expect is for run, setup, solution cells, not 'starter'" in p for p in found), found


def test_problems_are_told_in_the_active_language():
    text = HEAD + "\n```python cell id=a colour=red\npass\n```\n"
    with translation.override("ru"):
        assert "ch.md:11: неизвестные атрибуты ячейки: colour (известные: id, broker, role, timeout, expect)" in problems_of(text)
    assert "ch.md:11: unknown cell attribute(s) colour (known: id, broker, role, timeout, expect)" in problems_of(text)


def test_timeout_above_the_cap_is_refused():
    assert any("timeout must be" in p for p in problems_of(HEAD + "\n```python cell id=a timeout=9999\npass\n```\n"))


def test_lint_command_prints_file_and_line(tmp_path, capsys):
    shutil.copytree(MINI, tmp_path / "c")
    (tmp_path / "c" / "3-bad.md").write_text(
        HEAD.replace("slug: t", "slug: bad") + "\n```python cell id=x role=nope\npass\n```\n"
    )
    with pytest.raises(CommandError):
        call_command("course_lint", str(tmp_path / "c"))
    assert "3-bad.md:11: role must be one of" in capsys.readouterr().err


def test_non_utf8_file_is_a_clear_error(tmp_path, capsys):
    shutil.copytree(MINI, tmp_path / "c")
    (tmp_path / "c" / "3-bin.md").write_bytes(HEAD.encode() + b"\n\xff\xfe broken\n")
    with pytest.raises(CommandError):
        call_command("course_lint", str(tmp_path / "c"))
    assert "3-bin.md:11: file is not UTF-8 text" in capsys.readouterr().err


@pytest.mark.django_db
def test_export_of_an_import_is_byte_identical(tmp_path):
    course = course_import(directory=MINI)
    course_export(course=course, directory=tmp_path / "out")
    compared = filecmp.dircmp(MINI, tmp_path / "out")
    assert compared.left_only == [] and compared.right_only == [] and compared.diff_files == []
    assert filecmp.cmp(MINI / "img" / "flow.svg", tmp_path / "out" / "img" / "flow.svg", shallow=False)
    for name in ("course.md", "1-first.md", "2-second.md"):
        assert (MINI / name).read_bytes() == (tmp_path / "out" / name).read_bytes()


@pytest.mark.django_db
def test_loading_twice_changes_nothing_and_a_removed_chapter_goes(tmp_path):
    course_import(directory=MINI)
    first_ids = set(Chapter.objects.values_list("pk", flat=True))
    course_import(directory=MINI)
    assert set(Chapter.objects.values_list("pk", flat=True)) == first_ids
    shutil.copytree(MINI, tmp_path / "c")
    (tmp_path / "c" / "2-second.md").unlink()
    course_import(directory=tmp_path / "c")
    assert list(Course.objects.get(slug="mini").chapters.values_list("slug", flat=True)) == ["first", "live"]
    assert Cell.objects.filter(chapter__slug="first").count() == 4


@pytest.mark.django_db
def test_a_course_with_errors_loads_nothing(tmp_path):
    shutil.copytree(MINI, tmp_path / "c")
    (tmp_path / "c" / "3-bad.md").write_text("no front matter")
    with pytest.raises(CourseFormatError):
        course_import(directory=tmp_path / "c")
    assert not Course.objects.exists()


TERMINAL_EXERCISE = (
    HEAD + "\n::: exercise id=q\n### Q\n\n```terminal role=starter id=q-starter broker=nats\nnats stream ls\n```\n\n"
    "```hint\nSee --help.\n```\n\n```terminal role=solution id=q-solution broker=nats\nnats stream add Q --defaults\n```\n\n"
    "```python cell id=q-check role=check broker=nats\nassert False, 'no stream Q'\n```\n:::\n"
)


def test_an_exercise_can_be_done_in_the_terminal_with_a_python_check():
    parsed = parse_chapter(TERMINAL_EXERCISE, file="ch.md")
    cells = {c.key: c for c in parsed.cells}
    assert [(c.role, c.language, c.broker) for c in cells.values()] == [
        ("starter", "terminal", "nats"),
        ("solution", "terminal", "nats"),
        ("check", "python", "nats"),
    ]
    assert cells["q-solution"].code == "nats stream add Q --defaults\n" and cells["q-solution"].exercise == "q"
    # A plain command block (no role) is no cell, as before.
    assert parse_chapter(HEAD + "\n```terminal broker=nats\nnats stream ls\n```\n", file="ch.md").cells == ()


def test_a_terminal_block_with_a_role_is_an_exercises_starter_or_solution_only():
    outside = problems_of(HEAD + "\n```terminal role=solution id=x\nls\n```\n")
    assert "ch.md:11: a 'solution' cell must be inside an exercise" in outside, outside
    checked = problems_of(TERMINAL_EXERCISE.replace("role=starter id=q-starter", "role=check id=q-starter colour=red"))
    assert any("the role of a terminal block must be one of: starter, solution" in p for p in checked), checked
    assert any("unknown attribute(s) of a terminal block: colour" in p for p in checked), checked
    mixed = problems_of(
        TERMINAL_EXERCISE.replace(
            "```terminal role=starter id=q-starter broker=nats\nnats stream ls",
            "```python cell id=q-starter role=starter broker=nats\npass",
        )
    )
    assert any("the starter and the solution must both be Python cells or both terminal blocks" in p for p in mixed), mixed
    elsewhere = problems_of(
        TERMINAL_EXERCISE.replace("role=solution id=q-solution broker=nats", "role=solution id=q-solution broker=kafka")
    )
    assert any("the check and the solution must work on the same broker" in p for p in elsewhere), elsewhere
