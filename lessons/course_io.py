"""Moving a course between a folder of files and the database, without losing a byte."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from django.contrib.auth.models import User
from django.db import transaction
from django.utils.translation import gettext
from django.utils.translation import gettext as _

from .chapter_parsing import parse_chapter
from .course_files import (
    CourseFormatError,
    FormatProblem,
    ParsedChapter,
    decode_source,
    parse_course,
)
from .glossary import GLOSSARY_FILE, parse_glossary
from .images import image_size
from .models import Cell, Chapter, ChapterRevision, Course, CourseAsset, Exercise
from .teaching import course_import_refusal

COURSE_FILE = "course.md"
ASSET_DIR = "img"
ASSET_SUFFIXES = {".svg", ".png", ".jpg", ".jpeg", ".gif", ".webp"}


@dataclass(frozen=True)
class CourseFolder:
    """What a course folder holds, read and validated, before anything touches the database."""

    course_source: str
    chapters: dict[str, tuple[str, ParsedChapter]]  # filename -> (source, parsed)
    assets: dict[str, bytes]
    glossary: str = ""  # glossary.md as it is, or "" if the course has none


def course_folder_read(*, directory: Path) -> CourseFolder:
    """Read and validate every file; raises CourseFormatError with all problems of all files."""
    problems: list[FormatProblem] = []
    if not (directory / COURSE_FILE).is_file():
        raise CourseFormatError([FormatProblem(str(directory / COURSE_FILE), 1, _("в папке курса нет course.md"))])
    course_source = ""
    try:
        course_source = decode_source((directory / COURSE_FILE).read_bytes(), file=COURSE_FILE)
        parse_course(course_source, file=COURSE_FILE)
    except CourseFormatError as exc:
        problems += exc.problems
    glossary = ""
    if (directory / GLOSSARY_FILE).is_file():
        try:
            glossary = decode_source((directory / GLOSSARY_FILE).read_bytes(), file=GLOSSARY_FILE)
            parse_glossary(glossary)
        except CourseFormatError as exc:
            problems += exc.problems
    chapters: dict[str, tuple[str, ParsedChapter]] = {}
    slugs: dict[str, str] = {}
    for path in sorted(directory.glob("*.md")):
        if path.name in (COURSE_FILE, GLOSSARY_FILE):
            continue
        try:
            source = decode_source(path.read_bytes(), file=path.name)
            parsed = parse_chapter(source, file=path.name)
        except CourseFormatError as exc:
            problems += exc.problems
            continue
        slug = parsed.meta["slug"]
        if slug in slugs:
            problems.append(
                FormatProblem(path.name, 2, _("слаг «{slug}» уже занят файлом {file}").format(slug=slug, file=slugs[slug]))
            )
        slugs[slug] = path.name
        chapters[path.name] = (source, parsed)
    assets = {}
    if (directory / ASSET_DIR).is_dir():
        for path in sorted((directory / ASSET_DIR).iterdir()):
            if path.is_file() and path.suffix.lower() in ASSET_SUFFIXES:
                assets[f"{ASSET_DIR}/{path.name}"] = path.read_bytes()
    for filename, (_source, parsed) in chapters.items():
        for ref in _image_refs(parsed.body):
            if ref not in assets:
                problems.append(FormatProblem(filename, 1, _("картинки «{ref}» нет в папке курса").format(ref=ref)))
    if problems:
        raise CourseFormatError(problems)
    return CourseFolder(course_source, chapters, assets, glossary)


def _image_refs(body: str) -> list[str]:
    import re

    return [m.removeprefix("./") for m in re.findall(r"!\[[^\]]*\]\(([^)\s]+)", body) if not re.match(r"^[a-z]+:|^/", m)]


def chapter_structure_save(*, chapter: Chapter, parsed: ParsedChapter) -> None:
    """Rebuild a chapter's exercises and cells from its parsed source."""
    chapter.exercises.all().delete()
    chapter.cells.all().delete()
    exercises = {
        ex.key: Exercise.objects.create(chapter=chapter, key=ex.key, title=ex.title, position=i, hints=list(ex.hints))
        for i, ex in enumerate(parsed.exercises)
    }
    Cell.objects.bulk_create(
        Cell(
            chapter=chapter,
            exercise=exercises.get(cell.exercise) if cell.exercise else None,
            key=cell.key,
            role=cell.role,
            broker=cell.broker,
            timeout=cell.timeout,
            code=cell.code,
            language=cell.language,
            position=i,
            line=cell.line,
        )
        for i, cell in enumerate(parsed.cells)
    )


def chapter_fields(parsed: ParsedChapter) -> dict[str, object]:
    meta = parsed.meta
    return {
        "number": meta["number"],
        "title": meta["title"],
        "order": meta["order"],
        "broker": meta["broker"],
        "estimated_minutes": meta["estimated_minutes"],
        "objectives": meta["objectives"],
    }


@transaction.atomic
def course_import(*, directory: Path, author: User | None = None) -> Course:
    """Load a course folder; the course is matched by slug, so loading twice changes nothing.

    ``author`` (an import from the authoring pages) must be able to author the course it would
    replace and the one it says it translates (teaching.course_import_refusal); the command line's
    loads name no author."""
    folder = course_folder_read(directory=directory)
    meta = parse_course(folder.course_source).meta
    if author is not None:
        refusal = course_import_refusal(slug=meta["slug"], translation_of=meta.get("translation_of", ""), user=author)
        if refusal == "taken":
            message = gettext("курс «{slug}» уже есть, и вы не его преподаватель: импорт заменил бы чужой курс")
            raise CourseFormatError([FormatProblem(COURSE_FILE, 0, message.format(slug=meta["slug"]))])
        if refusal == "translation":
            message = gettext("translation_of: «{slug}» — не ваш курс (или его нет): перевод делят с курсом его класс")
            raise CourseFormatError([FormatProblem(COURSE_FILE, 0, message.format(slug=meta["translation_of"]))])
    course, _ = Course.objects.update_or_create(
        slug=meta["slug"],
        defaults={
            "title": meta["title"],
            "language": meta["language"],
            "translation_of": meta.get("translation_of", ""),
            "source": folder.course_source,
            "glossary": folder.glossary,
        },
    )
    keep = []
    for filename, (source, parsed) in folder.chapters.items():
        chapter = Chapter.objects.filter(course=course, slug=parsed.meta["slug"]).first()
        if chapter is not None and chapter.source == source and chapter.filename == filename:
            keep.append(chapter.pk)
            continue
        chapter, _ = Chapter.objects.update_or_create(
            course=course,
            slug=parsed.meta["slug"],
            defaults={"filename": filename, "source": source, **chapter_fields(parsed)},
        )
        chapter_structure_save(chapter=chapter, parsed=parsed)
        chapter.revision += 1
        chapter.save(update_fields=["revision"])
        ChapterRevision.objects.create(chapter=chapter, number=chapter.revision, source=source, note=f"imported {filename}")
        keep.append(chapter.pk)
    course.chapters.exclude(pk__in=keep).delete()
    for path, content in folder.assets.items():
        width, height = image_size(path, content) or (None, None)
        CourseAsset.objects.update_or_create(
            course=course, path=path, defaults={"content": content, "width": width, "height": height}
        )
    course.assets.exclude(path__in=folder.assets).delete()
    return course


def course_export(*, course: Course, directory: Path) -> list[Path]:
    """Write the course back as files; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = [directory / COURSE_FILE]
    written[0].write_bytes(course.source.encode("utf-8"))
    if course.glossary:
        written.append(directory / GLOSSARY_FILE)
        written[-1].write_bytes(course.glossary.encode("utf-8"))
    for chapter in course.chapters.all():
        path = directory / chapter.filename
        path.write_bytes(chapter.source.encode("utf-8"))
        written.append(path)
    for asset in course.assets.all():
        path = directory / asset.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bytes(asset.content))
        written.append(path)
    return written
