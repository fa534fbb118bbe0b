"""The demo learner and instructor of the embedded default (`make run`), with their public passwords."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import Group, User

from .roles import INSTRUCTOR_GROUP


@dataclass(frozen=True)
class DemoUser:
    username: str
    password: str
    instructor: bool


DEMO_USERS = (DemoUser("learner", "learner-demo-pass", False), DemoUser("teacher", "teacher-demo-pass", True))
DEMO_REFUSED = (
    "Demo users exist only under the development settings (courseplatform.settings.development): "
    "their passwords are public. Create real accounts with manage.py createsuperuser or the sign-up page."
)


class DemoUsersRefused(Exception):
    pass


def demo_users_ensure() -> list[tuple[str, bool]]:
    """Create the demo users that are missing; returns (username, created) for each."""
    if not settings.DEMO_USERS_ALLOWED:
        raise DemoUsersRefused(DEMO_REFUSED)
    done = []
    for demo in DEMO_USERS:
        user, created = User.objects.get_or_create(username=demo.username)
        if created:
            user.set_password(demo.password)
            user.save()
        if demo.instructor:
            user.groups.add(Group.objects.get(name=INSTRUCTOR_GROUP))
            # The demo instructor teaches the courses make run loaded (their class, their learners' sandboxes).
            from lessons.models import Course

            for course in Course.objects.all():
                course.instructors.add(user)
        done.append((demo.username, created))
    return done
