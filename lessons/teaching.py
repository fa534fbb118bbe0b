"""Who teaches which course: an instructor's powers over learners end at the courses they teach.

Authoring stays open to every instructor; what reaches other people (the class page with
their progress, stopping or resetting their sandboxes) is for the course's own instructors
(any edition of it, since a translation shares its class) and superusers. Whoever creates
or imports a course through the authoring pages teaches it; others are added in the admin
(or by ``demo_users`` in development).
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User

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
