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
