from django.apps import AppConfig
from django.db.models.signals import post_migrate


class LessonsConfig(AppConfig):
    name = "lessons"
    verbose_name = "Lessons"

    def ready(self) -> None:
        from .roles import instructor_group_ensure

        # Permissions exist only after migrate, so the group is synced then, every time.
        post_migrate.connect(instructor_group_ensure, sender=self)
