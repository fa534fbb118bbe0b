"""manage.py course_lint DIR...: validate course folders; every error names file and line."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from lessons.course_files import CourseFormatError
from lessons.course_io import course_folder_read


class Command(BaseCommand):
    help = "Check course folders (front matter, cell attributes, cells that do not parse, pictures)."

    def add_arguments(self, parser):
        parser.add_argument("directories", nargs="*", type=Path)

    def handle(self, *args, directories, **options):
        failed = 0
        for directory in directories or [Path(d) for d in settings.COURSE_DIRS]:
            try:
                folder = course_folder_read(directory=directory)
            except CourseFormatError as exc:
                failed += len(exc.problems)
                for problem in exc.problems:
                    self.stderr.write(f"{directory}/{problem}")
                continue
            cells = sum(len(p.cells) for _, p in folder.chapters.values())
            self.stdout.write(f"{directory}: {len(folder.chapters)} chapters, {cells} cells, ok")
        if failed:
            raise CommandError(f"{failed} problem(s) found")
