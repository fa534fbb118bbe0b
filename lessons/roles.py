"""The instructor group and the authoring permissions it holds."""

from typing import Any

from django.contrib.auth.models import Group, Permission

from courseplatform.accounts.roles import INSTRUCTOR_GROUP

AUTHORING_CODENAMES = (
    "add_course",
    "change_course",
    "view_course",
    "add_chapter",
    "change_chapter",
    "view_chapter",
    "delete_chapter",
)


def instructor_group_ensure(**_: Any) -> Group:
    """Create the instructor group if missing and give it exactly the authoring permissions."""
    group, _created = Group.objects.get_or_create(name=INSTRUCTOR_GROUP)
    perms = Permission.objects.filter(content_type__app_label="lessons", codename__in=AUTHORING_CODENAMES)
    group.permissions.set(perms)
    return group
