"""page.chapter_ms: server time to render the longest chapter, with and without the render cache.

The Django test client drives the real view (middleware, selectors, template)
in this process as a logged-in learner. "uncached" runs with a dummy cache, so
the Markdown is rendered on every request; "cached" with the project's Redis
cache after one warming request.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.test import Client, override_settings
from django.urls import reverse

from lessons.models import Chapter

from .harness import Platform, say
from .report import Results

DUMMY_CACHE = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}


def run(platform: Platform, results: Results, *, quick: bool) -> None:
    chapters = list(Chapter.objects.filter(published=True, course__published=True).select_related("course"))
    if not chapters:
        raise RuntimeError("no published chapter: the course did not load")
    chapter = max(chapters, key=lambda c: len(c.source))
    url = reverse("lessons:chapter", kwargs={"course": chapter.course.slug, "chapter": chapter.slug})
    say(f"pages: {url} ({len(chapter.source)} characters of Markdown, {chapter.course.language})")
    # In the chapter's own language: a reader of another one is sent on to their edition (a 302), not served this page.
    client = Client()
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = chapter.course.language  # as the page's language switcher sets it
    client.force_login(platform.user("pages"))

    def timed(count: int) -> list[float]:
        samples = []
        for _ in range(count):
            started = time.perf_counter()
            response = client.get(url)
            samples.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                raise RuntimeError(f"{url} answered {response.status_code}")
        return samples

    with override_settings(CACHES=DUMMY_CACHE):
        timed(1)  # imports, template loading: not what is measured
        uncached = timed(10 if quick else 30)
    timed(2)  # fills the render cache
    cached = timed(20 if quick else 50)
    results.samples("page.chapter_ms.uncached", uncached)
    results.samples("page.chapter_ms.cached", cached)
