"""manage.py course_lint DIR...: validate course folders; every error names file and line.

A translation (``translation_of`` in its course.md) is also held to its original:
the same chapters, cells, exercises and sections (lessons.editions). A course with a
``glossary.md`` is held to it: no variant the glossary rejects in its text (lessons.glossary).
"""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from lessons.course_files import CourseFormatError, parse_course
from lessons.course_io import CourseFolder, course_folder_read
from lessons.editions import translation_problems
from lessons.glossary import glossary_problems, parse_glossary


def _slug(folder: CourseFolder) -> str:
    return str(parse_course(folder.course_source).meta["slug"])


def _original(slug: str, *, near: Path, known: dict[Path, CourseFolder]) -> CourseFolder | None:
    """The folder of the course called ``slug``: among those linted, beside the translation, or in COURSE_DIRS."""
    for folder in known.values():
        if _slug(folder) == slug:
            return folder
    candidates = [p for p in sorted(near.parent.iterdir()) if p.is_dir()] + [Path(d) for d in settings.COURSE_DIRS]
    for directory in candidates:
        if directory.resolve() in {k.resolve() for k in known} or not (directory / "course.md").is_file():
            continue
        try:
            folder = course_folder_read(directory=directory)
        except CourseFormatError:
            continue
        if _slug(folder) == slug:
            return folder
    return None


class Command(BaseCommand):
    help = "Check course folders (front matter, cell attributes, cells that do not parse, pictures, translations, glossary)."

    def add_arguments(self, parser):
        parser.add_argument("directories", nargs="*", type=Path)

    def handle(self, *args, directories, **options):
        failed = 0
        folders: dict[Path, CourseFolder] = {}
        for directory in directories or [Path(d) for d in settings.COURSE_DIRS]:
            try:
                folders[directory] = course_folder_read(directory=directory)
            except CourseFormatError as exc:
                failed += len(exc.problems)
                for problem in exc.problems:
                    self.stderr.write(f"{directory}/{problem}")
        for directory, folder in folders.items():
            problems = []
            original_slug = parse_course(folder.course_source).meta.get("translation_of")
            if original_slug:
                original = _original(original_slug, near=directory, known=folders)
                if original is None:
                    self.stderr.write(f"{directory}/course.md: translation_of '{original_slug}' names no course folder found")
                    problems.append(original_slug)
                else:
                    for problem in translation_problems(original=original, translation=folder):
                        self.stderr.write(f"{directory}/{problem}")
                        problems.append(problem)
            if folder.glossary:
                texts = {"course.md": folder.course_source, **{name: source for name, (source, _) in folder.chapters.items()}}
                for problem in glossary_problems(parse_glossary(folder.glossary), texts):
                    self.stderr.write(f"{directory}/{problem}")
                    problems.append(problem)
            failed += len(problems)
            if not problems:
                cells = sum(len(p.cells) for _, p in folder.chapters.values())
                translation = f", same as {original_slug}" if original_slug else ""
                self.stdout.write(f"{directory}: {len(folder.chapters)} chapters, {cells} cells{translation}, ok")
        if failed:
            raise CommandError(f"{failed} problem(s) found")
