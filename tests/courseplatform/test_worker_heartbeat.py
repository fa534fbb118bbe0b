"""The worker's liveness probe, run as Kubernetes runs it, against a real Celery worker that is then frozen.

The probe line is read from deploy/kubernetes/base/worker.yaml, so what passes here is what the
cluster runs. SIGSTOP on the worker's main process stands for a hung event loop: its pool
children still exist, the process is alive, and only the heartbeat says it no longer works.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from courseplatform.worker_heartbeat import PROBE
from tests.services import ROOT, celery_worker_start, platform_dir

pytestmark = [pytest.mark.integration]

STALE_S = 3


def manifest_probe() -> list[str]:
    deployment = yaml.safe_load((ROOT / "deploy" / "kubernetes" / "base" / "worker.yaml").read_text())
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env["WORKER_HEARTBEAT_FILE"].startswith("/tmp/")  # the pod's writable emptyDir
    assert int(env["WORKER_HEARTBEAT_STALE_S"]) >= 3 * int(env["WORKER_HEARTBEAT_S"])
    return container["livenessProbe"]["exec"]["command"]


def probe(command: list[str], heartbeat: Path) -> int:
    env = {"PATH": "/usr/bin:/bin", "WORKER_HEARTBEAT_FILE": str(heartbeat), "WORKER_HEARTBEAT_STALE_S": str(STALE_S)}
    return subprocess.run(command, env=env, capture_output=True, timeout=10, check=False).returncode


def wait_until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


def test_the_probe_passes_while_the_worker_turns_fails_once_it_hangs_and_passes_again(redis_server, django_db_setup):
    command = manifest_probe()
    assert command == ["/bin/sh", "-c", PROBE]
    heartbeat = platform_dir("heartbeat") / "worker-heartbeat"  # the worker's to write: it runs as the platform's user
    assert probe(command, heartbeat) != 0  # no file yet: not alive
    worker = celery_worker_start("heartbeat", env={"WORKER_HEARTBEAT_FILE": str(heartbeat), "WORKER_HEARTBEAT_S": "0.5"})
    try:
        assert heartbeat.exists()
        time.sleep(STALE_S + 1)  # longer than the stale limit: only a file touched meanwhile passes
        assert probe(command, heartbeat) == 0
        os.kill(worker.process.pid, signal.SIGSTOP)
        try:
            assert wait_until(lambda: probe(command, heartbeat) != 0, timeout=STALE_S + 5), "a frozen worker still looks alive"
        finally:
            os.kill(worker.process.pid, signal.SIGCONT)
        assert wait_until(lambda: probe(command, heartbeat) == 0, timeout=5)
    finally:
        worker.stop()
    assert not heartbeat.exists()  # a worker that stopped is not alive
