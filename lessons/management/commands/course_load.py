"""manage.py course_load DIR...: load course folders into the database."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from lessons.course_files import CourseFormatError
from lessons.course_io import course_import


class Command(BaseCommand):
    help = "Load course folders (default: settings.COURSE_DIRS) into the database; safe to repeat."

    def add_arguments(self, parser):
        parser.add_argument("directories", nargs="*", type=Path)

    def handle(self, *args, directories, **options):
        for directory in directories or [Path(d) for d in settings.COURSE_DIRS]:
            try:
                course = course_import(directory=directory)
            except CourseFormatError as exc:
                raise CommandError(f"{directory}: the course has errors:\n{exc}") from exc
            self.stdout.write(f"loaded {course.slug}: {course.chapters.count()} chapters from {directory}")
