"""The web process and the worker run without root; the unit launcher, the one part that has it, serves only them.

As under `make run`, the session's uvicorn and Celery worker run as the platform's own user
(broker-academy) and the process backend's privileged half (namespaces, cgroups, disks, the
units' uids) runs in the unit launcher, reached through a socket of root and that user's group.
Performed: a learner's cell through those processes; requests the launcher must refuse, sent
by the platform's user itself; the launcher's and an agent's socket dialled by a uid outside the
group; a platform left without its launcher.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import socket
import stat
import subprocess
import textwrap
from pathlib import Path

import psutil
import pytest
from django.conf import settings

from lessons.course_io import course_import
from sandboxes.backends.process import ProcessBackend
from sandboxes.models import Sandbox
from tests.aio import run
from tests.courseplatform.test_realtime_roundtrip import session_cookie
from tests.security.flooder import Tab, opened
from tests.security.units import unit_running
from tests.services import PLATFORM_USER, PYTHON, ROOT, Service, platform_dir, service_environment, unit_launcher

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

MINI = Path(__file__).resolve().parents[1] / "fixtures" / "course-mini"


def credentials(pid: int) -> dict[str, list[int] | int]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {
        "uids": [int(v) for v in fields["Uid"].split()],
        "gids": [int(v) for v in fields["Gid"].split()],
        "groups": [int(v) for v in fields["Groups"].split()],
        "cap_eff": int(fields["CapEff"], 16),
        "cap_prm": int(fields["CapPrm"], 16),
    }


def assert_runs_as_the_platforms_user(service: Service) -> None:
    """Every process of ``service``: the platform's uid and gid, no group 0, no capability."""
    platform = pwd.getpwnam(PLATFORM_USER)
    processes = [psutil.Process(service.process.pid), *psutil.Process(service.process.pid).children(recursive=True)]
    for process in processes:
        seen = credentials(process.pid)
        assert set(seen["uids"]) == {platform.pw_uid}, (service.name, process.pid, seen)
        assert set(seen["gids"]) == {platform.pw_gid}, (service.name, process.pid, seen)
        assert 0 not in seen["groups"], (service.name, process.pid, seen)
        assert seen["cap_eff"] == 0 and seen["cap_prm"] == 0, (service.name, process.pid, seen)


def as_platform_user(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``code`` (Django set up) as the platform's user, as its web or worker would."""
    script = "import django; django.setup()\n" + textwrap.dedent(code)
    return subprocess.run(
        [PYTHON, "-c", script],
        cwd=ROOT,
        env={**service_environment(), "HOME": str(platform_dir("home")), "PYTHONPATH": str(ROOT), **(env or {})},
        user=PLATFORM_USER,
        group=PLATFORM_USER,
        extra_groups=[],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_web_and_the_worker_run_a_learners_cell_without_root(
    celery_worker, asgi_server, live_server_url, learner, units_cleanup
):
    course_import(directory=MINI)
    cookie = session_cookie(learner)

    async def cell_run() -> tuple[str, dict]:
        async with opened(live_server_url, cookie) as ws:
            tab = Tab(ws)
            await ws.send(json.dumps({"type": "cell.run", "run": "r1", "course": "mini", "chapter": "first", "cell": "publish"}))
            end = await tab.wait(lambda f: f.get("run") == "r1" and f["type"] in ("cell.exit", "cell.error"), timeout=150)
            return "".join(f["text"] for f in tab.frames if f.get("run") == "r1" and f["type"] == "cell.output"), end

    output, end = run(cell_run())
    assert end["type"] == "cell.exit" and end["status"] == 0, (end, output)
    assert "NATS at nats://" in output

    for service in (celery_worker, asgi_server):
        assert_runs_as_the_platforms_user(service)
    platform = pwd.getpwnam(PLATFORM_USER)

    # The unit they started is the launcher's (root) work; its agent's socket is root's and the platform group's.
    sandbox = Sandbox.objects.get(user=learner, broker="nats")
    sock = ProcessBackend().socket_path(sandbox.unit).stat()
    assert (sock.st_uid, sock.st_gid, stat.S_IMODE(sock.st_mode)) == (0, platform.pw_gid, 0o660)


def test_the_launcher_refuses_what_is_not_this_instances_even_from_the_platforms_user(celery_worker):
    unit_launcher()
    root = Path(settings.SANDBOX_ROOT)
    before = sorted(p.name for p in root.iterdir())
    instance = settings.SANDBOX_INSTANCE
    attempts = {
        "a path for a unit": ("stop", {"name": "../../etc"}),
        "another instance's unit": ("stop", {"name": "someone-1"}),
        "a unit of a broker that is none": (
            "start",
            {"unit": {"name": f"{instance}-9", "broker": "sh", "owner": "", "restore": ""}},
        ),
        "kept data outside the instance": ("discard_kept", {"key": "../../../etc/passwd"}),
        "restore from a path": (
            "start",
            {"unit": {"name": f"{instance}-9", "broker": "nats", "owner": "", "restore": "/etc/shadow"}},
        ),
        "an operation it does not have": ("exec", {"argv": ["id"]}),
        "an extra argument": ("stop", {"name": f"{instance}-9", "signal": 9}),
    }
    answers = as_platform_user(
        f"""
        import json
        from pathlib import Path
        from sandboxes.launcher import protocol
        attempts = {attempts!r}
        answers = {{}}
        for what, (op, args) in attempts.items():
            try:
                answers[what] = ["done", protocol.call(Path({str(settings.SANDBOX_LAUNCHER_SOCKET)!r}), op, **args)]
            except Exception as exc:
                answers[what] = [type(exc).__name__, str(exc)]
        print(json.dumps(answers))
        """
    )
    assert answers.returncode == 0, answers.stderr
    seen = json.loads(answers.stdout.splitlines()[-1])
    print(json.dumps(seen, ensure_ascii=False, indent=1))
    assert {what: kind for what, (kind, _) in seen.items()} == dict.fromkeys(attempts, "LauncherRefused")
    assert "not a unit of this platform instance" in seen["a path for a unit"][1]
    assert sorted(p.name for p in root.iterdir()) == before, "a refused request left something in the units' folder"


def test_no_uid_outside_the_platforms_group_opens_the_launcher_or_an_agent(celery_worker):
    unit_launcher()
    backend = ProcessBackend()
    group = grp.getgrnam(settings.SANDBOX_PLATFORM_GROUP)
    with unit_running(backend, "nats") as unit:
        doors = {"launcher": str(settings.SANDBOX_LAUNCHER_SOCKET), "agent": str(unit.socket)}
        for uid in (65534, backend.cell_uid(unit.name)):  # nobody, and the unit's own cells' uid
            assert uid not in [pwd.getpwnam(m).pw_uid for m in group.gr_mem]
            for door, path in doors.items():
                reader, writer = os.pipe()
                child = os.fork()
                if child == 0:  # pragma: no cover - the child reports through the pipe
                    os.close(reader)
                    verdict = b"opened"
                    try:
                        os.setgroups([])
                        os.setgid(uid)
                        os.setuid(uid)
                        socket.socket(socket.AF_UNIX).connect(path)
                    except PermissionError:
                        verdict = b"refused"
                    except Exception as exc:
                        verdict = repr(exc).encode()
                    os.write(writer, verdict)
                    os._exit(0)
                os.close(writer)
                verdict = os.read(reader, 200).decode()
                os.close(reader)
                os.waitpid(child, 0)
                assert verdict == "refused", f"uid {uid} dialled the {door} ({path}): {verdict}"


def test_a_platform_without_its_launcher_is_told_how_to_start_one(celery_worker):
    missing = as_platform_user(
        """
        from sandboxes.backends import get_backend
        from sandboxes.backends.base import UnitSpec
        from django.conf import settings
        try:
            get_backend().start(UnitSpec(name=settings.SANDBOX_INSTANCE + "-9", broker="nats"))
        except Exception as exc:
            print(type(exc).__name__, exc)
        """,
        env={"SANDBOX_LAUNCHER_SOCKET": str(platform_dir("none") / "launcher.sock")},
    )
    assert missing.stdout.startswith("IsolationUnavailable"), missing.stdout + missing.stderr
    assert "python -m sandboxes.launcher" in missing.stdout

    # A socket with nothing behind it (a launcher that died without removing it): said so, not a hang.
    stale = platform_dir("stale") / "launcher.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(stale))
    listener.close()
    os.chown(stale, 0, grp.getgrnam(settings.SANDBOX_PLATFORM_GROUP).gr_gid)
    os.chmod(stale, 0o660)
    dead = as_platform_user(
        """
        from sandboxes.backends import get_backend
        try:
            get_backend().list_units()
        except Exception as exc:
            print(type(exc).__name__, exc)
        """,
        env={"SANDBOX_LAUNCHER_SOCKET": str(stale)},
    )
    assert dead.stdout.startswith("LauncherUnreachable"), dead.stdout + dead.stderr
    assert "does not answer" in dead.stdout
