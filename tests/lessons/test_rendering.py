"""Chapter Markdown renders with its plugins and never lets hostile HTML through."""

import re
import time

import pytest

from lessons.images import image_size
from lessons.rendering import TocEntry, markdown_render


def render(body: str) -> str:
    return markdown_render(body, broker="kafka", asset_base="/courses/c/assets/").html


def test_tables_footnotes_tasks_admonitions_and_anchors_render():
    html = render(
        "## Раздел один\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\nТекст[^n].\n\n[^n]: Сноска.\n\n"
        '- [x] сделано\n- [ ] нет\n\n!!! warning "Осторожно"\n    Текст.\n'
    )
    assert "<table>" in html and "<td>1</td>" in html
    assert 'class="footnote' in html
    assert 'type="checkbox"' in html
    assert 'class="admonition warning"' in html
    assert '<h2 id="' in html


def test_code_is_highlighted_on_the_server():
    html = render("```python\nimport os\n```\n")
    assert '<span class="kn">import</span>' in html


def test_cells_become_figures_and_checks_stay_hidden():
    html = render(
        "```python cell id=hello broker=nats\nprint('hi')\n```\n\n"
        "::: exercise id=task\n### Задание\n\n```python cell id=task-check role=check\nassert False, 'секрет'\n```\n:::\n"
    )
    assert 'data-cell="hello"' in html and 'data-broker="nats"' in html
    assert 'data-exercise="task"' in html
    assert "секрет" not in html


def test_relative_pictures_point_at_the_course_assets():
    html = render("![схема](img/a.svg)")
    assert 'src="/courses/c/assets/img/a.svg"' in html


@pytest.mark.parametrize(
    "hostile, forbidden",
    [
        ("<script>alert(1)</script>", "<script"),
        ("[click](javascript:alert(1))", 'href="javascript'),
        ('<a href="javascript:alert(1)">x</a>', "javascript:"),
        ('<img src="x.png" onerror="alert(1)">', "onerror"),
        ('<a href="#" onclick="steal()">x</a>', "onclick"),
        ('<iframe src="https://evil.example"></iframe>', "<iframe"),
        ("<svg><script>alert(1)</script></svg>", "<script"),
        ('<div style="background:url(javascript:alert(1))">x</div>', "javascript:"),
        ('<form action="https://evil.example"><input name=p></form>', "<form"),
        ("```python cell id=x\n</code></pre><script>alert(1)</script>\n```", "<script"),
        ('<object data="evil.swf"></object>', "<object"),
    ],
)
def test_hostile_markdown_is_neutralised(hostile, forbidden):
    assert forbidden not in render(hostile).lower()


def test_broken_markdown_renders_without_raising():
    html = render("## unclosed `code\n\n```python\nno end fence\n\n::: exercise\n| a |\n|--\n[^missing]\n")
    assert "unclosed" in html


def test_a_one_megabyte_chapter_renders_in_reasonable_time():
    body = ("## Раздел\n\n" + "Абзац текста с **выделением** и `кодом`. " * 40 + "\n\n") * 450
    assert len(body.encode()) > 1_000_000
    started = time.monotonic()
    html = render(body)
    # A generous bound: this proves "finishes", not speed (speed is in make bench).
    assert time.monotonic() - started < 60
    assert html.count("<h2") == 450


def test_the_toc_nests_subsections_under_their_sections_and_numbers_them():
    body = "### Вступление\n\n## Первый\n\n### Деталь `code`\n\n### Ещё\n\n## Второй\n\n::: exercise id=e\n### Задание\n:::\n"
    tree = markdown_render(body).toc_tree
    assert [(e.number, e.text) for e in tree] == [("1", "Вступление"), ("2", "Первый"), ("3", "Второй")]
    assert tree[1].children == (TocEntry("2.1", "деталь-code", "Деталь code"), TocEntry("2.2", "ещё", "Ещё"))
    assert tree[2].children == ()  # an exercise's title is not a section of the chapter


def test_source_lines_are_marked_only_when_asked():
    body = "## A\n\ntext\n\n- x\n- y\n\n```python cell id=c\npass\n```\n"
    marked = markdown_render(body, source_lines=True).html
    assert '<h2 id="a" data-line="1">' in marked and '<p data-line="3">' in marked
    assert '<li data-line="6">' in marked and 'data-cell="c"' in marked and 'data-line="8"' in marked
    assert "data-line" not in markdown_render(body).html


def test_a_picture_gets_the_size_its_file_declares():
    html = markdown_render("![схема](img/a.svg)", asset_base="/a/", asset_sizes={"img/a.svg": (840, 400)}).html
    assert 'width="840"' in html and 'height="400"' in html


@pytest.mark.parametrize(
    ("path", "content", "size"),
    [
        ("a.svg", b'<?xml version="1.0"?>\n<svg xmlns="x" width="840px" height="400">', (840, 400)),
        ("a.svg", b'<svg viewBox="0 0 300.4 120" xmlns="x"><rect width="5" height="6"/></svg>', (300, 120)),
        ("a.svg", b'<svg width="100%" height="50%">', None),
        ("a.svg", b"not a picture", None),
        ("a.png", b"\x89PNG\r\n\x1a\n garbage", None),
    ],
)
def test_image_size_reads_the_declared_size_and_refuses_to_guess(path, content, size):
    assert image_size(path, content) == size


def test_image_size_of_a_raster_picture():
    from io import BytesIO

    from PIL import Image

    buffer = BytesIO()
    Image.new("RGB", (64, 32)).save(buffer, format="PNG")
    assert image_size("a.png", buffer.getvalue()) == (64, 32)


def test_a_terminal_fence_is_a_command_block_for_the_chapters_or_the_named_broker():
    html = render("```terminal\nkafka-topics.sh --list\n```\n\n```terminal broker=nats\nnats stream ls\n```")
    assert html.count("data-terminal-command") == 2
    assert 'data-broker="kafka"' in html and 'data-broker="nats"' in html
    assert "kafka-topics.sh" in html and "<figure" not in html  # not a cell: nothing runs it but the learner


def test_an_exercises_terminal_solution_is_folded_and_its_starter_marked():
    html = render(
        "::: exercise id=q\n### Q\n\n```terminal role=starter id=q-starter broker=nats\nnats stream ls\n```\n\n"
        "```terminal role=solution id=q-solution broker=nats\nnats stream add Q\n```\n:::\n"
    )
    assert 'data-role="starter" data-cell="q-starter"' in html
    fold = html[html.index('<details class="solution">') : html.index("</details>")]
    assert 'data-role="solution" data-cell="q-solution"' in fold and "nats stream add Q" in re.sub(r"<[^>]+>", "", fold)
    assert html.count("data-terminal-command") == 2 and "<figure" not in html


def test_a_self_check_answer_is_folded_under_its_question_in_the_ui_language():
    body = "## Вопросы\n\n1. Кто хранит смещения?\n\n   ::: answer\n   Брокер, в топике `__consumer_offsets`.\n   :::\n\n2. Второй?\n"
    html = render(body)
    folded = re.search(
        r'<li>\s*<p>Кто хранит смещения\?</p>\s*<details class="answer"><summary>Ответ</summary>(.*?)</details>', html, re.S
    )
    assert folded, html
    assert "<code>__consumer_offsets</code>" in folded.group(1)
    assert "Второй?" not in folded.group(1)
    from django.utils import translation

    with translation.override("en"):
        assert "<summary>Answer</summary>" in render(body)


def test_a_predict_prompt_stands_before_its_cell_with_its_label():
    html = render("::: predict\nСколько записей прочитает второй потребитель?\n:::\n\n```python cell id=two\nprint(2)\n```\n")
    prompt = re.search(
        r'<aside class="predict"><p class="predict-label">(.*?)</p>\s*<p>(.*?)</p>\s*</aside>\s*<figure', html, re.S
    )
    assert prompt and prompt.groups() == ("Предскажите, затем запустите", "Сколько записей прочитает второй потребитель?"), html
