"""The lab for every k8s test module: up once per session, down at its end whatever happened.

test_lab.py's last tests take it down themselves, and run after the other modules (by name).
A module that runs sandboxes through the kubernetes backend defines an ``images`` fixture (the
kinds it pushes to the lab's registry) and uses ``k8s_worker`` and ``k8s_backend`` below.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.k8s.lab import K8S_BACKEND, Lab, host_state, k8s_settings, lab_script, platform_files, read_env, tail
from tests.services import ROOT, Service, celery_worker_start, wait_for
from tests.turns import run_turn


@pytest.fixture(scope="session")
def host_before() -> dict[str, str | bool]:
    return host_state()


@pytest.fixture(scope="session")
def lab(host_before) -> Iterator[Lab]:
    """The lab, up for the session and down at its end whatever happened.

    Bringing it up and down adds and removes links and addresses on the machine, which Chromium takes for a
    network change and answers by failing its loads (net::ERR_NETWORK_CHANGED): done while no test of the other
    worker runs (tests/turns.py), after the binaries' build, which is waited for outside that turn."""
    try:
        build = subprocess.run(
            [str(ROOT / "scripts" / "k8s-build.sh")], capture_output=True, text=True, timeout=2700, check=False
        )
        if build.returncode != 0:
            pytest.fail(f"scripts/k8s-build.sh failed (exit {build.returncode}):\n{tail(build)}", pytrace=False)
        with run_turn(alone=True):
            result = lab_script("up", timeout=600)
        if result.returncode != 0:
            pytest.fail(f"scripts/k8s-lab.sh up failed (exit {result.returncode}):\n{tail(result)}", pytrace=False)
        yield Lab(read_env())
    finally:
        with run_turn(alone=True):
            lab_script("down", timeout=300)


@pytest.fixture(scope="module")
def k8s_worker(celery_worker: Service, lab: Lab, images: dict[str, str]) -> Iterator[Service]:
    """This module's worker runs the kubernetes backend (read from its environment at start); the session's waits."""
    celery_worker.stop()
    worker = celery_worker_start(name="k8s-worker", env=k8s_settings(lab, images))
    yield worker
    worker.stop()
    celery_worker.restart()  # the session's worker, as it was
    from courseplatform.celery import app

    wait_for(lambda: any(app.control.ping(timeout=0.5)), timeout=60, what="a worker answering", interval=0.2)


@pytest.fixture
def k8s_backend(settings, lab: Lab, images: dict[str, str]) -> None:
    """This process reaches the same agents as the worker (provisioning.sandbox_socket asks the backend), and
    finds the same kept archives."""
    settings.SANDBOX_BACKEND = K8S_BACKEND
    files = platform_files(lab)
    settings.SANDBOX_K8S_KUBECONFIG = files["SANDBOX_K8S_KUBECONFIG"]
    settings.SANDBOX_ROOT = Path(files["SANDBOX_ROOT"])
    settings.SANDBOX_K8S_NAMESPACE = lab.namespace
    settings.SANDBOX_K8S_IMAGES = images
