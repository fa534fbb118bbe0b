"""Fixtures shared by every test package: users of each role."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User

from courseplatform.accounts.roles import INSTRUCTOR_GROUP


@pytest.fixture
def learner(db) -> User:
    return User.objects.create_user("learner", password="learner-pass-123")


@pytest.fixture
def instructor(db) -> User:
    user = User.objects.create_user("teacher", password="teacher-pass-123")
    user.groups.add(Group.objects.get(name=INSTRUCTOR_GROUP))
    return user


def pytest_collection_modifyitems(config, items):
    """Browser tests last: they are the slowest and need everything else to work."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)


@pytest.fixture(scope="session")
def django_db_modify_db_settings(postgres_server, django_db_modify_db_settings_parallel_suffix):
    """pytest-django creates the test database (django_db_setup needs this fixture) once Postgres runs."""


@pytest.fixture(scope="session", autouse=True)
def _redis_for_everyone(redis_server):
    """The cache and channel layer are Redis; every test gets the run's real one."""
    return redis_server


@pytest.fixture(scope="session", autouse=True)
def _no_unit_outlives_the_run(django_db_blocker):
    """Whatever a test or a worker started, no sandbox unit of this run is left on the machine."""
    yield
    from sandboxes.backends.process import ProcessBackend

    stop_all(ProcessBackend())


@pytest.fixture
def units_cleanup():
    """Every unit a test starts is removed at its end, even after a failure."""
    yield
    from sandboxes.backends import get_backend

    stop_all(get_backend())


def stop_all(backend) -> None:
    """Stop every unit of this run at once: a broker takes seconds to stop, and they need not wait for each other."""
    from concurrent.futures import ThreadPoolExecutor

    names = backend.list_units()
    if names:
        with ThreadPoolExecutor(max_workers=len(names)) as pool:
            list(pool.map(backend.stop, names))
