"""manage.py course_load [--instructor USERNAME]... DIR...: load course folders into the database.

Each --instructor teaches the loaded courses (their class page and their learners' sandboxes).
"""

from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError

from lessons.course_files import CourseFormatError
from lessons.course_io import course_import


class Command(BaseCommand):
    help = "Load course folders (default: settings.COURSE_DIRS) into the database; safe to repeat."

    def add_arguments(self, parser):
        parser.add_argument("directories", nargs="*", type=Path)
        parser.add_argument("--instructor", action="append", default=[], help="username of who teaches them")

    def handle(self, *args, directories, instructor, **options):
        teachers = []
        for username in instructor:
            try:
                teachers.append(User.objects.get(username=username))
            except User.DoesNotExist as exc:
                raise CommandError(f"no user {username!r}") from exc
        for directory in directories or [Path(d) for d in settings.COURSE_DIRS]:
            try:
                course = course_import(directory=directory)
            except CourseFormatError as exc:
                raise CommandError(f"{directory}: the course has errors:\n{exc}") from exc
            course.instructors.add(*teachers)
            self.stdout.write(f"loaded {course.slug}: {course.chapters.count()} chapters from {directory}")
