"""Fixtures shared by every test package: users of each role."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth.models import Group, User
from django.core.management.base import CommandError

from courseplatform.accounts.roles import INSTRUCTOR_GROUP
from tests.turns import module_scheduling, run_turn


@pytest.fixture
def learner(db) -> User:
    return User.objects.create_user("learner", password="learner-pass-123")


@pytest.fixture
def instructor(db) -> User:
    user = User.objects.create_user("teacher", password="teacher-pass-123")
    user.groups.add(Group.objects.get(name=INSTRUCTOR_GROUP))
    return user


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config, log):
    """How `make test`'s two workers share the tests: by module, all of the lab's on one worker (tests/turns.py)."""
    return module_scheduling(config, log)


def pytest_collection_modifyitems(config, items):
    """The queue's order: the tests that need neither a browser nor the lab first, then the lab's, then the browser
    tests (the slowest, and they need everything else to work). On a fresh machine `make test` builds the lab's
    binaries in the background (scripts/k8s-build.sh --background) while the first part runs, and the lab waits
    for that build; meanwhile the other worker goes on to the browser tests."""

    def place(item: pytest.Item) -> int:
        if item.path.parent.name == "k8s":
            return 1
        return 2 if item.get_closest_marker("browser") is not None else 0

    items.sort(key=place)


@pytest.fixture(autouse=True)
def _take_turns(request):
    """A test marked ``alone`` measures the machine (its free disk, a ratio of round trips) or changes its network
    links: no test of the other worker runs meanwhile (tests/turns.py). Every other test runs beside whatever the other worker runs."""
    with run_turn(alone=request.node.get_closest_marker("alone") is not None):
        yield


@pytest.fixture(scope="session")
def django_db_modify_db_settings(postgres_server):
    """pytest-django creates the test database (django_db_setup needs this fixture) once Postgres runs. Under xdist
    no _gw0 suffix: each worker has a Postgres of its own, and its worker and ASGI server open the name DATABASE_URL
    gives."""


@pytest.fixture(scope="session", autouse=True)
def _redis_for_everyone(redis_server):
    """The cache and channel layer are Redis; every test gets the run's real one."""
    return redis_server


#: How many times the database is emptied again after losing a deadlock to the live platform.
FLUSH_TRIES = 5


@pytest.fixture(scope="session", autouse=True)
def _flush_outlasts_the_live_platform():
    """The database is emptied after each transactional test with TRUNCATE, while the ASGI server and the
    worker of the run may still write (a page that just closed, a provisioning that just ended). An INSERT
    holds its table and waits for the row of its foreign key; TRUNCATE holds that row's table and waits for
    the INSERT's: Postgres ends one of them as a deadlock, and when that is the TRUNCATE the next test starts
    on the last one's rows. The TRUNCATE is tried again, as a client that loses a deadlock should."""
    from django.core.management.commands import flush

    handle = flush.Command.handle

    def handle_until_flushed(self, *args, **options):
        for attempt in range(1, FLUSH_TRIES + 1):
            try:
                return handle(self, *args, **options)
            except CommandError as error:
                if attempt == FLUSH_TRIES or getattr(error.__cause__.__cause__, "sqlstate", None) != DEADLOCK:
                    raise
                time.sleep(0.05 * attempt)

    flush.Command.handle = handle_until_flushed
    yield
    flush.Command.handle = handle


#: Postgres's SQLSTATE for "deadlock detected".
DEADLOCK = "40P01"


@pytest.fixture(scope="session", autouse=True)
def _no_unit_outlives_the_run(django_db_blocker):
    """Whatever a test or a worker started, no sandbox unit of this run is left on the machine."""
    yield
    from sandboxes.backends.process import ProcessBackend

    stop_all(ProcessBackend())


#: How long a test's end waits for the unit of a start still under way to be removed by that start.
LEAK_GRACE_S = 10


@pytest.fixture
def units_cleanup(request):
    """Every unit a test starts is removed at its end, even after a failure; a unit that outlived its
    sandbox (no active record: stopped, failed or never recorded) fails the test, after it is removed."""
    yield
    from sandboxes.backends import get_backend

    backend = get_backend()
    # Only a test with the database has records to account for its units; one that drives a
    # backend directly (tests/security) owns every unit it made, and they are simply removed.
    uses_db = bool({"db", "transactional_db", "django_db_setup"} & set(request.fixturenames))
    uses_db = uses_db or request.node.get_closest_marker("django_db") is not None
    leaked = leaked_units(backend) if uses_db else []
    # A start the worker is still inside (a stop overtook it) removes its own unit within a second
    # or two of the test's end; a unit nobody removes is still there after the grace.
    settle_by = time.monotonic() + LEAK_GRACE_S
    while leaked and time.monotonic() < settle_by:
        time.sleep(0.5)
        leaked = leaked_units(backend)
    stop_all(backend)
    # Every stop keeps the broker's data; the test's records go with its database, so their files go too.
    for key in backend.kept_keys():
        backend.discard_kept(key)
    failed = request.node.stash.get(FAILED, False)
    if leaked and not failed:  # after a failure the leak is a consequence; the failure says more
        pytest.fail(f"units outlived their sandboxes: {leaked}; their records: {records_of(leaked)}")


def leaked_units(backend) -> list[str]:
    """Units of this run that no active sandbox record accounts for."""
    from sandboxes.models import ACTIVE_STATES, Sandbox

    accounted = {sandbox.unit for sandbox in Sandbox.objects.filter(state__in=ACTIVE_STATES)}
    return sorted(set(backend.list_units()) - accounted)


def records_of(units: list[str]) -> dict[str, str]:
    """What the database says of each unit's sandbox (state, stage, error), for a leak's message."""
    from sandboxes.models import Sandbox

    said = {}
    for sandbox in Sandbox.objects.filter(unit__in=units):
        said[sandbox.unit] = f"{sandbox.state}/{sandbox.stage}/{sandbox.error[:80]!r}"
    return {unit: said.get(unit, "no record") for unit in units}


FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Remember whether the test itself failed, for the fixtures' teardown to see."""
    report = yield
    if report.when == "call" and report.failed:
        item.stash[FAILED] = True
    return report


def stop_all(backend) -> None:
    """Stop every unit of this run at once: a broker takes seconds to stop, and they need not wait for each other."""
    from concurrent.futures import ThreadPoolExecutor

    names = backend.list_units()
    if names:
        with ThreadPoolExecutor(max_workers=len(names)) as pool:
            list(pool.map(backend.stop, names))
