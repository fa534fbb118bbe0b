"""A course's glossary: course_lint flags the variants it rejects in prose, and learners read it on its own page."""

import shutil
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import translation

from lessons.course_io import course_export, course_import
from lessons.glossary import parse_glossary

MINI = Path(__file__).resolve().parents[1] / "fixtures" / "course-mini"
COURSE = Path(settings.COURSE_DIRS[0])
GLOSSARY = (
    "---\ntitle: Глоссарий\n---\nВступление.\n\n"
    "| Термин | English | Не пишем | Что это |\n|---|---|---|---|\n"
    "| продюсер | producer | производитель | Клиент, который пишет. |\n"
    "| коммит | commit | фиксация смещения | Сохранение смещения. |\n"
    "| брокер | broker | | Сервер. |\n"
)


@pytest.fixture(autouse=True)
def _in_english():
    with translation.override("en"):
        yield


@pytest.fixture
def course_dir(tmp_path):
    directory = tmp_path / "c"
    shutil.copytree(MINI, directory)
    (directory / "glossary.md").write_text(GLOSSARY)
    return directory


def lint_errors(directory: Path, capsys) -> list[str]:
    with pytest.raises(CommandError):
        call_command("course_lint", str(directory))
    return [line for line in capsys.readouterr().err.splitlines() if line]


def test_lint_names_each_rejected_variant_in_prose_with_its_line_and_the_term_to_use(course_dir, capsys):
    chapter = course_dir / "1-first.md"
    text = chapter.read_text()
    prose = (
        "\n\nПроизводителя легко заменить.\nПосле фиксации\nсмещения всё просто.\n"
        "Производительность не термин, `производитель` в коде тоже.\n\n"
        "```python\nproducer = 'производитель'\n```\n\n[ссылка](https://example.org/производитель)\n"
    )
    chapter.write_text(text + prose)
    first = text.count("\n") + 3
    errors = lint_errors(course_dir, capsys)
    assert errors == [
        f"{course_dir}/1-first.md:{first}: “Производителя”: the course glossary says “продюсер” (producer)",
        f"{course_dir}/1-first.md:{first + 1}: “фиксации смещения”: the course glossary says “коммит” (commit)",
    ]


def test_lint_reads_the_course_description_too_and_is_quiet_on_a_clean_course(course_dir, capsys):
    call_command("course_lint", str(course_dir))
    assert "ok" in capsys.readouterr().out
    course_md = course_dir / "course.md"
    course_md.write_text(course_md.read_text() + "\nКурс для тех, кто пишет производителей.\n")
    assert [e.split(": ", 1)[1] for e in lint_errors(course_dir, capsys)] == [
        "“производителей”: the course glossary says “продюсер” (producer)"
    ]


def test_a_malformed_glossary_is_a_located_error(course_dir, capsys):
    (course_dir / "glossary.md").write_text(GLOSSARY.replace("| брокер | broker | | Сервер. |", "| брокер | broker |"))
    assert lint_errors(course_dir, capsys) == [
        f"{course_dir}/glossary.md:10: a table row has 2 columns, 4 are needed: term | English | rejected | meaning"
    ]


def test_the_bundled_glossary_names_the_terms_the_course_chose():
    glossary = parse_glossary((COURSE / "glossary.md").read_text())
    chosen = {term.term: term.rejected for term in glossary.terms}
    assert "производитель" in chosen["продюсер"] and "перебалансировка" in chosen["ребалансировка"]
    assert "сжатие журнала" in chosen["уплотнение"] and chosen["сжатие"] == ()


@pytest.mark.django_db
def test_the_glossary_travels_with_the_course_and_learners_read_it(course_dir, tmp_path, client):
    course = course_import(directory=course_dir)
    course_export(course=course, directory=tmp_path / "out")
    assert (tmp_path / "out" / "glossary.md").read_bytes() == (course_dir / "glossary.md").read_bytes()
    assert course.chapters.count() == len(list(MINI.glob("*.md"))) - 1  # course.md, and glossary.md is not a chapter
    page = client.get(reverse("lessons:glossary", args=[course.slug])).content.decode()
    assert "<td>продюсер</td>" in page and "<td>producer</td>" in page and "Терминов: 3" in page
    assert (
        reverse("lessons:glossary", args=[course.slug])
        in client.get(reverse("lessons:course", args=[course.slug])).content.decode()
    )
    (course_dir / "glossary.md").unlink()
    course_import(directory=course_dir)
    assert client.get(reverse("lessons:glossary", args=[course.slug])).status_code == 404
