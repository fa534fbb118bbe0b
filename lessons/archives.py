"""A course as one archive (zip): what instructors download to keep in git, and upload back."""

from __future__ import annotations

import io
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from django.contrib.auth.models import User
from django.utils.translation import gettext as _

from .course_files import CourseFormatError, FormatProblem
from .course_io import ASSET_DIR, COURSE_FILE, course_export, course_import
from .models import Course

MAX_ARCHIVE_BYTES = 50 * 1024 * 1024
MAX_MEMBERS = 500


def course_archive(*, course: Course) -> bytes:
    """The course's files in a zip, laid out exactly as a course folder."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        course_export(course=course, directory=root)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(p for p in root.rglob("*") if p.is_file()):
                archive.write(path, path.relative_to(root).as_posix())
        return buffer.getvalue()


def _problem(message: str) -> CourseFormatError:
    return CourseFormatError([FormatProblem("archive", 1, message)])


def _member_bytes(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> bytes:
    """A member's content, never more than its header declared (which the total above was checked on).

    zipfile stops at the declared size; a member that holds more (a bomb that lies in its header)
    then fails its checksum, and that is reported as a damaged archive, not as a server error.
    """
    try:
        # Read with a bound: ZipFile.read() would inflate the whole compressed stream in one call
        # before cutting it to the declared size, and a lying bomb would take all its memory.
        with archive.open(member) as stream:
            return stream.read(member.file_size)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
        raise _problem(_("архив повреждён: {path}").format(path=member.filename)) from exc


def course_archive_import(*, data: bytes, author: User | None = None) -> Course:
    """Load a course from a zip (its course.md at the top or in one folder); refuses anything unsafe."""
    if len(data) > MAX_ARCHIVE_BYTES:
        raise _problem(_("архив больше {mb} МБ").format(mb=MAX_ARCHIVE_BYTES // (1024 * 1024)))
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise _problem(_("это не zip-архив")) from exc
    members = [m for m in archive.infolist() if not m.is_dir()]
    if len(members) > MAX_MEMBERS:
        raise _problem(_("в архиве больше {count} файлов").format(count=MAX_MEMBERS))
    if sum(m.file_size for m in members) > MAX_ARCHIVE_BYTES * 2:
        raise _problem(_("архив распаковывается в слишком большой объём"))
    tops = {PurePosixPath(m.filename).parts[0] for m in members}
    prefix = PurePosixPath()
    if not any(PurePosixPath(m.filename) == PurePosixPath(COURSE_FILE) for m in members) and len(tops) == 1:
        prefix = PurePosixPath(next(iter(tops)))  # a zip of the folder itself
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for member in members:
            path = PurePosixPath(member.filename)
            if path.is_absolute() or ".." in path.parts:
                raise _problem(_("небезопасный путь в архиве: {path}").format(path=member.filename))
            relative = path.relative_to(prefix) if prefix.parts else path
            if len(relative.parts) > 2 or (len(relative.parts) == 2 and relative.parts[0] != ASSET_DIR):
                continue  # only course files and pictures belong to a course
            target = root / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(_member_bytes(archive, member))
        return course_import(directory=root, author=author)
