"""manage.py course_export SLUG DIR: write a course back to files, byte for byte as loaded."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from lessons.course_io import course_export
from lessons.models import Course


class Command(BaseCommand):
    help = "Export a course as a folder of Markdown files and pictures."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("directory", type=Path)

    def handle(self, *args, slug, directory, **options):
        course = Course.objects.filter(slug=slug).first()
        if course is None:
            raise CommandError(f"no course with slug '{slug}'")
        paths = course_export(course=course, directory=directory)
        self.stdout.write(f"wrote {len(paths)} files to {directory}")
