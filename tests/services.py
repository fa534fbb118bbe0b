"""The real services the suite runs against: Redis, a Celery worker, the ASGI server.

Loaded as a pytest plugin (``-p tests.services``) so that, before Django reads
its settings, the environment already points at this run's private Redis port,
var folder and database file. The processes start on first use and are stopped
at the end of the session, even after failures.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


RUN_DIR = Path(tempfile.mkdtemp(prefix="ba-test-"))
# Brokers that drop root (RabbitMQ runs as its own user) must be able to reach their data below it.
RUN_DIR.chmod(0o711)
REDIS_PORT = free_port()
# Redis requires a password, as in production: every client finds it in REDIS_URL.
REDIS_PASSWORD = secrets.token_hex(16)
os.environ.update(
    {
        "VAR_DIR": str(RUN_DIR),
        "REDIS_URL": f"redis://:{REDIS_PASSWORD}@127.0.0.1:{REDIS_PORT}/0",
        "BA_TEST_DB": str(RUN_DIR / "test-db.sqlite3"),
        # Child processes (worker, ASGI server) must open the very file the tests use.
        "DATABASE_URL": f"sqlite:///{RUN_DIR / 'test-db.sqlite3'}",
        "DJANGO_SETTINGS_MODULE": "courseplatform.settings.test",
        "SANDBOX_INSTANCE": f"bat{os.getpid() % 10000}",
    }
)


def wait_for(predicate, *, timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"{what} did not happen within {timeout} s")


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Service:
    """A child process with its output in a log file, stopped with its whole process group."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.name = name
        self.log = RUN_DIR / f"{name}.log"
        self.process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        if self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, sig)
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        except ProcessLookupError:
            pass


def redis_start() -> Service:
    """This run's Redis, on a private port, with a password, keeping nothing on disk."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed: run `make install` (scripts/install.sh installs it)")
    config = RUN_DIR / "redis.conf"
    # The password goes in a file only root reads, not on a command line every user can list.
    config.write_text(f'port {REDIS_PORT}\nbind 127.0.0.1\nsave ""\nappendonly no\nrequirepass {REDIS_PASSWORD}\n')
    config.chmod(0o600)
    return Service("redis", [binary, str(config)])


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    service = redis_start()
    wait_for(lambda: port_open(REDIS_PORT), timeout=10, what="Redis accepting connections")
    yield os.environ["REDIS_URL"]
    service.stop()


def celery_worker_start(name: str = "worker", concurrency: int = 2) -> Service:
    """Start a real Celery worker of the project; returns once it answers a ping."""
    from courseplatform.celery import app

    service = Service(
        name,
        [
            PYTHON,
            "-m",
            "celery",
            "-A",
            "courseplatform",
            "worker",
            "-l",
            "INFO",
            "-c",
            str(concurrency),
            "-n",
            f"{name}-{os.getpid()}@%h",
            "--without-gossip",
            "--without-mingle",
        ],
    )

    def answers() -> bool:
        if not service.alive():
            raise RuntimeError(f"the Celery worker exited:\n{service.tail()}")
        return any(f"{name}-{os.getpid()}@" in n for r in app.control.ping(timeout=0.5) for n in r)

    wait_for(answers, timeout=60, what="the Celery worker answering a ping", interval=0.2)
    return service


@pytest.fixture(scope="session")
def celery_worker(redis_server: str, django_db_setup, django_db_blocker) -> Iterator[Service]:
    """One real worker for the session, sharing the test database file."""
    service = celery_worker_start()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def live_server_url(redis_server: str, django_db_setup, django_db_blocker) -> Iterator[str]:
    """The real ASGI server (uvicorn) with HTTP and WebSockets, on a private port."""
    port = free_port()
    service = Service(
        "asgi",
        [
            PYTHON,
            "-m",
            "uvicorn",
            "courseplatform.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
    )

    def up() -> bool:
        if not service.alive():
            raise RuntimeError(f"the ASGI server exited:\n{service.tail()}")
        return port_open(port)

    wait_for(up, timeout=30, what="the ASGI server listening")
    yield f"http://127.0.0.1:{port}"
    service.stop()


def pytest_sessionfinish(session, exitstatus) -> None:
    if os.environ.get("BA_KEEP_TEST_DIR"):
        print(f"\nservice logs kept in {RUN_DIR}")
    else:
        shutil.rmtree(RUN_DIR, ignore_errors=True)
