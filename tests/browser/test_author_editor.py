"""An instructor edits a chapter of the bundled course in the code editor: line numbers, a preview
that follows the cursor, problems that jump to their line, a draft cell whose messages show in the
learners' live panel, and a history that opens on the last two revisions with the diff coloured."""

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from lessons.course_io import course_import

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

BUNDLED = Path(__file__).resolve().parents[2] / "lessons" / "content" / "broker-academy"
EDIT = "/author/broker-academy/apache-kafka/edit"  # 6.2, some 1,300 lines
BROKEN = "\n\n```python cell id=broken colour=red\nprint(1)\n```\n"
DRAFT = """

```python cell id=draft-nats broker=nats
import asyncio, os, nats
async def main():
    nc = await nats.connect(os.environ["NATS_URL"])
    for n in range(3):
        await nc.publish("editor.draft", f"draft-{n}".encode())
        await asyncio.sleep(0.2)
    await nc.flush()
    await nc.close()
    print("sent 3")
asyncio.run(main())
```
"""


def paste(page, text: str) -> None:
    """Paste ``text`` at the cursor with Ctrl+V, as an instructor pastes a snippet (typing it would
    auto-indent the code; Playwright's insert_text loses blank lines in an editable element)."""
    page.evaluate("text => navigator.clipboard.writeText(text)", text)
    page.keyboard.press("Control+V")


# The preview is rendered by the server: a 1,300-line chapter takes it seconds on a loaded machine.
PREVIEW_S = 20_000

# The block the preview should show for the cursor's line: the last one starting at or above it.
BLOCK_FOR_LINE = """line => {
  let best = null;
  for (const b of document.querySelectorAll("[data-preview] [data-line]")) {
    if (+b.dataset.line <= line && (!best || +b.dataset.line >= +best.dataset.line)) best = b;
  }
  return best && best.dataset.line;
}"""


def test_an_instructor_edits_with_line_numbers_follows_the_preview_jumps_to_problems_runs_a_draft_and_reads_the_diff(
    celery_worker, live_server_url, page_as, page_errors, instructor, units_cleanup, screenshots
):
    course_import(directory=BUNDLED).instructors.add(instructor)  # authoring is for its own instructors
    page = page_as(instructor, viewport={"width": 1600, "height": 1000})
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server_url)
    page.goto(live_server_url + EDIT)

    # A code editor with line numbers, in place of the textarea.
    editor = page.locator("[data-testid=markdown-editor]")
    content = editor.locator(".cm-content")
    expect(content).to_be_visible()
    expect(page.locator("#body")).to_be_hidden()
    expect(editor.locator(".cm-lineNumbers")).to_be_visible()
    preview = page.get_by_test_id("preview")
    expect(preview.locator("h2").first).to_have_text("Kafka в двух словах", timeout=PREVIEW_S)
    active_line = editor.locator(".cm-activeLineGutter")

    content.click()
    page.keyboard.press("Control+Home")
    expect(active_line).to_have_text("1")
    page.keyboard.press("ArrowDown")  # line 1 is blank: the text starts on line 2
    page.keyboard.press("Home")
    expect(active_line).to_have_text("2")
    page.keyboard.type("Живая правка. ")
    expect(preview.locator("p").first).to_contain_text("Живая правка. В главе 6.1", timeout=PREVIEW_S)

    # Far down: the preview scrolls so that the block under the cursor is in view.
    page.keyboard.press("Control+End")
    last = int(active_line.inner_text())
    assert last > 1200
    cursor_block = preview.locator(".is-cursor-block")
    expect(cursor_block).to_have_attribute("data-line", page.evaluate(BLOCK_FOR_LINE, last))
    expect(cursor_block).to_be_in_viewport()
    assert page.locator(".preview-pane").evaluate("p => p.scrollTop") > 10_000  # from the top, far down

    # A broken cell: the problem is in the page's language, and a click puts the cursor on its line.
    paste(page, BROKEN)
    problem = page.locator("[data-problems] .problem-link")
    expect(problem).to_contain_text("неизвестные атрибуты ячейки: colour", timeout=PREVIEW_S)
    line = int(problem.get_attribute("data-line"))
    assert line == last + 2
    page.keyboard.press("Control+Home")
    expect(active_line).to_have_text("1")
    expect(preview.locator(".is-cursor-block")).not_to_be_in_viewport()
    problem.click()
    expect(active_line).to_have_text(str(line))
    expect(editor.locator(".cm-activeLine")).to_contain_text("colour=red")
    expect(preview.locator(".is-cursor-block")).to_be_in_viewport()

    # Undo it, write a NATS cell instead and run the draft: its messages show in the live panel.
    page.keyboard.press("Control+z")
    expect(problem).to_have_count(0, timeout=PREVIEW_S)
    page.keyboard.press("Control+End")
    paste(page, DRAFT)
    figure = preview.locator("figure.cell[data-cell=draft-nats]")
    expect(figure).to_be_visible(timeout=PREVIEW_S)
    expect(figure).to_be_in_viewport()
    page.get_by_role("button", name=re.compile(r"Запустить в моей песочнице \(nats\)")).click()
    expect(page.locator(".draft-output[data-cell=draft-nats]")).to_contain_text("sent 3", timeout=120_000)
    rows = page.locator("[data-live-panel] [data-messages] li.msg-produced")
    expect(rows).to_have_count(3, timeout=30_000)
    expect(page.locator("[data-live-panel] [data-messages]")).to_contain_text("editor.draft")
    page.screenshot(path=str(screenshots / "author-editor.png"))

    # Save, then the history opens on the last two revisions, lines coloured by what they are.
    page.get_by_test_id("save").click()
    expect(page.locator("[data-save-status]")).to_have_text("сохранено r2")
    page.get_by_role("link", name="История").click()
    expect(page.locator("select[name=a]")).to_have_value("1")
    expect(page.locator("select[name=b]")).to_have_value("2")
    diff = page.get_by_test_id("diff")
    added = diff.locator(".diff-add", has_text="cell id=draft-nats broker=nats")
    removed = diff.locator(".diff-del", has_text="-В главе 6.1")
    expect(added).to_be_visible()
    expect(removed).to_be_visible()
    expect(diff.locator(".diff-add", has_text="+Живая правка. В главе 6.1")).to_be_visible()
    colours = [
        locator.evaluate("e => getComputedStyle(e).backgroundColor")
        for locator in (added, removed, diff.locator(".diff-same").first)
    ]
    assert len(set(colours)) == 3 and "rgba(0, 0, 0, 0)" not in colours[:2], colours
    page.screenshot(path=str(screenshots / "author-history.png"))
    assert page_errors == []
