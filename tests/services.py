"""The real services the suite runs against: Postgres, Redis, a Celery worker, the ASGI server, the unit launcher.

Loaded as a pytest plugin (``-p tests.services``) so that, before Django reads
its settings, the environment already points at this run's private Postgres and
Redis ports and var folder. The processes start on first use and are stopped
at the end of the session, even after failures. As under `make run`, the worker and the
web server of the process backend run as the platform's own unprivileged user, and the
unit launcher (root) does their privileged work.
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
from contextlib import contextmanager
from pathlib import Path

import psutil
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
# Where the workers of an xdist run take turns (tests/turns.py): the controller's folder, inherited by them.
os.environ.setdefault("BA_TEST_TURNS", str(RUN_DIR))
REDIS_PORT = free_port()
# Redis requires a password, as in production: every client finds it in REDIS_URL.
REDIS_PASSWORD = secrets.token_hex(16)
# The database is Postgres, as in production. Child processes (worker, ASGI server) open the very
# database the tests use: pytest-django creates it under the same name (settings/test.py).
POSTGRES_PORT = free_port()
POSTGRES_PASSWORD = secrets.token_hex(16)
os.environ.update(
    {
        "VAR_DIR": str(RUN_DIR),
        "REDIS_URL": f"redis://:{REDIS_PASSWORD}@127.0.0.1:{REDIS_PORT}/0",
        "DATABASE_URL": f"postgres://ba:{POSTGRES_PASSWORD}@127.0.0.1:{POSTGRES_PORT}/ba_test",
        "DJANGO_SETTINGS_MODULE": "courseplatform.settings.test",
        "SANDBOX_INSTANCE": f"bat{os.getpid() % 10000}",
    }
)


# What a child service inherits from the test process: the system's basics and the project's own
# settings, nothing else. In particular not DJANGO_ALLOW_ASYNC_UNSAFE, which the browser tests set
# for their own thread: passed on, it would hide every async-safety error of the ASGI server.
INHERITED = (
    # the system
    "PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "USER", "LOGNAME", "TERM", "PYTHONPATH",
    # where the brokers' and tools' files are
    "JAVA_HOME", "KAFKA_HOME", "KAFKA_LIBS", "ACTIVEMQ_LIBS", "NATS_CLI", "NATS_SERVER", "BROKER_ACADEMY_CACHE",
    # this run's services and settings
    "VAR_DIR", "REDIS_URL", "DATABASE_URL", "DJANGO_SETTINGS_MODULE", "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS",
    "TIME_ZONE", "COURSE_IMPORT_ROOTS", "LOG_LEVEL", "KUBECONFIG",
)  # fmt: skip
INHERITED_PREFIXES = ("LC_", "SANDBOX_", "CELERY_", "SIGNUP_", "BA_", "K8S_")


def service_environment() -> dict[str, str]:
    """The explicit environment of a service this suite starts (see INHERITED)."""
    return {name: value for name, value in os.environ.items() if name in INHERITED or name.startswith(INHERITED_PREFIXES)}


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


# A host out in the world that this machine reaches (a registry the install step uses).
OUTSIDE_HOST = ("pypi.org", 443)


@contextmanager
def reachable_from_the_host() -> Iterator[dict[str, tuple[str, int]]]:
    """Addresses that answer when dialled from the host, for proving a cell cannot dial them.

    A TCP listener of the test's own on every address of the host (so loopback, the uplink and
    any bridge), and an outside server the host reaches. Each one is dialled from the host first,
    so "closed" from a cell means the wall, not an address where nothing ever answered.
    """
    listener = socket.create_server(("0.0.0.0", 0))
    port = listener.getsockname()[1]
    targets = {
        f"host service on {a.address}": (a.address, port)
        for addrs in psutil.net_if_addrs().values()
        for a in addrs
        if a.family == socket.AF_INET
    }
    try:
        targets[f"outside {OUTSIDE_HOST[0]}"] = (socket.gethostbyname(OUTSIDE_HOST[0]), OUTSIDE_HOST[1])
    except OSError:
        pass  # no name service here: the host's own addresses still prove the wall
    try:
        for name, address in list(targets.items()):
            try:
                socket.create_connection(address, timeout=3).close()
            except OSError:
                if name.startswith("outside"):
                    del targets[name]  # the outside is not reachable from this host at all: nothing to prove
                    continue
                raise
        yield targets
    finally:
        listener.close()


#: The platform's own user and group (scripts/install.sh makes them; settings.SANDBOX_PLATFORM_GROUP).
PLATFORM_USER = "broker-academy"


def platform_dir(name: str) -> Path:
    """A folder of this run that the platform's user may write (a worker's heartbeat, its metrics files)."""
    folder = RUN_DIR / "platform" / name
    folder.mkdir(parents=True, exist_ok=True)
    (RUN_DIR / "platform").chmod(0o711)
    shutil.chown(folder, PLATFORM_USER, PLATFORM_USER)
    return folder


class Service:
    """A child process with its output in a log file, stopped with its whole process group.

    ``as_platform`` runs it as the platform's own user (no supplementary groups but the platform's), the way
    `make run` starts web, worker and beat.
    """

    def __init__(self, name: str, argv: list[str], env: dict[str, str] | None = None, *, as_platform: bool = False) -> None:
        self.name = name
        self.env = env
        self.as_platform = as_platform
        self.log = RUN_DIR / f"{name}.log"
        self.url = ""  # for a service that answers on an address
        user: dict = {}
        home: dict[str, str] = {}
        if as_platform:
            user = {"user": PLATFORM_USER, "group": PLATFORM_USER, "extra_groups": []}
            home = {"HOME": str(platform_dir("home"))}
        self.process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env={**service_environment(), **home, **(env or {})},
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **user,
        )

    def restart(self) -> None:
        """What a supervisor does for a stopped or dead process: the same command, environment and address again."""
        self.stop()
        url = self.url
        self.__init__(self.name, self.process.args, self.env, as_platform=self.as_platform)  # type: ignore[misc]
        self.url = url

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


def postgres_start() -> Service:
    """This run's Postgres (Debian's server binaries), in RUN_DIR, on a private port; durability off for speed."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name))
    if not versions:
        raise RuntimeError("Postgres is not installed: run `make install` (scripts/install.sh installs postgresql)")
    bindir = versions[-1].parent
    data = RUN_DIR / "postgres"
    data.mkdir(mode=0o700)
    password_file = RUN_DIR / "postgres.pw"
    password_file.write_text(POSTGRES_PASSWORD)
    # Postgres refuses to run as root: its files belong to Debian's postgres user.
    shutil.chown(data, "postgres", "postgres")
    shutil.chown(password_file, "postgres", "postgres")
    password_file.chmod(0o600)
    as_postgres = ["runuser", "-u", "postgres", "--"]
    initdb = ["-D", str(data), "-U", "ba", f"--pwfile={password_file}", "--auth=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8"]
    subprocess.run(
        [*as_postgres, str(bindir / "initdb"), *initdb, "--no-sync"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    password_file.unlink()
    options = {"listen_addresses": "127.0.0.1", "max_connections": "300", "fsync": "off", "synchronous_commit": "off"}
    options["full_page_writes"] = "off"
    server = [str(bindir / "postgres"), "-D", str(data), "-p", str(POSTGRES_PORT), "-k", str(data)]
    service = Service("postgres", [*as_postgres, *server, *(f"-c{k}={v}" for k, v in options.items())])

    def up() -> bool:
        import psycopg

        if not service.alive():
            raise RuntimeError(f"Postgres exited:\n{service.tail()}")
        try:
            # An open port is not enough: while it starts up, Postgres answers "starting up" and hangs up.
            psycopg.connect(
                host="127.0.0.1", port=POSTGRES_PORT, user="ba", password=POSTGRES_PASSWORD, dbname="postgres"
            ).close()
        except psycopg.OperationalError:
            return False
        return True

    wait_for(up, timeout=60, what="Postgres accepting connections", interval=0.1)
    return service


def postgres_database_create() -> None:
    """The database DATABASE_URL names, for runs without pytest-django (make bench)."""
    import psycopg

    with psycopg.connect(
        host="127.0.0.1", port=POSTGRES_PORT, user="ba", password=POSTGRES_PASSWORD, dbname="postgres", autocommit=True
    ) as conn:
        conn.execute("CREATE DATABASE ba_test")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    service = postgres_start()
    yield os.environ["DATABASE_URL"]
    service.stop(signal.SIGINT)  # Postgres' fast shutdown; SIGTERM would wait for every client


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    service = redis_start()
    wait_for(lambda: port_open(REDIS_PORT), timeout=10, what="Redis accepting connections")
    yield os.environ["REDIS_URL"]
    service.stop()


_launchers: dict[str, Service] = {}

#: The backends whose units the launcher makes (root), on the unprivileged web's and worker's behalf.
LAUNCHED_BACKENDS = ("sandboxes.backends.process.ProcessBackend", "sandboxes.backends.docker.DockerBackend")


def _setting(env: dict[str, str] | None, name: str, default: str) -> str:
    """A setting as a service started with ``env`` reads it: its own env, else this process's environment."""
    return (env or {}).get(name) or os.environ.get(name) or default


def unit_launcher(env: dict[str, str] | None = None) -> Service:
    """This run's unit launcher (root) for the backend and socket a service with ``env`` uses, started on first use.

    One launcher per socket, each with the settings of the services it serves (the session's process
    backend; the docker backend's own, on a socket of its own: tests/sandboxes/docker_workers.py).
    """
    from django.conf import settings

    path = _setting(env, "SANDBOX_LAUNCHER_SOCKET", str(settings.SANDBOX_LAUNCHER_SOCKET))
    running = _launchers.get(path)
    if running is not None and running.alive():
        return running
    socket_path = Path(path)
    socket_path.unlink(missing_ok=True)
    name = "launcher" if not _launchers else f"launcher-{len(_launchers)}"
    _launchers[path] = service = Service(name, [PYTHON, "-m", "sandboxes.launcher"], env=env)

    def listening() -> bool:
        if not service.alive():
            raise RuntimeError(f"the unit launcher exited:\n{service.tail()}")
        return socket_path.exists()

    wait_for(listening, timeout=30, what="the unit launcher listening")
    return service


def unit_launcher_stop() -> None:
    """Stop this run's unit launchers, if it started any (the units they made are stopped before)."""
    for service in _launchers.values():
        service.stop()


def launched(env: dict[str, str] | None) -> bool:
    """Whether a service with ``env`` runs a backend the unit launcher serves (process, docker)."""
    return _setting(env, "SANDBOX_BACKEND", "sandboxes.backends.process.ProcessBackend") in LAUNCHED_BACKENDS


def celery_worker_start(name: str = "worker", concurrency: int = 2, env: dict[str, str] | None = None) -> Service:
    """Start a real Celery worker of the project; returns once it answers a ping.

    ``env`` adds to its environment: settings the worker must see (it reads them at start). Every backend's
    worker runs as the platform's user; for the process and docker backends this run's unit launcher for
    that backend is started for it (the Kubernetes backend's needs none: its pods are the cluster's work).
    """
    from courseplatform.celery import app

    if launched(env):
        unit_launcher(env)
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
        env=env,
        as_platform=True,
    )

    def answers() -> bool:
        if not service.alive():
            raise RuntimeError(f"the Celery worker exited:\n{service.tail()}")
        return any(f"{name}-{os.getpid()}@" in n for r in app.control.ping(timeout=0.5) for n in r)

    wait_for(answers, timeout=60, what="the Celery worker answering a ping", interval=0.2)
    return service


@contextmanager
def worker_in_place_of(session_worker: Service, name: str, env: dict[str, str] | None = None) -> Iterator[Service]:
    """Run the session's tasks on a worker of its own (with its own settings), then bring the session's back.

    Only one worker consumes meanwhile, so every task queued in the block runs on this one.
    """
    from courseplatform.celery import app

    session_worker.stop()
    replacement = celery_worker_start(name=name, concurrency=1, env=env)
    try:
        yield replacement
    finally:
        replacement.stop()
        session_worker.restart()
        wait_for(lambda: any(app.control.ping(timeout=0.5)), timeout=60, what="the session's worker back", interval=0.2)


@pytest.fixture(scope="session")
def celery_worker(redis_server: str, django_db_setup, django_db_blocker) -> Iterator[Service]:
    """One real worker for the session, sharing the test database file."""
    service = celery_worker_start()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def live_server_url(asgi_server: Service) -> str:
    """The address of the real ASGI server."""
    return asgi_server.url


@pytest.fixture(scope="session")
def asgi_server(redis_server: str, django_db_setup, django_db_blocker) -> Iterator[Service]:
    """The real ASGI server (uvicorn) with HTTP and WebSockets, on a private port."""
    port = free_port()
    unit_launcher()
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
        as_platform=True,
    )

    def up() -> bool:
        if not service.alive():
            raise RuntimeError(f"the ASGI server exited:\n{service.tail()}")
        return port_open(port)

    wait_for(up, timeout=30, what="the ASGI server listening")
    service.url = f"http://127.0.0.1:{port}"
    yield service
    service.stop()


def pytest_configure(config) -> None:
    """A SIGTERM (a CI timeout, ``timeout``, ``kill``) ends the run as Ctrl+C does: pytest then tears its
    fixtures down, so the Postgres, Redis, Celery worker, ASGI server and sandbox units it started stop
    with it. Left to the default action, the run died at once and they all outlived it."""

    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}: ending the run, stopping its services")

    signal.signal(signal.SIGTERM, interrupted)


def pytest_sessionfinish(session, exitstatus) -> None:
    unit_launcher_stop()
    if os.environ.get("BA_KEEP_TEST_DIR"):
        print(f"\nservice logs kept in {RUN_DIR}")
    else:
        shutil.rmtree(RUN_DIR, ignore_errors=True)
