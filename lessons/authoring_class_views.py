"""The class of a course for its instructors: learners' progress, stopping or resetting their sandboxes.

Only for the course's own instructors (any edition of it) and superusers (teaching.course_taught_by):
the learners are theirs only.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from sandboxes import selectors as sandbox_selectors
from sandboxes.services.actions import sandbox_reset, sandbox_stop

from . import classroom, teaching
from .authoring_views import _course, instructor_required
from .models import Course


def _taught(request: HttpRequest, slug: str) -> Course:
    """The course, if the request's instructor teaches it (403 otherwise): its learners are theirs only."""
    course = _course(slug)
    if not teaching.course_taught_by(course=course, user=request.user):
        raise PermissionDenied("this class is its own instructors'")
    return course


@instructor_required
@require_GET
def class_view(request: HttpRequest, course: str) -> HttpResponse:
    course_obj = _taught(request, course)
    report = classroom.course_class(course=course_obj)
    sandboxes = sandbox_selectors.sandboxes_of_users(user_ids=[line.user.pk for line in report.learners])
    rows = [(line, sandboxes.get(line.user.pk, [])) for line in report.learners]
    return render(request, "authoring/class.html", {"course": course_obj, "report": report, "rows": rows})


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
