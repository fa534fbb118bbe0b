"""Headless Chromium (Debian's) driven by Playwright, against the real ASGI server."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import Client

# Playwright's sync API keeps an event loop in this thread; Django's ORM calls here are
# still synchronous and safe, so its async guard is lifted for browser tests only.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    if shutil.which(CHROMIUM) is None:
        pytest.fail("Debian's chromium is not installed: run `make install`")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def page_errors() -> list[str]:
    return []


@pytest.fixture
def new_page(browser, page_errors):
    """A page in a fresh context that records console errors and uncaught exceptions."""
    contexts = []

    def make(**context_options):
        context = browser.new_context(**context_options)
        contexts.append(context)
        page = context.new_page()
        page.on("console", lambda m: page_errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: page_errors.append(f"pageerror: {e}"))
        return page

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def page_as(new_page, live_server_url):
    """A fresh page of the real server, logged in as the given user through a real session cookie."""

    def make(user, **context_options):
        client = Client()
        client.force_login(user)
        page = new_page(**context_options)
        cookie = {"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server_url}
        page.context.add_cookies([cookie])
        return page

    return make


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
