"""The instructors' side of the site: courses, the chapter editor with live preview, history,
archives and exercise verification (the class view: authoring_class_views.py). Every view needs
the authoring permission, and every view of a course being listed on it as its instructor
(teaching.course_editable_by; staff and superusers author all): 403 otherwise."""

from __future__ import annotations

from functools import wraps
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop
from django.views.decorators.http import require_GET, require_POST

from courseplatform.accounts.roles import user_is_instructor

from . import archives, authoring, exercises, teaching
from . import authoring_selectors as selectors
from . import chapter_editor as editor
from .chapter_parsing import parse_chapter
from .course_files import CourseFormatError, FormatProblem, split_front_matter
from .course_io import course_import
from .models import Chapter, Course
from .rendering import markdown_render

FOLDER_NOT_ALLOWED = gettext_noop("Импорт из этой папки не разрешён (см. COURSE_IMPORT_ROOTS).")


class InstructorRequest(HttpRequest):
    user: User


def instructor_required(view):
    """Logged in (else the login page) and holding the authoring permission (else 403)."""

    @login_required
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not user_is_instructor(user=request.user):
            raise PermissionDenied("authoring is for instructors")
        return view(request, *args, **kwargs)

    return wrapped


def _course(slug: str) -> Course:
    found = selectors.course_find(slug=slug)
    if found is None:
        raise Http404("no such course")
    return found


def _authored(request: HttpRequest, slug: str) -> Course:
    """The course, if the request's instructor may author it; 403 (templates/403.html says why) otherwise."""
    course = _course(slug)
    if not teaching.course_editable_by(course=course, user=request.user):
        raise PermissionDenied(teaching.NOT_YOUR_COURSE)
    return course


def _courses(request: HttpRequest) -> list[Course]:
    """The courses the index lists: those the instructor may author."""
    return [c for c in selectors.courses_all() if teaching.course_editable_by(course=c, user=request.user)]


# -- courses -------------------------------------------------------------------


@instructor_required
@require_GET
def index(request: HttpRequest) -> HttpResponse:
    return render(request, "authoring/index.html", {"courses": _courses(request)})


@instructor_required
@require_POST
def course_create(request: HttpRequest) -> HttpResponse:
    try:
        course = authoring.course_create(
            title=request.POST.get("title", "").strip(),
            slug=request.POST.get("slug", "").strip(),
            description=request.POST.get("description", ""),
        )
    except CourseFormatError as exc:
        return render(request, "authoring/index.html", {"courses": _courses(request), "errors": exc.problems}, status=400)
    teaching.course_instructor_add(course=course, user=request.user)
    return redirect("authoring:course", course=course.slug)


@instructor_required
@require_GET
def course_page(request: HttpRequest, course: str) -> HttpResponse:
    course_obj = _authored(request, course)
    chapters = selectors.course_chapters(course=course_obj)
    return render(request, "authoring/course.html", {"course": course_obj, "chapters": chapters})


@instructor_required
@require_POST
def course_publish(request: HttpRequest, course: str) -> HttpResponse:
    _authored(request, course)
    authoring.course_publish(slug=course, published=request.POST.get("published") == "1")
    return redirect("authoring:course", course=course)


@instructor_required
@require_POST
def course_reorder(request: InstructorRequest, course: str) -> HttpResponse:
    course_obj = _authored(request, course)
    move = request.POST.get("move")
    try:
        if move:  # "slug:up" / "slug:down" from the buttons
            slug, _, direction = move.partition(":")
            authoring.chapter_move(course=course_obj, slug=slug, direction=direction, author=request.user)
        else:
            authoring.chapters_reorder(course=course_obj, slugs=request.POST.getlist("slug"), author=request.user)
    except (ValueError, CourseFormatError, authoring.ChapterConflict) as exc:
        return HttpResponse(str(exc), status=400)
    return redirect("authoring:course", course=course)


@instructor_required
@require_GET
def course_export(request: HttpRequest, course: str) -> HttpResponse:
    course_obj = _authored(request, course)
    response = HttpResponse(archives.course_archive(course=course_obj), content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{course_obj.slug}.zip"'
    return response


@instructor_required
@require_POST
def course_import_view(request: InstructorRequest) -> HttpResponse:
    """From an uploaded zip, or from a folder on the server under settings.COURSE_IMPORT_ROOTS."""
    try:
        upload = request.FILES.get("archive")
        if upload is not None:
            course = archives.course_archive_import(data=upload.read(), author=request.user)
        else:
            folder = Path(request.POST.get("folder", "")).resolve()
            roots = [Path(r).resolve() for r in settings.COURSE_IMPORT_ROOTS]
            if not any(folder == r or r in folder.parents for r in roots):
                raise CourseFormatError([FormatProblem(str(folder), 0, _(FOLDER_NOT_ALLOWED))])
            course = course_import(directory=folder, author=request.user)
    except CourseFormatError as exc:
        context = {"courses": _courses(request), "errors": exc.problems}
        return render(request, "authoring/index.html", context, status=400)
    teaching.course_instructor_add(course=course, user=request.user)
    return redirect("authoring:course", course=course.slug)


# -- chapters ------------------------------------------------------------------


@instructor_required
@require_GET
def chapter_new(request: HttpRequest, course: str) -> HttpResponse:
    course_obj = _authored(request, course)
    state = editor.editor_state_new(order=selectors.chapter_order_next(course=course_obj))
    return render(request, "authoring/editor.html", {"course": course_obj, "chapter": None, "state": state})


@instructor_required
@require_POST
def chapter_create(request: InstructorRequest, course: str) -> JsonResponse:
    course_obj = _authored(request, course)
    data: dict[str, Any] = {}
    try:
        data = editor.editor_data(request.body)
        chapter = authoring.chapter_create(course=course_obj, source=editor.editor_source(data), author=request.user)
    except CourseFormatError as exc:
        return JsonResponse({"problems": editor.editor_problems(exc, data=data)}, status=400)
    except ValueError as exc:
        return JsonResponse({"problems": [{"file": "", "line": 0, "message": str(exc)}]}, status=400)
    edit = reverse("authoring:chapter_edit", kwargs={"course": course, "chapter": chapter.slug})
    return JsonResponse({"revision": chapter.revision, "edit_url": edit}, status=201)


def _chapter(request: HttpRequest, course: str, chapter: str) -> Chapter:
    _authored(request, course)
    found = selectors.chapter_find(course=course, chapter=chapter)
    if found is None:
        raise Http404("no such chapter")
    return found


@instructor_required
@require_GET
def chapter_edit(request: HttpRequest, course: str, chapter: str) -> HttpResponse:
    chapter_obj = _chapter(request, course, chapter)
    return render(
        request,
        "authoring/editor.html",
        {"course": chapter_obj.course, "chapter": chapter_obj, "state": editor.editor_state(chapter_obj)},
    )


@instructor_required
@require_POST
def chapter_save(request: InstructorRequest, course: str, chapter: str) -> JsonResponse:
    chapter_obj = _chapter(request, course, chapter)
    data: dict[str, Any] = {}
    try:
        data = editor.editor_data(request.body)
        saved = authoring.chapter_save(
            chapter=chapter_obj,
            source=editor.editor_source(data),
            author=request.user,
            base_revision=int(data.get("revision", -1)),
        )
    except authoring.ChapterConflict as exc:
        return JsonResponse(
            {"conflict": True, "revision": exc.current.revision, "diff": exc.diff, "current": editor.editor_state(exc.current)},
            status=409,
        )
    except CourseFormatError as exc:
        return JsonResponse({"problems": editor.editor_problems(exc, data=data)}, status=400)
    except ValueError as exc:
        return JsonResponse({"problems": [{"file": "", "line": 0, "message": str(exc)}]}, status=400)
    edit = reverse("authoring:chapter_edit", kwargs={"course": course, "chapter": saved.slug})
    return JsonResponse({"revision": saved.revision, "edit_url": edit})


@instructor_required
@require_POST
def chapter_publish(request: HttpRequest, course: str, chapter: str) -> HttpResponse:
    authoring.chapter_publish(chapter=_chapter(request, course, chapter), published=request.POST.get("published") == "1")
    back = request.POST.get("next", "")
    # Only a page of this site: a crafted form must not send an instructor elsewhere after publishing.
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        back = reverse("authoring:course", kwargs={"course": course})
    return redirect(back)


@instructor_required
@require_POST
def preview(request: HttpRequest, course: str) -> JsonResponse:
    """The page as learners will see it (same renderer, same sanitizer) and the linter's verdict."""
    _authored(request, course)
    try:
        data = editor.editor_data(request.body)
        source = editor.editor_source(data)
    except ValueError as exc:
        return JsonResponse({"html": "", "toc": [], "problems": [{"line": 0, "message": str(exc)}]}, status=400)
    problems: list[dict[str, object]] = []
    try:
        parse_chapter(source, file="chapter")
    except CourseFormatError as exc:
        problems = editor.editor_problems(exc, data=data)
    meta, _body, _line = split_front_matter(source, file="chapter")
    # The editor's own text is rendered (the file drops its leading blank lines), so
    # data-line counts lines the way the editor does.
    rendered = markdown_render(
        str(data.get("body", "")),
        broker=str(meta.get("broker") or ""),
        asset_base=str(data.get("asset_base", "")),
        source_lines=True,
    )
    toc = [{"level": h.level, "anchor": h.anchor, "text": h.text} for h in rendered.toc]
    return JsonResponse({"html": rendered.html, "toc": toc, "problems": problems})


@instructor_required
@require_GET
def chapter_history(request: HttpRequest, course: str, chapter: str) -> HttpResponse:
    chapter_obj = _chapter(request, course, chapter)
    history = selectors.chapter_history(chapter=chapter_obj, a=request.GET.get("a"), b=request.GET.get("b"))
    if history is None:
        raise Http404("no such revision")
    context = {
        "course": chapter_obj.course,
        "chapter": chapter_obj,
        "revisions": history.revisions,
        "diff": history.diff,
        "a": history.a,
        "b": history.b,
    }
    return render(request, "authoring/history.html", context)


@instructor_required
@require_POST
def chapter_restore(request: InstructorRequest, course: str, chapter: str, number: int) -> HttpResponse:
    chapter_obj = _chapter(request, course, chapter)
    if not selectors.chapter_revision_exists(chapter=chapter_obj, number=number):
        raise Http404("no such revision")
    authoring.chapter_revision_restore(chapter=chapter_obj, number=number, author=request.user)
    return redirect("authoring:chapter_history", course=course, chapter=chapter)


@instructor_required
@require_POST
def exercise_verify(request: InstructorRequest, course: str, chapter: str, exercise: str) -> JsonResponse:
    """Start proving an exercise on a fresh broker: its check fails empty, passes after the solution."""
    parts = selectors.exercise_proof_parts(chapter=_chapter(request, course, chapter), exercise=exercise)
    if parts is None:
        raise Http404("no such exercise")
    try:
        job = exercises.exercise_verify_enqueue(
            user_id=request.user.pk,
            broker=parts.broker,
            check=parts.check,
            solution=parts.solution,
            in_terminal=parts.in_terminal,
        )
    except exercises.ProofRefused as refused:
        # The instructor's own limits, as a learner's: sandboxes held and runs at once.
        return JsonResponse({"error": str(refused)}, status=429)
    return JsonResponse({"job": job, "poll": reverse("authoring:verify_result", kwargs={"job": job})}, status=202)


@instructor_required
@require_GET
def verify_result(request: InstructorRequest, job: str) -> JsonResponse:
    if not exercises.exercise_verify_owned(job=job, user_id=request.user.pk):
        raise Http404("no such proof of yours")
    return JsonResponse(exercises.exercise_verify_result(job=job))
