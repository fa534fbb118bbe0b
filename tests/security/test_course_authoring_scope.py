"""Authoring is scoped to a course's own instructors: another instructor gets 403 at every door of it.

Over HTTP (the test client through the whole middleware stack) and over the live WebSocket
(a real uvicorn) for the editor's draft runs: editing, previewing, saving, publishing,
reordering, history and restore, proving an exercise, reading someone's proof, exporting,
importing over the course or as a translation of it. Staff and superusers author all.
"""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User
from django.core.cache import cache
from django.urls import reverse
from websockets.asyncio.client import connect as ws_connect

from courseplatform.accounts.roles import INSTRUCTOR_GROUP
from lessons import exercises
from lessons.course_io import course_import
from lessons.models import Chapter, Course
from sandboxes.live_cells import MAX_CODE_CHARS
from sandboxes.live_frames import CODE_TOO_LONG
from tests.aio import run
from tests.courseplatform.test_realtime_roundtrip import session_cookie, ws_url

MINI = Path(__file__).resolve().parents[1] / "fixtures" / "course-mini"

MINI_DOORS = [
    ("get", "authoring:course", {}),
    ("post", "authoring:course_publish", {}),
    ("post", "authoring:course_reorder", {}),
    ("get", "authoring:course_export", {}),
    ("post", "authoring:preview", {}),
    ("get", "authoring:chapter_new", {}),
    ("post", "authoring:chapter_create", {}),
    ("get", "authoring:chapter_edit", {"chapter": "first"}),
    ("post", "authoring:chapter_save", {"chapter": "first"}),
    ("post", "authoring:chapter_publish", {"chapter": "first"}),
    ("get", "authoring:chapter_history", {"chapter": "first"}),
    ("post", "authoring:chapter_restore", {"chapter": "first", "number": 1}),
    ("post", "authoring:exercise_verify", {"chapter": "first", "exercise": "first-task"}),
]


def _instructor(username: str, **flags: bool) -> User:
    user = User.objects.create_user(username, password="teacher-pass-123", **flags)
    user.groups.add(Group.objects.get(name=INSTRUCTOR_GROUP))
    return user


def _zip(folder: Path, *, replace: tuple[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in folder.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                if replace and path.name == "course.md":
                    data = data.decode().replace(*replace).encode()
                archive.writestr(path.relative_to(folder).as_posix(), data)
    return buffer.getvalue()


@pytest.mark.django_db
def test_another_instructor_gets_403_with_a_clear_page_at_every_door_of_a_course(client):
    mini = course_import(directory=MINI)
    owner, other = _instructor("teacher-a"), _instructor("teacher-b")
    mini.instructors.add(owner)
    chapter = Chapter.objects.get(course=mini, slug="first")
    before = (chapter.source, chapter.revision, chapter.published, mini.published)

    client.force_login(other)
    assert "mini" not in client.get(reverse("authoring:index")).content.decode()
    for method, name, kwargs in MINI_DOORS:
        url = reverse(name, kwargs={"course": "mini", **kwargs})
        if method == "get":
            response = client.get(url)
        else:
            body = json.dumps({"meta": {}, "body": "x", "revision": chapter.revision})
            response = client.post(url, body, content_type="application/json")
        assert response.status_code == 403, f"{name}: {response.status_code}"
        if method == "get":
            assert "Этот курс ведут другие преподаватели" in response.content.decode(), name
    chapter.refresh_from_db()
    mini.refresh_from_db()
    assert (chapter.source, chapter.revision, chapter.published, mini.published) == before

    # Importing over the course, or as an edition of it (which would share its class), is refused too.
    for archive, said in (
        (_zip(MINI), "уже есть"),
        (_zip(MINI, replace=("slug: mini", "slug: mini-en\ntranslation_of: mini")), "translation_of"),
    ):
        response = client.post(reverse("authoring:course_import"), {"archive": io.BytesIO(archive)})
        assert response.status_code == 400 and said in response.content.decode(), response.content.decode()[:800]
    assert not Course.objects.filter(slug="mini-en").exists()
    assert list(Course.objects.get(slug="mini").instructors.all()) == [owner]

    # Nor may they read the owner's proof of an exercise by its job id.
    cache.set(exercises._OWNER_KEY.format(job="proof-of-a"), owner.pk, 60)
    assert client.get(reverse("authoring:verify_result", kwargs={"job": "proof-of-a"})).status_code == 404

    # The owner, a staff instructor and a superuser go through every one of these doors.
    staff, superuser = _instructor("staff", is_staff=True), User.objects.create_superuser("root-user", password="x")
    for user in (owner, staff, superuser):
        client.force_login(user)
        assert "mini" in client.get(reverse("authoring:index")).content.decode()
        for name in ("authoring:course", "authoring:course_export"):
            assert client.get(reverse(name, kwargs={"course": "mini"})).status_code == 200, (user, name)
        edit = reverse("authoring:chapter_edit", kwargs={"course": "mini", "chapter": "first"})
        assert client.get(edit).status_code == 200, user
        preview = client.post(
            reverse("authoring:preview", kwargs={"course": "mini"}),
            json.dumps({"meta": {}, "body": "# hi"}),
            content_type="application/json",
        )
        assert preview.status_code == 200, user
    client.force_login(owner)
    assert client.get(reverse("authoring:verify_result", kwargs={"job": "proof-of-a"})).status_code == 200
    reimport = client.post(reverse("authoring:course_import"), {"archive": io.BytesIO(_zip(MINI))})
    assert reimport.status_code == 302, reimport.content.decode()[:800]


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_draft_run_of_another_instructors_course_is_refused_over_the_websocket(live_server_url):
    mini = course_import(directory=MINI)
    owner, other = _instructor("teacher-a"), _instructor("teacher-b")
    mini.instructors.add(owner)

    cookies = {user: session_cookie(user) for user in (owner, other)}

    async def draft(user: User, course: str | None, code: str = "print(1)") -> dict:
        async with ws_connect(
            ws_url(live_server_url), origin=live_server_url, additional_headers={"Cookie": f"sessionid={cookies[user]}"}
        ) as ws:
            frame = {"type": "cell.run", "run": "draft-1", "draft": True, "broker": "nats", "code": code}
            await ws.send(json.dumps(frame if course is None else {**frame, "course": course}))
            while True:
                answer = json.loads(await asyncio.wait_for(ws.recv(), timeout=20))
                if answer.get("run") == "draft-1" and answer["type"] in {"cell.error", "cell.exit", "cell.output"}:
                    return answer

    refused = "Черновики глав курса запускают только его преподаватели."
    for course in ("mini", None, "no-such-course"):
        answer = run(draft(other, course))
        assert answer["type"] == "cell.error" and answer["message"] == refused, (course, answer)
    # The course's own instructor passes the gate and meets the next one (code too long: no sandbox needed).
    answer = run(draft(owner, "mini", code="x" * (MAX_CODE_CHARS + 1)))
    assert answer["type"] == "cell.error" and answer["message"] == str(CODE_TOO_LONG), answer
