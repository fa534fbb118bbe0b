"""Course pages: the course with progress, a chapter, its pictures; marking read, the reading place, drafts.

A course page or chapter asked for in one language while the UI speaks another
opens the edition in the UI's language when the course has one (lessons.editions):
the language switch posts to Django's set_language with the page it came from
(and the section in view as ``?section=``), and lands here.
"""

from __future__ import annotations

import json
import mimetypes

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import translation
from django.views.decorators.http import require_GET, require_POST

from . import editions, selectors, services
from .glossary import parse_glossary
from .models import Chapter, Course, CourseAsset
from .rendering import markdown_render_cached


class AuthenticatedRequest(HttpRequest):
    """What a @login_required view receives (django-stubs' recommended pattern)."""

    user: User


ASSET_TYPES = {
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
}


def _language() -> str:
    return translation.get_language() or settings.LANGUAGE_CODE


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    courses = selectors.courses_for_language(language=_language())
    if len(courses) == 1:
        return course_page(request, course=courses[0].slug)
    resume = selectors.reading_place(user=request.user, courses=courses)
    return render(request, "lessons/home.html", {"courses": courses, "resume": resume})


@require_GET
def course_page(request: HttpRequest, course: str) -> HttpResponse:
    course_obj = get_object_or_404(Course, slug=course, published=True)
    edition = editions.course_for_language(course=course_obj, language=_language())
    if edition.pk != course_obj.pk:
        return redirect("lessons:course", course=edition.slug)
    outline = selectors.course_outline(course=course_obj, user=request.user)
    others = selectors.course_other_editions(course=course_obj)
    resume = selectors.reading_place(user=request.user, courses=[course_obj])
    context = {"outline": outline, "course": course_obj, "editions": others, "resume": resume}
    return render(request, "lessons/course.html", context)


@require_GET
def glossary_page(request: HttpRequest, course: str) -> HttpResponse:
    """The course's glossary (glossary.md): its introduction and table, each term's row reachable by its anchor."""
    course_obj = get_object_or_404(Course, slug=course, published=True)
    if not course_obj.glossary:
        raise Http404("this course has no glossary")
    glossary = parse_glossary(course_obj.glossary)
    rendered = markdown_render_cached(glossary.body)
    return render(request, "lessons/glossary.html", {"course": course_obj, "glossary": glossary, "rendered": rendered})


def _chapter(course: str, chapter: str) -> Chapter:
    return get_object_or_404(
        Chapter.objects.select_related("course"), course__slug=course, slug=chapter, published=True, course__published=True
    )


@require_GET
def chapter_page(request: HttpRequest, course: str, chapter: str) -> HttpResponse:
    chapter_obj = _chapter(course, chapter)
    edition = editions.chapter_for_language(chapter=chapter_obj, language=_language())
    section = request.GET.get("section")
    if edition.pk != chapter_obj.pk or section is not None:
        url = reverse("lessons:chapter", kwargs={"course": edition.course.slug, "chapter": edition.slug})
        anchor = editions.section_translate(anchor=section, source=chapter_obj, target=edition) if section else ""
        return redirect(url + "#" + anchor if anchor else url)
    rendered = selectors.chapter_rendered(chapter=chapter_obj)
    previous, following = selectors.chapter_neighbours(chapter=chapter_obj)
    context = {
        "chapter": chapter_obj,
        "course": chapter_obj.course,
        "rendered": rendered,
        "previous": previous,
        "next": following,
        "is_read": selectors.chapter_is_read(chapter=chapter_obj, user=request.user),
        "steps": {
            "done": selectors.chapter_steps_done(chapter=chapter_obj, user=request.user, steps=rendered.steps),
            "url": reverse(
                "lessons:chapter_step", kwargs={"course": chapter_obj.course.slug, "chapter": chapter_obj.slug, "step": 0}
            )[:-1],
        },
        "cells": selectors.chapter_cells_for(chapter=chapter_obj, user=request.user),
        "exercises": selectors.chapter_exercises_for(chapter=chapter_obj, user=request.user),
        "editions": selectors.course_other_editions(course=chapter_obj.course),
    }
    return render(request, "lessons/chapter.html", context)


@require_GET
def asset(request: HttpRequest, course: str, path: str) -> HttpResponse:
    found = CourseAsset.objects.filter(course__slug=course, path=path).first()
    suffix = "." + path.rsplit(".", 1)[-1].lower() if "." in path else ""
    if found is None or suffix not in ASSET_TYPES:
        raise Http404("no such picture")
    response = HttpResponse(bytes(found.content), content_type=ASSET_TYPES[suffix] or mimetypes.guess_type(path)[0])
    # A picture may hold markup; it is never allowed to run or load anything.
    response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; sandbox"
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


@login_required
@require_POST
def chapter_read(request: AuthenticatedRequest, course: str, chapter: str) -> HttpResponse:
    chapter_obj = _chapter(course, chapter)
    read = request.POST.get("read", "1") != "0"
    services.chapter_mark_read(user=request.user, chapter=chapter_obj, read=read)
    if request.headers.get("Accept", "").startswith("application/json"):
        return JsonResponse({"read": read})
    return redirect("lessons:chapter", course=course, chapter=chapter)


@login_required
@require_POST
def chapter_step(request: AuthenticatedRequest, course: str, chapter: str, step: int) -> JsonResponse:
    """Pass (``done=1``) or un-pass (``done=0``) a step; answers the steps passed and whether the chapter is read."""
    try:
        passed, read = services.step_mark_done(
            user=request.user, chapter=_chapter(course, chapter), step=step, done=request.POST.get("done", "1") != "0"
        )
    except services.LessonError as exc:
        return JsonResponse({"error": str(exc)}, status=404)
    return JsonResponse({"done": passed, "read": read})


@login_required
@require_POST
def chapter_position(request: AuthenticatedRequest, course: str, chapter: str) -> HttpResponse:
    """The page reports the section being read, so home and course pages can lead back to it."""
    services.reading_position_save(
        user=request.user, chapter=_chapter(course, chapter), anchor=request.POST.get("anchor", "")[:200]
    )
    return HttpResponse(status=204)


@login_required
@require_POST
def cell_draft(request: AuthenticatedRequest, course: str, chapter: str, cell: str) -> JsonResponse:
    chapter_obj = _chapter(course, chapter)
    try:
        code = json.loads(request.body or b"{}").get("code", "")
        if not isinstance(code, str):
            raise ValueError
    except (ValueError, AttributeError):
        return JsonResponse({"error": 'expected JSON {"code": "..."}'}, status=400)
    try:
        draft = services.cell_draft_save(user=request.user, chapter=chapter_obj, cell_key=cell, code=code)
    except services.LessonError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse({"saved": draft is not None})
