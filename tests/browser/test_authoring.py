"""An instructor writes a chapter in the browser with live preview, publishes it, and a learner reads it."""

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from lessons.course_io import course_import

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

MINI = Path(__file__).resolve().parents[1] / "fixtures" / "course-mini"
BODY = """## Публикация в NATS

Живой текст.

```python cell id=say-hi broker=nats
print("hi")
```

::: exercise id=pub-task
### Опубликуйте сообщение

Цель упражнения.

```python cell id=pub-task-starter role=starter
pass
```

```hint
Подсказка
```

```python cell id=pub-task-solution role=solution
pass
```

```python cell id=pub-task-check role=check
assert False, "ещё нет"
```
:::
"""


def with_clipboard(page, live_server_url):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server_url)
    return page


def replace_body(page, text: str) -> None:
    """Select all of the chapter's text in the code editor and paste ``text`` over it."""
    page.locator("[data-testid=markdown-editor] .cm-content").click()
    page.keyboard.press("Control+A")
    page.evaluate("text => navigator.clipboard.writeText(text)", text)
    page.keyboard.press("Control+V")


def test_an_instructor_writes_previews_and_publishes_a_chapter_a_learner_then_reads(
    live_server_url, page_as, page_errors, instructor, learner, screenshots
):
    course_import(directory=MINI).instructors.add(instructor)  # authoring is for its own instructors
    page = with_clipboard(page_as(instructor, viewport={"width": 1400, "height": 900}), live_server_url)
    page.goto(live_server_url + "/author/mini/")
    page.click("[data-testid=new-chapter]")
    page.fill("#m-title", "Глава из браузера")
    page.fill("#m-slug", "from-browser")
    page.fill("#m-number", "1.4")
    page.select_option("#m-broker", "nats")
    page.locator("[data-testid=markdown-editor] .cm-content").click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.type("## Первые слова", delay=5)
    # The preview follows the typing, rendered by the server.
    expect(page.locator("[data-testid=preview] h2")).to_have_text("Первые слова")
    replace_body(page, BODY)
    page.wait_for_selector("[data-testid=preview] figure.cell[data-cell=say-hi]")
    page.wait_for_selector("[data-testid=preview] section.exercise[data-exercise=pub-task]")
    assert page.locator("[data-problems] li").count() == 0
    page.click("[data-testid=save]")
    page.wait_for_url("**/author/mini/from-browser/edit")
    page.wait_for_selector("[data-testid=preview] figure.cell")
    page.screenshot(path=str(screenshots / "authoring-editor.png"))
    page.click("[data-testid=publish]")
    page.wait_for_load_state("networkidle")
    assert page_errors == []

    reader = page_as(learner)
    reader.goto(live_server_url + "/courses/mini/from-browser/")
    assert reader.locator("h1").inner_text() == "Глава из браузера"
    assert reader.locator("section.exercise[data-exercise=pub-task]").count() == 1
    assert page_errors == []


def test_a_broken_cell_attribute_is_shown_with_its_line_and_nothing_is_saved(live_server_url, page_as, page_errors, instructor):
    course_import(directory=MINI).instructors.add(instructor)  # authoring is for its own instructors
    page = with_clipboard(page_as(instructor, viewport={"width": 1400, "height": 900}), live_server_url)
    page.goto(live_server_url + "/author/mini/first/edit")
    replace_body(page, "## Х\n\n```python cell id=a colour=red\npass\n```\n")
    page.wait_for_selector("[data-problems] li")
    assert "colour" in page.locator("[data-problems] li").first.inner_text()
    page.click("[data-testid=save]")
    expect(page.locator("[data-save-status]")).to_have_class(re.compile("error"))
    # The refused save is a 400 on purpose; the browser logs that, and nothing else may appear.
    assert [e for e in page_errors if "status of 400" not in e] == []


def test_a_proof_past_the_instructors_quota_says_why_under_the_exercise(live_server_url, page_as, page_errors, instructor):
    """A proof's broker counts against its instructor's sandboxes: with their bar full, the refusal is shown."""
    from django.conf import settings

    from sandboxes.models import Sandbox, State

    course_import(directory=MINI).instructors.add(instructor)
    for broker in ["nats", "rabbitmq", "kafka", "redis", "activemq"][: settings.SANDBOX_QUOTA_PER_USER]:
        Sandbox.objects.create(user=instructor, broker=broker, state=State.REQUESTED, stage="requested")
    page = page_as(instructor, viewport={"width": 1400, "height": 900})
    page.goto(live_server_url + "/author/mini/first/edit")
    page.get_by_role("button", name="Проверить упражнение на чистом брокере").click()
    expect(page.locator(".verify-report")).to_contain_text("это предел", timeout=15_000)
    expect(page.get_by_role("button", name="Проверить упражнение на чистом брокере")).to_be_enabled()
    assert [e for e in page_errors if "status of 429" not in e] == []
