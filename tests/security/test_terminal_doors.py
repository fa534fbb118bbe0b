"""The terminal socket's doors: only the session's own READY sandbox, and inside it nothing a cell cannot do.

Two real NATS units of the process backend (network namespaces, bwrap, the units' own
uids) stand for two learners' sandboxes; the platform's ASGI server relays
/ws/terminal/<broker>/ to their agents. Every route a learner might try towards the
other's terminal ends in a refusal or in their own shell; the shell is a cell's
process under another name (same uid, same walls).
"""

from __future__ import annotations

import asyncio
import itertools
import json

import pytest
from django.contrib.auth.models import User
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from sandboxes.backends.process import ProcessBackend
from sandboxes.models import Sandbox, State
from tests.aio import run
from tests.courseplatform.test_realtime_roundtrip import session_cookie
from tests.security.units import Unit

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

_markers = itertools.count(1)


@pytest.fixture(scope="module")
def units():
    """Mine and theirs: started once for the module (a broker each), stopped at its end."""
    backend = ProcessBackend()
    mine, theirs = Unit(backend, "nats"), Unit(backend, "nats")
    yield mine, theirs
    for unit in (mine, theirs):
        unit.stop()


@pytest.fixture
def learners(units, learner):
    mine, theirs = units
    other = User.objects.create_user("other-learner", password="other-pass-123")
    for user, unit in ((learner, mine), (other, theirs)):
        Sandbox.objects.create(user=user, broker="nats", state=State.READY, unit=unit.name)
    return learner, other


def _url(live_server_url: str, path: str) -> str:
    return live_server_url.replace("http://", "ws://") + path


async def _open(live_server_url: str, path: str, cookie: str | None, *, origin: str | None = None):
    headers = {"Cookie": f"sessionid={cookie}"} if cookie is not None else {}
    return await ws_connect(_url(live_server_url, path), origin=origin or live_server_url, additional_headers=headers)


async def _shell(ws, command: str, timeout: float = 30) -> str:
    """Type ``command`` and return what it printed between two markers the shell (not the echo) writes."""
    # Markers of this command only (the scrollback replays earlier ones), split by quotes in what is typed,
    # so the echo of the line never matches them.
    n = next(_markers)
    begin, end = f"<<B{n}", f"E{n}>>"
    await ws.send(json.dumps({"type": "input", "data": f"echo '<<'B{n}; {command}; echo E{n}'>>'\r"}))
    seen = ""
    async with asyncio.timeout(timeout):
        while begin not in seen or end not in seen.split(begin, 1)[1]:
            frame = await ws.recv()
            if isinstance(frame, str):
                raise AssertionError(f"the terminal ended: {frame}")
            seen += frame.decode(errors="replace")
    return seen.split(begin, 1)[1].split(end, 1)[0].replace("\r", "").strip()


async def _refusal(ws) -> tuple[int | None, list]:
    """Everything the server sent before closing, and the close code; a shell's bytes here would be a leak."""
    frames: list = []
    try:
        async with asyncio.timeout(20):
            while True:
                frames.append(await ws.recv())
    except ConnectionClosed as closed:
        return (closed.rcvd.code if closed.rcvd else None), frames
    raise AssertionError("the socket stayed open")


def test_an_anonymous_socket_is_refused(live_server_url, learners):
    async def attempt():
        ws = await _open(live_server_url, "/ws/terminal/nats/", None)
        return await _refusal(ws)

    code, frames = run(attempt())
    assert code == 4401
    assert frames == []


def test_a_socket_from_another_origin_is_refused(live_server_url, learners):
    cookie = session_cookie(learners[0])

    async def attempt():
        await _open(live_server_url, "/ws/terminal/nats/", cookie, origin="http://evil.example")

    with pytest.raises(InvalidStatus) as refused:
        run(attempt())
    assert refused.value.response.status_code == 403


def test_crafted_paths_reach_the_own_shell_or_nothing(live_server_url, learners, units):
    learner, other = learners
    mine, theirs = units
    their_sandbox = Sandbox.objects.get(user=other)
    nobody = session_cookie(User.objects.create_user("no-sandbox", password="nobody-pass-123"))
    cookie = session_cookie(learner)

    async def attempt():
        refused = {}
        # Their sandbox by id, by unit name, by a query the consumer never reads, by an encoded path.
        for path in (
            f"/ws/terminal/{their_sandbox.pk}/",
            f"/ws/terminal/{theirs.name}/",
            "/ws/terminal/kafka/",
            "/ws/terminal/nats%2F..%2F/",
        ):
            try:
                ws = await _open(live_server_url, path, cookie)
            except InvalidStatus as exc:
                refused[path] = ("http", exc.response.status_code)
                continue
            code, frames = await _refusal(ws)
            assert all(isinstance(f, str) for f in frames), f"{path}: a shell answered"
            refused[path] = ("ws", code)
        # A user with no sandbox of the broker gets none, not someone else's.
        ws = await _open(live_server_url, "/ws/terminal/nats/", nobody)
        refused["no sandbox"] = ("ws", (await _refusal(ws))[0])
        # The plain path and one naming their sandbox in the query both lead to the learner's own unit.
        units_seen = []
        for path in ("/ws/terminal/nats/", f"/ws/terminal/nats/?sandbox={their_sandbox.pk}&unit={theirs.name}"):
            async with await _open(live_server_url, path, cookie) as ws:
                units_seen.append(await _shell(ws, "echo unit=$BA_UNIT"))
        return refused, units_seen

    refused, units_seen = run(attempt())
    print(refused)
    for path, (how, code) in refused.items():
        # A path no route matches fails the handshake (Channels' router answers it with 500): no socket at all.
        assert (how == "ws" and code == 4404) or (how == "http" and code >= 400), (path, how, code)
    assert units_seen == [f"unit={mine.name}", f"unit={mine.name}"]


def test_the_terminal_can_do_nothing_a_cell_cannot(live_server_url, learners, units, redis_server):
    learner, _ = learners
    mine, theirs = units
    status, cell_uid, _ = mine.run("import os; print(os.getuid())")
    assert status == 0, cell_uid
    redis_port = int(redis_server.rsplit(":", 1)[1].split("/")[0])
    cookie = session_cookie(learner)
    probe = "exec 3<>/dev/tcp/127.0.0.1/{port} && echo open || echo closed"

    async def attempt():
        async with await _open(live_server_url, "/ws/terminal/nats/", cookie) as ws:
            return {
                "uid": await _shell(ws, "id -u"),
                "their socket": await _shell(ws, f"test -e {theirs.socket} && echo visible || echo hidden"),
                "own socket": await _shell(ws, f"test -e {mine.socket} && echo visible || echo hidden"),
                "redis": await _shell(ws, f"( {probe.format(port=redis_port)} ) 2>/dev/null"),
                "own broker": await _shell(ws, f"( {probe.format(port=4222)} ) 2>/dev/null"),
                "pid 1": await _shell(ws, "cat /proc/1/comm"),
            }

    seen = run(attempt())
    print(seen)
    assert seen["uid"] == cell_uid.strip() != "0"
    assert seen["their socket"] == "hidden"
    assert seen["own socket"] == "hidden"
    assert seen["redis"] == "closed"
    assert seen["own broker"] == "open"
    assert seen["pid 1"] == "bwrap"  # its own PID namespace, as a cell's


def test_stopping_the_sandbox_ends_the_terminal_with_a_message(live_server_url, learners, units):
    _, other = learners
    _, theirs = units
    cookie = session_cookie(other)

    async def attempt():
        async with await _open(live_server_url, "/ws/terminal/nats/", cookie) as ws:
            await _shell(ws, "true")
            await asyncio.get_running_loop().run_in_executor(None, theirs.stop)
            return await _refusal(ws)

    code, frames = run(attempt())
    assert code == 4000
    assert json.loads(frames[-1]) == {"type": "closed", "message": "Песочница остановлена — терминал закрыт."}
