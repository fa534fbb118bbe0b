"""A course archive uploaded by an instructor: zip bombs, lying headers, too many files and
paths out of the folder are refused with a clear message, and nothing is imported."""

from __future__ import annotations

import io
import resource
import struct
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from lessons.models import Course

pytestmark = pytest.mark.django_db

COURSE_MD = "---\ntitle: Бомба\nslug: bomb\n---\n"
MB = 1024 * 1024


def zipped(members: dict[str, bytes | int]) -> bytes:
    """A zip of the given members; an int stands for that many zero bytes, written in chunks."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            if isinstance(content, int):
                with archive.open(name, "w") as out:
                    for _ in range(content // MB):
                        out.write(bytes(MB))
            else:
                archive.writestr(name, content)
    return buffer.getvalue()


def lying_about_sizes(data: bytes, declared: int) -> bytes:
    """The same zip with every member's uncompressed size rewritten to ``declared`` bytes."""
    patched = bytearray(data)
    start = 0
    while (at := patched.find(b"PK\x03\x04", start)) != -1:  # local headers: size at +22
        struct.pack_into("<I", patched, at + 22, declared)
        start = at + 4
    start = 0
    while (at := patched.find(b"PK\x01\x02", start)) != -1:  # central directory: size at +24
        struct.pack_into("<I", patched, at + 24, declared)
        start = at + 4
    return bytes(patched)


def upload(client, data: bytes):
    archive = SimpleUploadedFile("course.zip", data, content_type="application/zip")
    return client.post(reverse("authoring:course_import"), {"archive": archive})


def refused(response, words: str) -> None:
    page = response.content.decode()
    assert response.status_code == 400, page[:500]
    assert words in page, page[:2000]
    assert not Course.objects.filter(slug="bomb").exists()


def test_a_zip_bomb_that_declares_its_size_is_refused_unopened(client, instructor):
    client.force_login(instructor)
    bomb = zipped({"course.md": COURSE_MD, "6-1-bomb.md": 200 * MB})
    assert len(bomb) < 1 * MB  # 200 MB of zeros deflate to a few hundred kilobytes
    refused(upload(client, bomb), "архив распаковывается в слишком большой объём")


def test_a_zip_bomb_that_lies_about_its_size_is_refused_without_unpacking_it(client, instructor):
    client.force_login(instructor)
    bomb = lying_about_sizes(zipped({"course.md": COURSE_MD, "6-1-bomb.md": 200 * MB}), declared=100)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    refused(upload(client, bomb), "архив повреждён")
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 100, f"the process grew by {grown_mb:.0f} MB while refusing"


def test_an_archive_of_thousands_of_files_is_refused(client, instructor):
    client.force_login(instructor)
    many = zipped({"course.md": COURSE_MD, **{f"img/{n}.png": b"x" for n in range(2000)}})
    refused(upload(client, many), "в архиве больше 500 файлов")


def test_a_path_out_of_the_folder_is_refused(client, instructor, tmp_path):
    client.force_login(instructor)
    escaping = zipped({"course.md": COURSE_MD, "../../../tmp/escaped.md": b"# out"})
    refused(upload(client, escaping), "небезопасный путь в архиве")


def test_a_file_that_is_not_a_zip_is_refused(client, instructor):
    client.force_login(instructor)
    refused(upload(client, b"\x89PNG\r\n\x1a\n" + bytes(1000)), "это не zip-архив")
