"""CPU spent by the platform's services and by the benchmark itself between two moments, as shares of a core."""

from __future__ import annotations

import contextlib
import os
import time

import psutil

from .harness import Platform


def cpu_seconds(platform: Platform) -> dict[str, float]:
    """CPU seconds so far (user + system): the machine's busy time over all cores, and per process tree."""
    times = psutil.cpu_times()
    seconds = {"wall": time.monotonic(), "machine": sum(times) - times.idle - getattr(times, "iowait", 0.0)}
    trees = {"asgi": platform.asgi, "worker": platform.worker, "redis": platform.redis, "postgres": platform.postgres}
    pids = {name: service.process.pid for name, service in trees.items() if service is not None}
    pids["generator"] = os.getpid()  # the learners themselves share the two cores with what they measure
    for name, pid in pids.items():
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(pid)
            tree = [process] if name == "generator" else [process, *process.children(recursive=True)]
            seconds[name] = 0.0
            for member in tree:
                with contextlib.suppress(psutil.Error):
                    used = member.cpu_times()
                    seconds[name] += used.user + used.system
    return seconds


def cpu_share(before: dict[str, float], after: dict[str, float]) -> str:
    """Between two cpu_seconds: each one's CPU as a share of one core, and the machine's busy share of all."""
    wall = max(after["wall"] - before["wall"], 1e-6)
    shares = {name: (after[name] - before.get(name, after[name])) / wall for name in after if name != "wall"}
    machine = shares.pop("machine") / (psutil.cpu_count() or 1)
    return f"CPU: machine {machine:.0%} busy; of one core: " + ", ".join(f"{k} {v:.0%}" for k, v in shares.items())
