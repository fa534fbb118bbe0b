"""Who is an instructor: members of one group that holds the authoring permissions."""

from django.contrib.auth.models import AnonymousUser, User

INSTRUCTOR_GROUP = "instructors"
#: The permission every authoring view checks.
AUTHORING_PERMISSION = "lessons.change_chapter"


def user_is_instructor(*, user: User | AnonymousUser) -> bool:
    """True when the user may author courses (the instructor group, or a superuser)."""
    return bool(user.is_authenticated and user.has_perm(AUTHORING_PERMISSION))
