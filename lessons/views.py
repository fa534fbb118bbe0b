"""Course pages: the course with progress, a chapter, its pictures; marking read, saving drafts."""

from __future__ import annotations

import json
import mimetypes

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import translation
from django.views.decorators.http import require_GET, require_POST

from . import selectors, services
from .models import Chapter, Course, CourseAsset


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


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    courses = selectors.courses_for_language(language=translation.get_language() or settings.LANGUAGE_CODE)
    if len(courses) == 1:
        return course_page(request, course=courses[0].slug)
    return render(request, "lessons/home.html", {"courses": courses})


@require_GET
def course_page(request: HttpRequest, course: str) -> HttpResponse:
    course_obj = get_object_or_404(Course, slug=course, published=True)
    outline = selectors.course_outline(course=course_obj, user=request.user)
    editions = selectors.course_other_editions(course=course_obj)
    return render(request, "lessons/course.html", {"outline": outline, "course": course_obj, "editions": editions})


def _chapter(course: str, chapter: str) -> Chapter:
    return get_object_or_404(
        Chapter.objects.select_related("course"), course__slug=course, slug=chapter, published=True, course__published=True
    )


@require_GET
def chapter_page(request: HttpRequest, course: str, chapter: str) -> HttpResponse:
    chapter_obj = _chapter(course, chapter)
    rendered = selectors.chapter_rendered(chapter=chapter_obj)
    previous, following = selectors.chapter_neighbours(chapter=chapter_obj)
    context = {
        "chapter": chapter_obj,
        "course": chapter_obj.course,
        "rendered": rendered,
        "previous": previous,
        "next": following,
        "is_read": selectors.chapter_is_read(chapter=chapter_obj, user=request.user),
        "cells": selectors.chapter_cells_for(chapter=chapter_obj, user=request.user),
        "exercises": selectors.chapter_exercises_for(chapter=chapter_obj, user=request.user),
        "editions": selectors.course_other_editions(course=chapter_obj.course, chapter_slug=chapter_obj.slug),
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
