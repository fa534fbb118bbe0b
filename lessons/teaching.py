"""Who teaches which course: an instructor's powers end at the courses they teach.

Authoring a course (editing, previewing, running drafts, proving exercises, publishing,
importing over it, exporting) is for the instructors listed on that course, staff and
superusers. What reaches other people (the class page with their progress, stopping or
resetting their sandboxes) is for the course's own instructors (any edition of it, since
a translation shares its class) and superusers. Whoever creates or imports a course
through the authoring pages teaches it; others are added in the admin (or by
``demo_users`` in development). Because an edition shares its class, naming a course as
the one translated (``translation_of``) takes being able to author that course.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User

from courseplatform.accounts.roles import user_is_instructor

from .models import ChapterRead, Course, ExerciseAttempt


def course_taught_by(*, course: Course, user: AbstractBaseUser | AnonymousUser) -> bool:
    """Whether ``user`` teaches ``course`` or one of its editions (a superuser teaches all)."""
    if not isinstance(user, User) or not user.is_authenticated:
        return False
    if user.is_superuser:
        return True
    family = course.family
    editions = Course.objects.filter(slug=family) | Course.objects.filter(translation_of=family)
    return editions.filter(instructors=user).exists()


#: The reason a PermissionDenied carries when the course is not the instructor's (templates/403.html words it).
NOT_YOUR_COURSE = "not-your-course"


def course_editable_by(*, course: Course, user: AbstractBaseUser | AnonymousUser) -> bool:
    """Whether ``user`` may author ``course``: listed on it as an instructor, or staff, or a superuser."""
    if not isinstance(user, User) or not user.is_authenticated:
        return False
    if user.is_staff or user.is_superuser:
        return True
    return course.instructors.filter(pk=user.pk).exists()


def course_draft_allowed(*, slug: str, user: AbstractBaseUser | AnonymousUser) -> bool:
    """Whether ``user`` may run draft cells of a chapter of course ``slug`` (the editor's live WebSocket)."""
    course = Course.objects.filter(slug=slug).first()
    if course is None or not isinstance(user, User | AnonymousUser) or not user_is_instructor(user=user):
        return False
    return course_editable_by(course=course, user=user)


def course_import_refusal(*, slug: str, translation_of: str, user: AbstractBaseUser | AnonymousUser) -> str | None:
    """Why ``user`` may not import a course ``slug`` (translating ``translation_of``), or None when they may.

    An import replaces a course of the same slug, and an edition shares the class of the course it translates.
    """
    existing = Course.objects.filter(slug=slug).first()
    if existing is not None and not course_editable_by(course=existing, user=user):
        return "taken"
    if translation_of:
        original = Course.objects.filter(slug=translation_of).first()
        if original is None or not course_editable_by(course=original, user=user):
            return "translation"
    return None


def course_instructor_add(*, course: Course, user: AbstractBaseUser | AnonymousUser) -> None:
    """Make ``user`` an instructor of ``course`` (who created or imported it)."""
    if isinstance(user, User) and user.is_authenticated:
        course.instructors.add(user)


def course_has_learner(*, course: Course, user_id: int) -> bool:
    """Whether the user is in the course's class: read a chapter or tried an exercise of any edition."""
    family = course.family
    return (
        ChapterRead.objects.filter(course_family=family, user_id=user_id).exists()
        or ExerciseAttempt.objects.filter(course_family=family, user_id=user_id).exists()
    )
