"""A long chapter in steps: the format's rules, the folds on the page, and the learner's progress through them."""

import json
import re
import shutil
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import translation

from lessons.chapter_parsing import parse_chapter
from lessons.course_files import CourseFormatError
from lessons.course_io import course_folder_read, course_import
from lessons.editions import translation_problems
from lessons.models import ChapterRead, StepDone
from lessons.rendering import markdown_render
from lessons.steps import chapter_steps

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def chapter(minutes: int, steps: list[str] | None, body: str) -> str:
    listed = "".join(f'  - "{s}"\n' for s in steps) if steps is not None else ""
    head = f'---\ntitle: T\nslug: t\nnumber: "1"\norder: 1\nbroker: kafka\nestimated_minutes: {minutes}\nobjectives: []\n'
    return head + (f"steps:\n{listed}" if steps is not None else "") + "---\n" + body


BODY = (
    "Вступление.\n\n## Первый раздел\n\n" + "слово " * 600 + "\n\n### Подраздел\n\n" + "слово " * 600 + "\n\n"
    "## Второй раздел\n\n```python cell id=a\nprint(1)\n```\n\n" + "слово " * 1200 + "[^n]\n\n[^n]: Сноска.\n"
)


def problems(text: str) -> list[str]:
    with translation.override("en"), pytest.raises(CourseFormatError) as info:
        parse_chapter(text, file="ch.md")
    return [str(p) for p in info.value.problems]


def test_a_long_chapter_must_have_steps_that_name_its_headings_in_order():
    assert problems(chapter(60, None, BODY)) == [
        "ch.md:2: a 60-minute chapter: split it into steps of 15–25 minutes (steps: the headings they begin with)"
    ]
    assert problems(chapter(60, ["Первый раздел", "Нет такого"], BODY)) == [
        "ch.md:2: step 'Нет такого': the chapter has no section or sub-section with that heading"
    ]
    assert problems(chapter(60, ["Подраздел", "Первый раздел"], BODY)) == [
        "ch.md:2: the first step must begin at the chapter's first heading: 'Первый раздел'",
        "ch.md:2: steps must follow the chapter's sections in order, without repeats",
    ]
    parse_chapter(chapter(59, None, BODY), file="ch.md")  # a short chapter may go without


def test_a_step_longer_than_thirty_minutes_is_refused_at_its_heading():
    text = chapter(80, ["Первый раздел", "Подраздел", "Второй раздел"], BODY)
    found = problems(text)
    assert found == ["ch.md:24: step 'Второй раздел' takes about 43 min, more than 30: begin another step inside it"]
    assert text.split("\n")[23] == "## Второй раздел"


def test_minutes_share_the_chapters_estimate_by_words_and_cells():
    meta = {"steps": ["Первый раздел", "Подраздел", "Второй раздел"], "estimated_minutes": 60}
    steps = chapter_steps(meta, BODY)
    assert [(s.number, s.title, s.section) for s in steps] == [
        (1, "Первый раздел", 0),
        (2, "Подраздел", 1),
        (3, "Второй раздел", 2),
    ]
    minutes = [s.minutes for s in steps]
    assert sum(minutes) == 60 and minutes[0] == minutes[1] < minutes[2], minutes


def test_each_step_folds_with_its_bar_and_the_footnotes_stay_outside():
    rendered = markdown_render(BODY, steps=["Первый раздел", "Второй раздел"], minutes=40)
    folds = re.findall(
        r'<details class="step" id="step-(\d)" data-step="\d" open=""><summary class="step-bar">(.*?)</summary>', rendered.html
    )
    assert [n for n, _ in folds] == ["1", "2"]
    assert "Шаг 2 из 2" in folds[1][1] and "Второй раздел" in folds[1][1] and "~" in folds[1][1]
    first = rendered.html.split('id="step-2"')[0]
    assert "Вступление." in first and 'id="подраздел"' in first
    assert rendered.html.rindex("</details>") < rendered.html.index('class="footnotes"')
    assert [(s.number, s.anchor) for s in rendered.steps] == [(1, "первый-раздел"), (2, "второй-раздел")]
    assert markdown_render(BODY).steps == () and "details" not in markdown_render(BODY).html


def test_a_translation_must_begin_its_steps_at_the_same_headings(tmp_path):
    ru, en = tmp_path / "ru", tmp_path / "en"
    for folder, title in ((ru, "mini"), (en, "mini-en")):
        folder.mkdir()
        (folder / "course.md").write_text(
            f"---\ntitle: C\nslug: {title}\nlanguage: {'ru' if folder == ru else 'en'}\n"
            + ("translation_of: mini\n" if folder == en else "")
            + "---\nКурс.\n"
        )
    (ru / "1.md").write_text(chapter(50, ["Первый раздел", "Подраздел", "Второй раздел"], BODY))
    (en / "1.md").write_text(
        chapter(50, ["First", "Second"], BODY.replace("Первый раздел", "First").replace("Второй раздел", "Second"))
    )
    found = translation_problems(original=course_folder_read(directory=ru), translation=course_folder_read(directory=en))
    assert [str(p) for p in found] == [
        "1.md:2: steps begin at headings [1, 3] here and [1, 2, 3] in the original (h2/h3 counted in order)"
    ]


@pytest.fixture
def stepped_course(tmp_path):
    folder = tmp_path / "course"
    shutil.copytree(FIXTURES / "course-mini", folder)
    (folder / "4-steps.md").write_text(
        chapter(40, ["Первый раздел", "Подраздел", "Второй раздел"], BODY)
        .replace("slug: t\n", "slug: stepped\n")
        .replace("order: 1", "order: 4")
    )
    return course_import(directory=folder)


@pytest.mark.django_db
def test_passing_steps_is_kept_and_the_last_one_marks_the_chapter_read(client, learner, stepped_course):
    client.force_login(learner)
    url = reverse("lessons:chapter_step", args=[stepped_course.slug, "stepped", 2])
    assert client.post(url).json() == {"done": [2], "read": False}
    assert client.post(url[:-1] + "1").json() == {"done": [1, 2], "read": False}
    page = client.get(reverse("lessons:chapter", args=[stepped_course.slug, "stepped"]))
    state = json.loads(
        re.search(r'<script id="chapter-steps" type="application/json">(.*?)</script>', page.content.decode()).group(1)
    )
    assert state["done"] == [1, 2] and url.startswith(state["url"])
    assert "Пройдено шагов: 2 из 3" in page.content.decode()
    course_page = client.get(reverse("lessons:course", args=[stepped_course.slug])).content.decode()
    assert '<span data-testid="chapter-steps">шаги: 2/3</span>' in course_page
    assert client.post(url[:-1] + "3").json() == {"done": [1, 2, 3], "read": True}
    assert ChapterRead.objects.filter(user=learner, chapter_slug="stepped").exists()
    assert client.post(url, {"done": "0"}).json() == {"done": [1, 3], "read": True}
    assert client.post(url[:-1] + "4").status_code == 404
    assert StepDone.objects.filter(user=learner).count() == 2


@pytest.mark.django_db
def test_steps_are_for_signed_in_learners(client, stepped_course):
    url = reverse("lessons:chapter_step", args=[stepped_course.slug, "stepped", 1])
    assert client.post(url).status_code == 302
    assert StepDone.objects.count() == 0


@pytest.mark.django_db
def test_the_editor_opens_with_the_steps_and_a_save_keeps_them(client, instructor, stepped_course):
    stepped_course.instructors.add(instructor)
    client.force_login(instructor)
    page = client.get(reverse("authoring:chapter_edit", args=[stepped_course.slug, "stepped"])).content.decode()
    assert re.search(r'data-meta="steps">Первый раздел\nПодраздел\nВторой раздел</textarea>', page)
    chapter = stepped_course.chapters.get(slug="stepped")
    from lessons.chapter_editor import editor_state

    state = editor_state(chapter)
    state["meta"]["steps"] = ["Первый раздел", "Второй раздел"]
    saved = client.post(
        reverse("authoring:chapter_save", args=[stepped_course.slug, "stepped"]),
        json.dumps({"meta": state["meta"], "body": state["body"], "revision": state["revision"]}),
        content_type="application/json",
    )
    assert saved.status_code == 200, saved.content
    chapter.refresh_from_db()
    assert "\nsteps:\n- Первый раздел\n- Второй раздел\n---\n" in chapter.source
    from lessons.selectors import chapter_rendered

    assert [s.title for s in chapter_rendered(chapter=chapter).steps] == ["Первый раздел", "Второй раздел"]


@pytest.mark.django_db
def test_a_step_inserted_before_a_passed_one_leaves_it_passed(client, learner, tmp_path):
    folder = tmp_path / "course"
    shutil.copytree(FIXTURES / "course-mini", folder)
    stepped = folder / "4-steps.md"
    text = (
        chapter(40, ["Первый раздел", "Второй раздел"], BODY)
        .replace("slug: t\n", "slug: stepped\n")
        .replace("order: 1", "order: 4")
    )
    stepped.write_text(text)
    course = course_import(directory=folder)
    client.force_login(learner)
    assert client.post(reverse("lessons:chapter_step", args=[course.slug, "stepped", 2])).json()["done"] == [2]
    stepped.write_text(text.replace('  - "Второй раздел"\n', '  - "Подраздел"\n  - "Второй раздел"\n'))
    course_import(directory=folder)
    page = client.get(reverse("lessons:chapter", args=[course.slug, "stepped"])).content.decode()
    state = json.loads(re.search(r'<script id="chapter-steps" type="application/json">(.*?)</script>', page).group(1))
    assert state["done"] == [3]  # "Второй раздел" is the third step now, and still passed
