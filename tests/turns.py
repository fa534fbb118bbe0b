"""Two test processes on one machine (`make test` runs pytest-xdist with two workers): what they must not do at once.

Each worker is a whole session of its own (tests/services.py: its Postgres, Redis, Celery worker, ASGI
server, sandbox instance name), so most tests run side by side unchanged. Three things are the machine's:

- Building or starting what the second caller then finds there (the Docker Engine, the images): the
  scripts and `python -m sandboxes.images.build` hold a lock of the machine's (/run/lock), so the second
  worker waits for the first and finds the work done.
- The lab: there is one Kubernetes lab on the machine, so every test of tests/k8s/ runs on one worker (and
  test_lab.py's last tests, which take the lab down, after that package's other modules). The other tests go
  by module: a module's fixtures are set up once, and some of its tests build on the ones before.
- Measuring the machine itself: the host's free disk, one unit's round trip against another's busy
  loop, a learner served within a second under a flood. And changing the machine's own network links
  and addresses (the Kubernetes lab's up and down, the deploy's image builds): Chromium, in a browser
  test of the other worker, takes that for a network change and fails the loads it has under way
  (net::ERR_NETWORK_CHANGED; seen once in a full run, while the deploy built its images). A test
  marked ``alone`` runs while no test of the other worker does (every other test holds the run's turn
  shared; an ``alone`` test holds it alone); the lab's and the deploy's fixtures take it the same way. A worker's module-scoped set-up (a broker, the lab) may still run meanwhile: the tests
  measure ratios within themselves, and a set-up is seconds of CPU, not a test's minutes.

Without xdist (one process) a test takes no turn.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def run_turn(*, alone: bool) -> Iterator[None]:
    """A test's turn among this run's workers: shared, or the whole machine's when ``alone``."""
    if "PYTEST_XDIST_WORKER" not in os.environ:  # one process: nothing runs beside it
        yield
        return
    # The controller's folder (tests/services.py), which its workers inherit and which goes with the run.
    with open(Path(os.environ["BA_TEST_TURNS"]) / "turn.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def module_scheduling(config, log):
    """xdist's scheduling by scope, the scope being a test's module, or tests/k8s for every test of the lab; the
    queue keeps the order of the collection (tests/conftest.py sorts it)."""
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return "tests/k8s" if module.startswith("tests/k8s/") else module

    config.option.loadscopereorder = False  # the collection's order, not the largest scope first
    return ModuleScheduling(config, log)
