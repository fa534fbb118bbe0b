"""A test run ended by SIGTERM stops the services it started, as one ended by Ctrl+C does."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent

INNER = """
import os, pathlib, time

def test_holds_redis(redis_server):
    pathlib.Path(os.environ["BA_TEST_MARK"]).write_text(redis_server.rsplit(":", 1)[1].split("/")[0])
    time.sleep(300)
"""


def test_a_run_ended_by_sigterm_stops_the_redis_it_started(tmp_path):
    (tmp_path / "test_inner.py").write_text(INNER)
    mark = tmp_path / "port"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("REDIS_", "DATABASE_", "BA_"))}
    options = ["-q", "-p", "no:cacheprovider", f"--junitxml={tmp_path / 'report.xml'}", "-c", str(ROOT / "pytest.ini")]
    run = subprocess.Popen(
        [sys.executable, "-m", "pytest", *options, "--rootdir", str(ROOT), str(tmp_path / "test_inner.py")],
        cwd=ROOT,
        env={**env, "BA_TEST_MARK": str(mark)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while not mark.exists() and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert mark.exists(), run.communicate(timeout=30)[0].decode(errors="replace")[-3000:]
        port = int(mark.read_text())
        [redis] = [p for p in psutil.process_iter(["name"]) if p.info["name"] == "redis-server" and _listens(p, port)]
        run.send_signal(signal.SIGTERM)
        output = run.communicate(timeout=60)[0].decode(errors="replace")
        assert run.returncode != 0, output[-3000:]
        redis.wait(timeout=15)  # psutil.TimeoutExpired if the run left it behind
        assert not psutil.pid_exists(redis.pid) or redis.status() == psutil.STATUS_ZOMBIE
    finally:
        if run.poll() is None:
            run.kill()
        if mark.exists():  # what a failed run left behind goes, so the suite does not keep it either
            for process in psutil.process_iter(["name"]):
                if process.info["name"] == "redis-server" and _listens(process, int(mark.read_text())):
                    process.kill()


def _listens(process: psutil.Process, port: int) -> bool:
    try:
        return any(c.laddr and c.laddr.port == port for c in process.net_connections(kind="tcp"))
    except psutil.Error:
        return False
