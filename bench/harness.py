"""A private platform for one benchmark run: Redis, a Celery worker, uvicorn, SQLite, sandbox units.

Importing this module points the environment at a private run, exactly as the
test suite does (``tests.services``: a fresh VAR_DIR, a free Redis port, a
SQLite file that the worker and the ASGI server share), with a sandbox instance
name of its own so that ``list_units`` only ever sees what this run started.
Everything started here is registered and torn down by :meth:`Platform.stop`.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import io
import json
import logging
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests import services as test_services  # sets VAR_DIR, REDIS_URL, DATABASE_URL, DJANGO_SETTINGS_MODULE

# Units of a benchmark run are named bab<pid>-<id>: never mistaken for a test run's (bat<pid>-<id>).
os.environ["SANDBOX_INSTANCE"] = f"bab{os.getpid() % 10000}"
# The worker keeps no warm pool of its own: the warm-start benchmark fills one explicitly.
os.environ["SANDBOX_WARM_POOL"] = ""

import django

django.setup()
# The platform's own INFO lines (units started and stopped) would drown the progress lines.
logging.getLogger().setLevel(logging.WARNING)

from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import close_old_connections  # noqa: E402

from sandboxes.backends import cgroups, get_backend  # noqa: E402
from sandboxes.models import Sandbox, State  # noqa: E402
from sandboxes.services import actions, lifecycle, provisioning  # noqa: E402

Service = test_services.Service
free_port = test_services.free_port
wait_for = test_services.wait_for
port_open = test_services.port_open
RUN_DIR = test_services.RUN_DIR
ROOT = test_services.ROOT
PYTHON = test_services.PYTHON

log = logging.getLogger("bench")

#: Processes the benchmarks start themselves (producers, readers in a unit's namespace): killed at the end.
_children: set[int] = set()


def say(message: str) -> None:
    """Progress on stderr, so that stdout keeps only the table."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Platform:
    """Redis, the database, a worker and the ASGI server of this run; stop() undoes all of it."""

    def __init__(self) -> None:
        self.redis: Service | None = None
        self.postgres: Service | None = None
        self.worker: Service | None = None
        self.asgi: Service | None = None
        self.asgi_port: int | None = None
        self._users = 0

    # -- start ---------------------------------------------------------------

    def start(self) -> None:
        port = test_services.REDIS_PORT
        self.redis = test_services.redis_start()
        self.postgres = test_services.postgres_start()
        test_services.postgres_database_create()
        wait_for(lambda: port_open(port), timeout=10, what="Redis accepting connections")
        call_command("migrate", interactive=False, verbosity=0)
        call_command("course_load", stdout=io.StringIO())
        say("database migrated, course loaded; starting the Celery worker and uvicorn")
        # The project's own worker, as make run starts it (Procfile: -c 2).
        self.worker = test_services.celery_worker_start(name="bench-worker", concurrency=2)
        self.asgi_port = free_port()
        self.asgi = Service(
            "asgi",
            [
                PYTHON,
                "-m",
                "uvicorn",
                "courseplatform.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.asgi_port),
                "--log-level",
                "warning",
            ],
        )

        def up() -> bool:
            if not self.asgi.alive():
                raise RuntimeError(f"the ASGI server exited:\n{self.asgi.tail()}")
            return port_open(self.asgi_port)

        wait_for(up, timeout=30, what="the ASGI server listening")

    def switch_backend(self, path: str | None) -> None:
        """Restart the worker on another sandbox backend (None: back to the configured one)."""
        from django.conf import settings

        from sandboxes.backends import get_backend as cached

        if self.worker is not None:
            self.worker.stop(timeout=15)
        units_stop_all()
        kind = path.rpartition(".")[2].removesuffix("Backend").lower() if path else "process"
        if path is None:
            os.environ.pop("SANDBOX_BACKEND", None)
            os.environ.pop("SANDBOX_LAUNCHER_SOCKET", None)
            settings.SANDBOX_BACKEND = self.default_backend
        else:
            self.default_backend = getattr(self, "default_backend", settings.SANDBOX_BACKEND)
            os.environ["SANDBOX_BACKEND"] = path
            # A worker of the docker backend runs unprivileged too, through a unit launcher of that backend's own.
            os.environ["SANDBOX_LAUNCHER_SOCKET"] = str(Path(settings.SANDBOX_ROOT) / f"launcher-{kind}.sock")
            settings.SANDBOX_BACKEND = path
        cached.cache_clear()
        self.worker = test_services.celery_worker_start(name=f"bench-worker-{kind}", concurrency=2)

    def restart_worker(self, *, env: dict[str, str]) -> None:
        """Restart the worker with these settings in its environment (e.g. a warm pool of its own)."""
        if self.worker is not None:
            self.worker.stop(timeout=15)
        self.worker = test_services.celery_worker_start(name="bench-worker", concurrency=2, env=env)

    # -- stop ----------------------------------------------------------------

    def stop(self) -> None:
        """Stop everything this run started, in an order that leaves nothing behind; never raises."""
        for pid in list(_children):
            kill_group(pid)
        # The worker first: a worker still running could start a unit after the sweep.
        if self.worker is not None:
            with contextlib.suppress(Exception):
                self.worker.stop(timeout=10)
        with contextlib.suppress(Exception):
            units_stop_all()
        for service in (self.asgi, self.redis):
            if service is not None:
                with contextlib.suppress(Exception):
                    service.stop(timeout=10)
        with contextlib.suppress(Exception):
            test_services.unit_launcher_stop()
        if self.postgres is not None:
            with contextlib.suppress(Exception):
                self.postgres.stop(signal.SIGINT, timeout=10)
        with contextlib.suppress(Exception):
            leftover = get_backend().list_units()
            if leftover:
                say(f"warning: units left after cleanup: {leftover}")
        shutil.rmtree(RUN_DIR, ignore_errors=True)

    # -- helpers -------------------------------------------------------------

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.asgi_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.asgi_port}/ws/live/"

    def user(self, label: str) -> User:
        self._users += 1
        return User.objects.create_user(f"bench-{label}-{self._users}", password="bench-pass-12345")


def session_cookie(user: User) -> str:
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


async def ws_open(platform: Platform, cookie: str, **kwargs: Any):
    """A WebSocket to /ws/live/ as the browser opens it: same origin, the session cookie."""
    from websockets.asyncio.client import connect

    return await connect(
        platform.ws_url,
        origin=platform.http_url,
        additional_headers={"Cookie": f"sessionid={cookie}"},
        max_size=None,
        open_timeout=20,
        **kwargs,
    )


def ws_stalled_open(platform: Platform, cookie: str) -> socket.socket:
    """A WebSocket that completes its handshake and then never reads: a frozen browser tab."""
    sock = socket.create_connection(("127.0.0.1", platform.asgi_port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /ws/live/ HTTP/1.1\r\nHost: 127.0.0.1:{platform.asgi_port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"Origin: {platform.http_url}\r\nCookie: sessionid={cookie}\r\n\r\n"
    )
    sock.sendall(request.encode())
    head = b""
    while b"\r\n\r\n" not in head and len(head) < 65536:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        sock.close()
        raise RuntimeError(f"stalled client: handshake refused: {head[:200]!r}")
    return sock


# -- sandboxes -----------------------------------------------------------------


def sandbox_wait(pk: int, *, timeout: float, interval: float = 0.02) -> Sandbox:
    """Poll the record until it leaves requested/provisioning (or the time is up); returns it."""
    deadline = time.monotonic() + timeout
    while True:
        sandbox = Sandbox.objects.get(pk=pk)
        if sandbox.state not in (State.REQUESTED, State.PROVISIONING) or time.monotonic() > deadline:
            return sandbox
        time.sleep(interval)


def sandboxes_settle(pks: list[int], *, timeout: float, interval: float = 0.25) -> None:
    """Poll the records until none is requested or provisioning (or the time is up)."""
    over = bounded(timeout)
    while not over():
        states = Sandbox.objects.filter(pk__in=pks).values_list("state", flat=True)
        if all(s not in (State.REQUESTED, State.PROVISIONING) for s in states):
            return
        time.sleep(interval)


def sandbox_ready(user: User, broker: str, *, timeout: float = provisioning.PROVISION_TIMEOUT_S + 30) -> tuple[Sandbox, float]:
    """sandbox_ensure, then wait for ready; returns the sandbox and the seconds from request to ready."""
    started = time.perf_counter()
    sandbox = actions.sandbox_ensure(user_id=user.pk, broker=broker)
    if sandbox.state != State.READY:
        sandbox = sandbox_wait(sandbox.pk, timeout=timeout)
    elapsed = time.perf_counter() - started
    if sandbox.state != State.READY:
        raise SandboxFailed(
            f"{broker} sandbox {sandbox.pk} is {sandbox.state} after {elapsed:.1f} s: {sandbox.error or sandbox.stage}"
        )
    return sandbox, elapsed


class SandboxFailed(RuntimeError):
    pass


def sandbox_stop(pk: int) -> None:
    try:
        provisioning.sandbox_unit_stop(sandbox_id=pk)
    finally:
        close_old_connections()


def sandboxes_stop(pks: list[int], *, parallel: int = 6) -> None:
    """Stop several sandboxes (record and unit) at once; errors are reported, not raised."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        for pk, future in [(pk, pool.submit(sandbox_stop, pk)) for pk in pks]:
            try:
                future.result(timeout=120)
            except Exception as exc:
                say(f"warning: stopping sandbox {pk} failed: {exc!r}")


def units_stop_all(parallel: int = 6) -> int:
    """Stop every unit of this run's instance, whatever state the records are in."""
    backend = get_backend()
    names = backend.list_units()

    def stop(name: str) -> None:
        try:
            backend.stop(name)
        except Exception as exc:
            say(f"warning: stopping unit {name} failed: {exc!r}")

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        list(pool.map(stop, names))
    return len(names)


def unit_pids(sandbox: Sandbox) -> list[int]:
    backend, name = get_backend(), sandbox.unit or lifecycle.unit_name(sandbox)
    if type(backend).__name__ == "KubernetesBackend":
        from .k8s_starts import pod_pids  # a pod's processes run on a lab node: this machine, in its namespaces

        return pod_pids(name)
    return backend.processes(name)


def rss_mb(pids: list[int]) -> float:
    """Resident memory of these processes, summed, in MiB (processes gone meanwhile count 0)."""
    import psutil

    total = 0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            total += psutil.Process(pid).memory_info().rss
    return total / (1024 * 1024)


def unit_rss_mb(sandbox: Sandbox) -> float:
    return rss_mb(unit_pids(sandbox))


def agent_pid(sandbox: Sandbox) -> int | None:
    path = get_backend().unit_dir(sandbox.unit or lifecycle.unit_name(sandbox)) / "agent.pid"
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text())
    return None


def sandbox_socket(sandbox: Sandbox) -> Path:
    return provisioning.sandbox_socket(sandbox=sandbox)


# -- processes inside a unit's network namespace ---------------------------------


async def netns_python(sandbox: Sandbox, code: str, *args: str, in_cells: bool = False) -> asyncio.subprocess.Process:
    """A plain Python client inside the unit's network namespace (it reaches the broker on localhost).

    ``in_cells``: in the unit's cells cgroup too, where the learner's own code runs (its CPU weight
    and quota), so that it is served as a learner's own consumer cell would be.
    """
    unit = sandbox.unit or lifecycle.unit_name(sandbox)
    procs = cgroups.UnitCgroups(get_backend().instance, unit).procs_files("cells") if in_cells else []

    def join() -> None:  # in the child, before it runs the client
        for path in procs:
            path.write_text(str(os.getpid()))

    process = await asyncio.create_subprocess_exec(
        "ip",
        "netns",
        "exec",
        unit,
        PYTHON,
        "-u",
        "-c",
        code,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        cwd=str(RUN_DIR),
        limit=64 * 1024 * 1024,
        preexec_fn=join if procs else None,
    )
    _children.add(process.pid)
    return process


async def process_finish(process: asyncio.subprocess.Process, *, timeout: float) -> tuple[int, str, str]:
    """Wait for a child (killing its group after ``timeout``); returns status, stdout, stderr."""
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        kill_group(process.pid)
        out, err = await process.communicate()
    except BaseException:  # cancelled (Ctrl+C): end it while the loop can still close its pipes
        await process_reap(process)
        raise
    _children.discard(process.pid)
    return (
        process.returncode if process.returncode is not None else -9,
        out.decode(errors="replace"),
        err.decode(errors="replace"),
    )


async def process_reap(process: asyncio.subprocess.Process) -> None:
    """Kill a child that may still run and wait (briefly) for it; never raises."""
    if process.returncode is None:
        kill_group(process.pid)
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(process.wait(), 5)
    _children.discard(process.pid)


def kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    _children.discard(pid)


def last_json_line(text: str) -> dict[str, Any]:
    for line in reversed(text.strip().splitlines()):
        with contextlib.suppress(ValueError):
            value = json.loads(line)
            if isinstance(value, dict):
                return value
    raise ValueError(f"no JSON line in: {text[-500:]!r}")


def bounded(seconds: float) -> Callable[[], bool]:
    """A predicate that turns true after ``seconds``: loops written as `while not over()`."""
    deadline = time.monotonic() + seconds
    return lambda: time.monotonic() > deadline
