"""The class of a course for its instructors: learners' progress, stopping or resetting their sandboxes,
and booking a class session so that its brokers are warm when it starts (sandboxes/services/bookings.py).

Only for the course's own instructors (any edition of it) and superusers (teaching.course_taught_by):
the learners are theirs only.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext
from django.views.decorators.http import require_GET, require_POST

from sandboxes import selectors as sandbox_selectors
from sandboxes.services.actions import sandbox_reset, sandbox_stop
from sandboxes.services.bookings import booking_cancel, booking_create, bookings_of_course
from sandboxes.services.lifecycle import SandboxError

from . import classroom, teaching
from .authoring_views import InstructorRequest, _course, instructor_required
from .models import Cell, Chapter, Course

#: The booking form's time field (``<input type="datetime-local">``), read in the site's time zone.
LOCAL_TIME = "%Y-%m-%dT%H:%M"


def _taught(request: HttpRequest, slug: str) -> Course:
    """The course, if the request's instructor teaches it (403 otherwise): its learners are theirs only."""
    course = _course(slug)
    if not teaching.course_taught_by(course=course, user=request.user):
        raise PermissionDenied("this class is its own instructors'")
    return course


@instructor_required
@require_GET
def class_view(request: HttpRequest, course: str) -> HttpResponse:
    return _class_page(request, _taught(request, course))


def _class_page(request: HttpRequest, course: Course, *, booking_error: str = "", status: int = 200) -> HttpResponse:
    report = classroom.course_class(course=course)
    sandboxes = sandbox_selectors.sandboxes_of_users(user_ids=[line.user.pk for line in report.learners])
    rows = [(line, sandboxes.get(line.user.pk, [])) for line in report.learners]
    soon = timezone.localtime() + timedelta(hours=1)
    context = {
        "course": course,
        "report": report,
        "rows": rows,
        "bookings": bookings_of_course(course_slug=course.slug),
        "chapters": course.chapters.order_by("order"),
        "booking_start": soon.replace(minute=0, second=0, microsecond=0).strftime(LOCAL_TIME),
        "booking_error": booking_error,
        "booking_form": request.POST if booking_error else {},
    }
    return render(request, "authoring/class.html", context, status=status)


def _first_broker(chapter: Chapter) -> str:
    """The broker a learner meets first in the chapter: its first cell's (the one their first Shift+Enter starts)."""
    first = Cell.objects.filter(chapter=chapter, role="run").order_by("position").first()
    return first.broker if first is not None else chapter.broker


@instructor_required
@require_POST
def class_booking_create(request: InstructorRequest, course: str) -> HttpResponse:
    """Book a class: the chapter it starts with, when, and how many learners; its first broker is warmed for them."""
    course_obj = _taught(request, course)
    chapter = course_obj.chapters.filter(slug=request.POST.get("chapter", "")).first()
    try:
        naive = datetime.strptime(request.POST.get("starts_at", ""), LOCAL_TIME)
        learners = int(request.POST.get("learners", ""))
    except ValueError:
        return _class_page(request, course_obj, booking_error=gettext("Укажите время начала и число учеников."), status=400)
    if chapter is None:
        return _class_page(request, course_obj, booking_error=gettext("Выберите главу, с которой начнётся занятие."), status=400)
    try:
        booking_create(
            course_slug=course_obj.slug,
            label=f"{chapter.number} {chapter.title}",
            brokers=[_first_broker(chapter)],
            learners=learners,
            starts_at=timezone.make_aware(naive),
            user_id=request.user.pk,
        )
    except SandboxError as exc:
        return _class_page(request, course_obj, booking_error=str(exc), status=400)
    return redirect("authoring:class", course=course)


@instructor_required
@require_POST
def class_booking_cancel(request: HttpRequest, course: str, booking: int) -> HttpResponse:
    course_obj = _taught(request, course)
    if not booking_cancel(course_slug=course_obj.slug, booking_id=booking):
        raise Http404("no such booking in this class")
    return redirect("authoring:class", course=course)


@instructor_required
@require_POST
def class_sandbox_action(request: HttpRequest, course: str, user_id: int, broker: str, action: str) -> HttpResponse:
    course_obj = _taught(request, course)
    if not teaching.course_has_learner(course=course_obj, user_id=user_id):
        raise Http404("no such learner in this class")
    if action == "stop":
        sandbox_stop(user_id=user_id, broker=broker)
    elif action == "reset":
        sandbox_reset(user_id=user_id, broker=broker)
    else:
        raise Http404("unknown action")
    return redirect("authoring:class", course=course)
